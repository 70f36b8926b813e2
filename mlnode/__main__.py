from mlnode.cli import main

main()
