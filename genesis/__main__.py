"""`python -m genesis ...`: see genesis/cli.py."""

import sys

from genesis.cli import main

sys.exit(main())
