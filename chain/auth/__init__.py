"""The auth module: accounts, their numbers, sequences and public keys; tx-level params."""
