"""Errors a transaction or query can fail with, each with a stable (codespace, code).

Codes in the "sdk" codespace keep the Cosmos SDK's numbers, so wallets and explorers that know
those codes read ours the same way. A module adds its own codespace instead of reusing these.
"""

import sqlite3


class ChainError(Exception):
    codespace = "sdk"
    code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_class(name: str, code: int, codespace: str = "sdk") -> type[ChainError]:
    """A ChainError subclass with a fixed (codespace, code); modules make theirs with it."""
    return type(name, (ChainError,), {"code": code, "codespace": codespace})


TxDecodeError = error_class("TxDecodeError", 2)
Unauthorized = error_class("Unauthorized", 4)
InsufficientFunds = error_class("InsufficientFunds", 5)
UnknownRequest = error_class("UnknownRequest", 6)
InvalidAddress = error_class("InvalidAddress", 7)
InvalidPubKey = error_class("InvalidPubKey", 8)
UnknownAddress = error_class("UnknownAddress", 9)
InvalidCoins = error_class("InvalidCoins", 10)
OutOfGas = error_class("OutOfGas", 11)
MemoTooLarge = error_class("MemoTooLarge", 12)
InsufficientFee = error_class("InsufficientFee", 13)
TooManySignatures = error_class("TooManySignatures", 14)
NoSignatures = error_class("NoSignatures", 15)
InvalidRequest = error_class("InvalidRequest", 18)
TxTooLarge = error_class("TxTooLarge", 21)
TxTimeoutHeight = error_class("TxTimeoutHeight", 30)
UnknownExtensionOptions = error_class("UnknownExtensionOptions", 31)
WrongSequence = error_class("WrongSequence", 32)
InvalidGasLimit = error_class("InvalidGasLimit", 41)


# Failures of the machine, not of the input (a full disk, a broken database file, no memory):
# a node that meets one must stop, since recording a result its peers would not record forks
# it from them. Every other exception inside a transaction or a block step is a deterministic
# consequence of the input and is contained (chain/tx/execute.py,
# chain/module_manager.py).
ENVIRONMENT_ERRORS: tuple[type[BaseException], ...] = (OSError, MemoryError, sqlite3.Error)
