"""The PoC seed: what makes one participant's sprint its own and unknowable in advance.

Outside the torch package `mlnode.poc` so the API node computes seeds without torch.
"""

import hashlib

SEED_BYTES = 32


def poc_seed(block_hash: bytes, address: str) -> bytes:
    """sha256(epoch block hash ‖ participant address as UTF-8).

    The block hash makes the work impossible to start before the epoch opens; the address
    makes every participant's model and inputs different, so nonces found by one cannot be
    claimed by another.
    """
    return hashlib.sha256(block_hash + address.encode()).digest()


def derive_key(seed: bytes, *parts: bytes) -> bytes:
    """A sub-key for one use of the seed (a weight tensor, a nonce's input, the target).

    Domain separation by hashing keeps the streams independent: no two uses of the seed
    share a counter space, whatever their sizes.
    """
    if len(seed) != SEED_BYTES:
        raise ValueError(f"seed must be {SEED_BYTES} bytes, got {len(seed)}")
    return hashlib.sha256(seed + b"".join(len(p).to_bytes(2, "big") + p for p in parts)).digest()
