"""Errors a transaction or query can fail with, each with a stable (codespace, code).

Codes in the "sdk" codespace keep the Cosmos SDK's numbers, so wallets and explorers that know
those codes read ours the same way. A module adds its own codespace instead of reusing these.
"""


class ChainError(Exception):
    codespace = "sdk"
    code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _error(name: str, code: int, codespace: str = "sdk") -> type[ChainError]:
    return type(name, (ChainError,), {"code": code, "codespace": codespace})


TxDecodeError = _error("TxDecodeError", 2)
InvalidSequence = _error("InvalidSequence", 3)
Unauthorized = _error("Unauthorized", 4)
InsufficientFunds = _error("InsufficientFunds", 5)
UnknownRequest = _error("UnknownRequest", 6)
InvalidAddress = _error("InvalidAddress", 7)
InvalidPubKey = _error("InvalidPubKey", 8)
UnknownAddress = _error("UnknownAddress", 9)
InvalidCoins = _error("InvalidCoins", 10)
OutOfGas = _error("OutOfGas", 11)
MemoTooLarge = _error("MemoTooLarge", 12)
InsufficientFee = _error("InsufficientFee", 13)
TooManySignatures = _error("TooManySignatures", 14)
NoSignatures = _error("NoSignatures", 15)
InvalidRequest = _error("InvalidRequest", 18)
TxTooLarge = _error("TxTooLarge", 21)
InvalidSigner = _error("InvalidSigner", 24)
InvalidChainId = _error("InvalidChainId", 28)
TxTimeoutHeight = _error("TxTimeoutHeight", 30)
UnknownExtensionOptions = _error("UnknownExtensionOptions", 31)
NotFound = _error("NotFound", 38)
WrongSequence = _error("WrongSequence", 32)
InvalidGasLimit = _error("InvalidGasLimit", 41)
