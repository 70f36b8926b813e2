"""Canonical protobuf decoding of bytes a user sent: one encoding per message, or a refusal.

Protobuf parsers forgive a lot: a repeated copy of a singular field (the last one wins), unknown
fields (kept aside), varints padded with extra bytes, fields out of order, zero values written
out. Each of these gives one message several encodings, and code that parses the same bytes
twice, or another implementation that resolves them differently, can then see another message
than the one that was executed and signed. The chain therefore accepts only the bytes that the
parsed message serializes back to (ADR-027's rules, unknown fields refused as the Cosmos SDK
refuses them), at every layer it decodes: the tx envelope, body and auth info, each message
inside an Any, and each public key.
"""

from google.protobuf.message import DecodeError, Message

from chain.errors import TxDecodeError
from chain.verified_signatures import Entry, VerifiedSet

# Txs whose every layer was found canonical, by tx hash, so that a tx checked at CheckTx is
# only parsed when its block executes. Canonical encoding is a pure function of the bytes (and
# of the message types, fixed in the process), so a hit answers what checking again would;
# other bytes have another hash and are checked. Shared like chain/verified_signatures.py.
CANONICAL_TXS = VerifiedSet(max_entries=65_536)


def canonical_tx(tx_hash: bytes) -> Entry:
    return ("canonical-tx", tx_hash, b"", b"")


def parse_canonical(message: Message, data: bytes, what: str, known: bool = False) -> None:
    """Fills ``message`` from ``data`` or raises TxDecodeError naming ``what``; ``known``:
    ``data`` is part of a tx in CANONICAL_TXS, so the parse alone is left to do."""
    if known:
        message.ParseFromString(data)
        return
    try:
        message.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise TxDecodeError(f"cannot decode {what}: {exc}") from exc
    message.DiscardUnknownFields()
    if message.SerializeToString(deterministic=True) != data:
        raise TxDecodeError(f"{what} is not canonically encoded: unknown or repeated fields, "
                            f"fields out of order, padded varints or explicit default values")
