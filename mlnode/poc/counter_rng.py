"""A counter-based generator that gives bit-identical float32 values on CPU and GPU.

Element ``j`` of a stream keyed by ``k0, k1, k2`` (three 32-bit words of a sha256 sub-key) is
``mix(mix(mix(j ^ k0) ^ k1) ^ k2)``, where ``mix`` is the "lowbias32" integer finaliser
(two xor-shifts and multiplies, a bijection on 32-bit words). All of it is integer
arithmetic on int64 tensors kept below 2^49, so it is exact on every device; the top 24 bits
then become an odd integer in (-2^24, 2^24) (exact in float32) times one float32 scale, a
single correctly rounded multiply. Nothing depends on CUDA's or the CPU's RNG, on
transcendental functions or on reduction order, which is what makes the weights equal bit for
bit across devices (``tests/test_mlnode_poc.py`` and ``bench/poc_bench.py`` check it).

Values are uniform, not normal: a random-weight transformer needs only the right variance,
and turning uniforms into normals (Box-Muller) needs log and cos, which differ in the last
bit between CPU and GPU libraries.
"""

import math

import torch

_MASK32 = 0xFFFFFFFF
_MIX_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)
KEY_WORDS = 3
_CPU_CHUNK = 1 << 18
_CUDA_CHUNK = 1 << 24


def key_words(key: bytes) -> tuple[int, ...]:
    """The first KEY_WORDS 32-bit words of a sub-key: 96 bits, so two streams coincide only
    by a sha256 collision on them (a birthday search would need ~2^48 hashes)."""
    return tuple(int.from_bytes(key[4 * i:4 * i + 4], "big") for i in range(KEY_WORDS))


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2^32 for x in [0, 2^32), in two 16-bit halves of c so int64 never
    overflows (an overflow would be undefined behaviour in the C++ kernels)."""
    low = x * (c & 0xFFFF)
    high = ((x * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, _MIX_MULTIPLIERS[0])
    x = x ^ (x >> 15)
    x = _mul32(x, _MIX_MULTIPLIERS[1])
    return x ^ (x >> 16)


def hash32(counter: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Keyed hash of int64 counters in [0, 2^32); `keys` is [..., KEY_WORDS] and broadcasts
    against `counter` over its leading dimensions."""
    h = counter
    for i in range(KEY_WORDS):
        h = _mix32(h ^ keys[..., i:i + 1])
    return h


def uniform_from_hash(h: torch.Tensor, std: float) -> torch.Tensor:
    """float32 values uniform on (-a, a) with a = std·√3 (so the standard deviation is
    `std`), from 32-bit hashes, with one rounding step: exact odd integer times a scale."""
    odd = 2 * (h >> 8) + 1 - (1 << 24)
    scale = torch.tensor(std * math.sqrt(3.0) / (1 << 24), dtype=torch.float32)
    return odd.to(torch.float32) * scale.to(h.device)


def uniform_tensor(key: bytes, shape: tuple[int, ...], std: float,
                   device: torch.device | str) -> torch.Tensor:
    """A float32 tensor of `shape` from the stream `key`, element j at flat index j.

    Hashed in chunks: each step makes int64 temporaries of the chunk's size, and at full
    size (hundreds of MB per matrix of the realistic preset) the CPU spends its time
    faulting in fresh pages rather than hashing. On CUDA, larger chunks keep launches few.
    """
    numel = math.prod(shape)
    if numel > 1 << 32:
        raise ValueError(f"a stream holds at most 2^32 values, {shape} needs {numel}")
    device = torch.device(device)
    chunk = _CUDA_CHUNK if device.type == "cuda" else _CPU_CHUNK
    keys = torch.tensor([key_words(key)], dtype=torch.int64, device=device)
    out = torch.empty(numel, dtype=torch.float32, device=device)
    for start in range(0, numel, chunk):
        counter = torch.arange(start, min(start + chunk, numel), dtype=torch.int64,
                               device=device).unsqueeze(0)
        out[start:start + chunk] = uniform_from_hash(hash32(counter, keys), std).squeeze(0)
    return out.view(shape)
