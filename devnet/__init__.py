"""The local network of `make devnet`: every part on loopback, embedded defaults.

Solo consensus, SQLite state, the torch engine with the default model. The API node joins
when it is built; until then the devnet runs a chain node and an ML node side by side.
"""
