"""ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381): a verifiable random function on ed25519 keys.

A block's proposer proves the block's random value with its validator key (docs/design.md
§2.7). A signature would not do: an ed25519 signer may pick its nonce, so one key has many
valid signatures of one message and a proposer could try them until the value suits it. A
VRF's output is unique: a prover may vary its proof's nonce too, but every proof that
verifies for one key and one input has the same output, so the proposer's only choice is to
propose or not.

Scalar multiplications and additions use libsodium (PyNaCl's bindings), which refuses points
outside the prime-order subgroup; decoding an arbitrary 32-byte string to a curve point and
clearing its cofactor, which the hash-to-curve step needs, are done here in integers (RFC 8032
§5.1.3 and §5.1.4). Verification refuses a public key or a proof point outside the prime-order
subgroup, which an honest key and proof never are: stricter than the RFC, never looser, so a
proof this module accepts is one the RFC accepts, with the same output.
"""

import hashlib

from nacl import bindings
from nacl.exceptions import RuntimeError as NaclRuntimeError

SUITE = b"\x03"  # ECVRF-EDWARDS25519-SHA512-TAI
POINT_BYTES = 32
CHALLENGE_BYTES = 16
SCALAR_BYTES = 32
PROOF_BYTES = POINT_BYTES + CHALLENGE_BYTES + SCALAR_BYTES
OUTPUT_BYTES = 64

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493  # the prime subgroup's order
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_COFACTOR_DOUBLINGS = 3  # cofactor 8


class InvalidProof(ValueError):
    """The proof does not verify under this key and input."""


def public_key(secret: bytes) -> bytes:
    """The ed25519 public key of a 32-byte secret key (a validator key's seed)."""
    return bindings.crypto_scalarmult_ed25519_base_noclamp(_scalar_bytes(_secret_scalar(secret)))


def prove(secret: bytes, alpha: bytes) -> bytes:
    """The proof (80 bytes) that ``secret``'s key maps ``alpha`` to its output."""
    x = _secret_scalar(secret)
    y = public_key(secret)
    h = _encode_to_curve(y, alpha)
    gamma = _mul(x, h)
    k = int.from_bytes(hashlib.sha512(hashlib.sha512(secret).digest()[32:] + h).digest(),
                       "little") % _L
    c = _challenge(y, h, gamma, _base_mul(k), _mul(k, h))
    s = (k + c * x) % _L
    return gamma + c.to_bytes(CHALLENGE_BYTES, "little") + s.to_bytes(SCALAR_BYTES, "little")


def verify(public: bytes, proof: bytes, alpha: bytes) -> bytes:
    """The output (64 bytes) of a proof that verifies under ``public`` for ``alpha``; raises
    InvalidProof for any other proof, key or length."""
    if len(public) != POINT_BYTES or len(proof) != PROOF_BYTES:
        raise InvalidProof(f"a key is {POINT_BYTES} bytes and a proof {PROOF_BYTES}")
    if not bindings.crypto_core_ed25519_is_valid_point(public):
        raise InvalidProof("the public key is no point of the prime-order subgroup")
    gamma = proof[:POINT_BYTES]
    c = int.from_bytes(proof[POINT_BYTES:POINT_BYTES + CHALLENGE_BYTES], "little")
    s = int.from_bytes(proof[POINT_BYTES + CHALLENGE_BYTES:], "little")
    if s >= _L:
        raise InvalidProof("the proof's scalar is not reduced")
    if not bindings.crypto_core_ed25519_is_valid_point(gamma):
        raise InvalidProof("the proof's point is no point of the prime-order subgroup")
    h = _encode_to_curve(public, alpha)
    try:
        u = bindings.crypto_core_ed25519_sub(_base_mul(s), _mul(c, public))
        v = bindings.crypto_core_ed25519_sub(_mul(s, h), _mul(c, gamma))
    except NaclRuntimeError as exc:  # a product at the identity: no honest proof gives one
        raise InvalidProof("the proof's scalars give the identity") from exc
    if _challenge(public, h, gamma, u, v) != c:
        raise InvalidProof("the proof does not verify")
    return output(proof)


def output(proof: bytes) -> bytes:
    """The VRF output of a proof (RFC 9381 proof_to_hash); meaningful once it verified."""
    gamma = _decode(proof[:POINT_BYTES])
    if gamma is None:
        raise InvalidProof("the proof's point does not decode")
    return hashlib.sha512(SUITE + b"\x03" + _encode(_clear_cofactor(gamma)) + b"\x00").digest()


def _secret_scalar(secret: bytes) -> int:
    """RFC 8032 §5.1.5: the clamped low half of sha512(secret)."""
    if len(secret) != 32:
        raise ValueError("a secret key is 32 bytes")
    low = bytearray(hashlib.sha512(secret).digest()[:32])
    low[0] &= 248
    low[31] &= 127
    low[31] |= 64
    return int.from_bytes(low, "little")


def _scalar_bytes(n: int) -> bytes:
    return (n % _L).to_bytes(32, "little")


def _base_mul(n: int) -> bytes:
    return bindings.crypto_scalarmult_ed25519_base_noclamp(_scalar_bytes(n))


def _mul(n: int, point: bytes) -> bytes:
    return bindings.crypto_scalarmult_ed25519_noclamp(_scalar_bytes(n), point)


def _challenge(*points: bytes) -> int:
    digest = hashlib.sha512(SUITE + b"\x02" + b"".join(points) + b"\x00").digest()
    return int.from_bytes(digest[:CHALLENGE_BYTES], "little")


def _encode_to_curve(salt: bytes, alpha: bytes) -> bytes:
    """RFC 9381 §5.4.1.1, try and increment: the first counter whose hash decodes to a point
    that is not of small order, times the cofactor."""
    for counter in range(256):
        digest = hashlib.sha512(SUITE + b"\x01" + salt + alpha + bytes([counter]) + b"\x00")
        point = _decode(digest.digest()[:POINT_BYTES])
        if point is not None:
            cleared = _clear_cofactor(point)
            if not _is_identity(cleared):
                return _encode(cleared)
    raise InvalidProof("no counter gave a point")  # each try succeeds with chance about 1/2


# Points in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z.
_Point = tuple[int, int, int, int]


def _decode(raw: bytes) -> _Point | None:
    """RFC 8032 §5.1.3; None where decoding fails."""
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if v * x * x % _P == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif v * x * x % _P != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


def _encode(point: _Point) -> bytes:
    x, y, z, _ = point
    inverse = pow(z, _P - 2, _P)
    x, y = x * inverse % _P, y * inverse % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _add(a: _Point, b: _Point) -> _Point:
    """RFC 8032 §5.1.4's addition, which doubles too."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    first = (y1 - x1) * (y2 - x2) % _P
    second = (y1 + x1) * (y2 + x2) % _P
    c = t1 * 2 * _D * t2 % _P
    d = z1 * 2 * z2 % _P
    e, f, g, h = second - first, d - c, d + c, second + first
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _clear_cofactor(point: _Point) -> _Point:
    for _ in range(_COFACTOR_DOUBLINGS):
        point = _add(point, point)
    return point


def _is_identity(point: _Point) -> bool:
    x, y, z, _ = point
    return x % _P == 0 and (y - z) % _P == 0
