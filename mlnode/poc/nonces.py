"""Nonces: their inputs and targets, their distances, and the search for accepted ones.

A nonce is a uint64. Its stream, keyed by sha256(seed ‖ "input" ‖ nonce), gives
(seq_len + 1) × hidden uniform values of unit variance: the first seq_len rows are the input
sequence, the last row, normalised, is the nonce's target direction. So every nonce costs
one full forward pass, no two nonces share an input, and the acceptance rate is the same for
every seed (``target.py``). A nonce is accepted when the distance between the model's
normalised output and its target is below ``target_distance``.
"""

import itertools
import struct
from collections.abc import Iterator, Sequence

import torch

from mlnode.poc.counter_rng import hash32, key_words, uniform_from_hash
from mlnode.poc.model import PocModel
from mlnode.poc_seed import derive_key
from mlnode.types import PocNonce

MAX_NONCE = (1 << 64) - 1
TOKENS_PER_BATCH = 8192  # positions per forward pass: enough to keep a GPU busy


def default_batch_size(model: PocModel) -> int:
    return max(1, TOKENS_PER_BATCH // model.spec.seq_len)


def nonce_streams(model: PocModel, nonces: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs [n, seq_len, hidden] and unit targets [n, hidden], float32 on the model's device.

    The raw values are bit-identical on every device; the targets' normalisation is a float32
    reduction, equal across devices up to the last bit or so, far inside the tolerance.
    """
    spec = model.spec
    for n in nonces:
        if not 0 <= n <= MAX_NONCE:
            raise ValueError(f"nonce {n} is not a uint64")
    keys = torch.tensor(
        [key_words(derive_key(model.seed, b"input", struct.pack(">Q", n))) for n in nonces],
        dtype=torch.int64).to(model.device)
    counter = torch.arange((spec.seq_len + 1) * spec.hidden, dtype=torch.int64,
                           device=model.device).unsqueeze(0)
    values = uniform_from_hash(hash32(counter, keys), std=1.0)
    values = values.view(len(nonces), spec.seq_len + 1, spec.hidden)
    targets = values[:, -1]
    return values[:, :-1], targets / targets.norm(dim=-1, keepdim=True)


def distances(model: PocModel, nonces: Sequence[int]) -> list[float]:
    """Each nonce's distance to its target, from one forward pass over all of them."""
    if not nonces:
        return []
    inputs, targets = nonce_streams(model, nonces)
    return (model.forward(inputs) - targets).norm(dim=-1).tolist()


def compute_batches(model: PocModel, nonces: Sequence[int], target_distance: float,
                    batch_size: int | None = None) -> Iterator[tuple[int, list[PocNonce]]]:
    """Per forward pass of `batch_size` nonces: how many were computed and which passed.

    A generator, so that a caller (the gRPC stream) can report progress and yield the
    device between batches.
    """
    size = batch_size or default_batch_size(model)
    # Slices, not len(): a range of 2^63 nonces or more has no len() in Python.
    for start in itertools.count(0, size):
        chunk = nonces[start:start + size]
        if not chunk:
            return
        found = [PocNonce(n, d) for n, d in zip(chunk, distances(model, chunk), strict=True)
                 if d < target_distance]
        yield len(chunk), found


def compute(model: PocModel, nonces: Sequence[int], target_distance: float,
            batch_size: int | None = None) -> list[PocNonce]:
    """The accepted nonces among `nonces` (a range or a list), with their distances."""
    return [hit for _, found in compute_batches(model, nonces, target_distance, batch_size)
            for hit in found]
