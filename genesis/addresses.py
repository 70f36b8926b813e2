"""Bech32 account addresses with the chain's prefix, checked before they reach genesis."""

import bech32

ACCOUNT_PREFIX = "infer"
# 20 bytes for key-derived accounts; 32 for module and other derived accounts, as in the SDK.
_ADDRESS_LENGTHS = (20, 32)


def validate_account_address(text: str, prefix: str = ACCOUNT_PREFIX) -> str:
    """Returns the address in canonical lower case, or raises ValueError saying what is wrong.

    Checks the bech32 checksum (not bech32m), the human-readable prefix and the payload length.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("required, a bech32 string such as 'infer1...'")
    hrp, data5 = bech32.bech32_decode(text)
    if hrp is None or data5 is None:
        raise ValueError(f"{text!r} is not a valid bech32 string (bad characters or checksum)")
    if hrp != prefix:
        raise ValueError(f"{text!r} has prefix {hrp!r}; accounts on this chain use {prefix!r}")
    data = bech32.convertbits(data5, 5, 8, False)
    if data is None or len(data) not in _ADDRESS_LENGTHS:
        raise ValueError(f"{text!r} does not hold a 20- or 32-byte address")
    return text.lower()
