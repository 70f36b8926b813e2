"""secp256k1 signature checks through libsecp256k1 (coincurve), as Cosmos verifies them.

Signatures are 64 bytes r‖s over sha256 of the SignDoc and must be in low-S form: a high-S
signature is the same signature mirrored, and accepting it would make tx hashes malleable.
"""

import hashlib

from coincurve import PublicKey
from coincurve.ecdsa import cdata_to_der, deserialize_compact

from chain.errors import InvalidPubKey, Unauthorized
from chain.verified_signatures import VERIFIED

_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = _ORDER >> 1


def verify(pubkey: bytes, sign_bytes: bytes, signature: bytes) -> bool:
    """True when ``signature`` signs sha256(sign_bytes) under ``pubkey``; raises on bad form.
    A signature that verified before is answered from chain/verified_signatures.py."""
    if len(signature) != 64:
        raise Unauthorized(f"signature must be 64 bytes r||s, got {len(signature)}")
    if int.from_bytes(signature[32:], "big") > _HALF_ORDER:
        raise Unauthorized("signature is not in low-S form")
    digest = hashlib.sha256(sign_bytes).digest()
    cached = ("secp256k1", bytes(pubkey), digest, bytes(signature))
    if VERIFIED.seen(cached):
        return True
    try:
        key = PublicKey(pubkey)
    except ValueError as exc:
        raise InvalidPubKey(f"invalid secp256k1 public key: {exc}") from exc
    try:
        der = cdata_to_der(deserialize_compact(signature))
    except ValueError:
        return False
    if not key.verify(der, digest, hasher=None):
        return False
    VERIFIED.add(cached)
    return True
