"""Bech32 account addresses with the chain's prefix (DESIGN.md §2)."""

import hashlib

import bech32

from chain.errors import InvalidAddress

PREFIX = "infer"


def from_pubkey(compressed: bytes) -> bytes:
    """The Cosmos account address: ripemd160(sha256(compressed secp256k1 public key))."""
    return hashlib.new("ripemd160", hashlib.sha256(compressed).digest()).digest()


def encode(raw: bytes) -> str:
    return bech32.bech32_encode(PREFIX, bech32.convertbits(raw, 8, 5))


def decode(text: str) -> bytes:
    """Address bytes from bech32, refusing other prefixes and malformed strings."""
    prefix, data = bech32.bech32_decode(text)
    if prefix is None or data is None:
        raise InvalidAddress(f"invalid address {text!r}: not bech32")
    if prefix != PREFIX:
        raise InvalidAddress(f"invalid address {text!r}: prefix is {prefix!r}, want {PREFIX!r}")
    raw = bytes(bech32.convertbits(data, 5, 8, False) or b"")
    if len(raw) not in (20, 32):
        raise InvalidAddress(f"invalid address {text!r}: {len(raw)} bytes")
    return raw
