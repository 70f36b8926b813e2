"""The chain node: the ABCI 2.0 state machine every participant runs (docs/design.md §2).

Its modules (auth, bank, inference, validation, epochs, gov) arrive with the chain issues.
"""
