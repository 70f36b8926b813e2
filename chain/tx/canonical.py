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


def parse_canonical(message: Message, data: bytes, what: str) -> None:
    """Fills ``message`` from ``data`` or raises TxDecodeError naming ``what``."""
    try:
        message.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise TxDecodeError(f"cannot decode {what}: {exc}") from exc
    message.DiscardUnknownFields()
    if message.SerializeToString(deterministic=True) != data:
        raise TxDecodeError(f"{what} is not canonically encoded: unknown or repeated fields, "
                            f"fields out of order, padded varints or explicit default values")
