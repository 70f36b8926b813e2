"""Bech32 account addresses with the chain's prefix (docs/design.md §2.3)."""

import hashlib
from functools import lru_cache

import bech32

from chain.errors import InvalidAddress

PREFIX = "infer"


@lru_cache(maxsize=1 << 16)
def from_pubkey(compressed: bytes) -> bytes:
    """The Cosmos account address: ripemd160(sha256(compressed secp256k1 public key)).

    Cached: every tx's ante derives its signer's address from its key again."""
    return hashlib.new("ripemd160", hashlib.sha256(compressed).digest()).digest()


@lru_cache(maxsize=1 << 16)
def encode(raw: bytes) -> str:
    return bech32.bech32_encode(PREFIX, bech32.convertbits(raw, 8, 5))


@lru_cache(maxsize=1 << 16)
def decode(text: str) -> bytes:
    """Address bytes from bech32, refusing other prefixes, malformed strings and every
    spelling but the canonical lower-case one: state is keyed by address strings in places,
    so two spellings of one account would be two accounts.

    Cached: a block converts the same few addresses dozens of times, and bech32's checksum
    in pure Python costs about 50 µs each time.
    """
    prefix, data = bech32.bech32_decode(text)
    if prefix is None or data is None:
        raise InvalidAddress(f"invalid address {text!r}: not bech32")
    if prefix != PREFIX:
        raise InvalidAddress(f"invalid address {text!r}: prefix is {prefix!r}, want {PREFIX!r}")
    raw = bytes(bech32.convertbits(data, 5, 8, False) or b"")
    if len(raw) not in (20, 32):
        raise InvalidAddress(f"invalid address {text!r}: {len(raw)} bytes")
    if encode(raw) != text:
        raise InvalidAddress(f"invalid address {text!r}: not canonical; write it {encode(raw)}")
    return raw
