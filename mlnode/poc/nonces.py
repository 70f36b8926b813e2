"""Nonces: their inputs and targets, their distances, and the search for accepted ones.

A nonce is a uint64. Its stream, keyed by sha256(seed ‖ "input" ‖ nonce), gives
(seq_len + 1) × hidden uniform values of unit variance: the first seq_len rows are the input
sequence, the last row, normalised, is the nonce's target direction. So every nonce costs
one full forward pass, no two nonces share an input, and the acceptance rate is the same for
every seed (``target.py``). A nonce is accepted when the distance between the model's
normalised output and its target is below ``target_distance``.
"""

import functools
import itertools
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from mlnode.poc.counter_rng import hash32, key_words, uniform_from_hash
from mlnode.poc.model import PocModel, direction
from mlnode.poc.presets import PRESETS
from mlnode.poc.target import target_for_acceptance
from mlnode.poc_seed import derive_key
from mlnode.types import PocNonce

MAX_NONCE = (1 << 64) - 1
TOKENS_PER_BATCH = 8192  # positions per forward pass: enough to keep a GPU busy
# The reference prover's screen (bench/poc_bench.py measures it; docs/mlnode.md). The share
# of all nonces that goes on past half depth: the one of most accepted nonces per unit of
# compute, by preset shape (tiny on the 2-core machine and an H100, realistic on an H100);
# other shapes take realistic's. And the margin over the target, in units of 1/sqrt(hidden)
# (the spread of distances scales so), within which a bfloat16 distance is worth a float32
# pass: bf16 lands up to 0.02/sqrt(hidden) from float32 (H200: 1.9e-3 at hidden 128, 2.1e-4
# at 4096).
HALF_DEPTH_KEEP = {PRESETS["tiny"]: 0.36, PRESETS["realistic"]: 0.30}
SCREEN_MARGIN = 0.08


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


@dataclass(frozen=True)
class Screen:
    """Which nonces of a batch are worth a full pass of the proving model.

    A rational prover does not compute every nonce in full: the residual stream after half
    the layers already points near the output, and half precision lands within a few
    thousandths of float32's distance at a fraction of its cost (docs/mlnode.md, "Screening").
    Both shortcuts find genuine nonces only, so no check can refuse them; the reference
    prover takes them itself, so that nobody's weight grows by knowing them.

    `model` holds the same weights in the screening dtype (the proving model itself for a
    screen by depth alone). A nonce whose distance after half the layers is under
    `half_depth_cut` runs through the rest: `half_depth_keep` of all nonces, since a nonce's
    target is a random direction whatever the network does (``target.py``), so the cut is
    that share's distance under the target law and each nonce is judged alone, whatever its
    batch. No cut (infinity): no half-depth stage. Screened distances under target +
    `margin` are computed again by the proving model, unless the screen is that model.
    """

    model: PocModel
    half_depth_keep: float
    half_depth_cut: float
    margin: float


def reference_screen(model: PocModel) -> Screen:
    """The screen the ML node proves with: by depth, and for a float32 proof in bfloat16
    before a float32 pass. bfloat16 runs about ten times as fast on a GPU's tensor cores and
    twice as fast on a CPU with bf16 instructions (this project's 2-core machine); a CPU
    without them emulates it and gains nothing, but no one proves the realistic size on a
    CPU."""
    keep = HALF_DEPTH_KEEP.get(model.spec, HALF_DEPTH_KEEP[PRESETS["realistic"]])
    keep = keep if model.spec.layers >= 2 else 1.0  # one layer has no half
    cut = half_depth_cut(keep, model.spec.hidden)
    if model.dtype == torch.float32:
        return Screen(model.to(model.device, "bfloat16"), keep, cut,
                      SCREEN_MARGIN / math.sqrt(model.spec.hidden))
    return Screen(model, keep, cut, 0.0)


@functools.lru_cache
def half_depth_cut(keep: float, hidden: int) -> float:
    """The half-depth distance under which `keep` of all nonces lie (infinity for 1)."""
    return math.inf if keep >= 1.0 else target_for_acceptance(keep, hidden)


@torch.inference_mode()
def screened(proving: PocModel, screen: Screen, chunk: Sequence[int],
             target_distance: float) -> list[PocNonce]:
    """The accepted nonces of `chunk` that survive `screen`, with the proving model's
    distances."""
    model = screen.model
    inputs, targets = nonce_streams(model, chunk)
    states, kept, done = inputs.to(model.dtype), list(range(len(chunk))), 0
    if screen.half_depth_cut < math.inf:
        done = len(model.layers) // 2
        states = model.layers_forward(states, 0, done)
        near = (direction(states) - targets).norm(dim=-1)
        index = (near < screen.half_depth_cut).nonzero().squeeze(1)
        states, targets, kept = states[index], targets[index], index.tolist()
    states = model.layers_forward(states, done, len(model.layers))
    found = (direction(states) - targets).norm(dim=-1).tolist()
    if model is proving:
        return [PocNonce(chunk[i], d) for i, d in zip(kept, found, strict=True)
                if d < target_distance]
    candidates = [chunk[i] for i, d in zip(kept, found, strict=True)
                  if d < target_distance + screen.margin]
    return [PocNonce(n, d) for n, d in zip(candidates, distances(proving, candidates),
                                           strict=True) if d < target_distance]


def compute_batches(model: PocModel, nonces: Sequence[int], target_distance: float,
                    batch_size: int | None = None, screen: Screen | None = None
                    ) -> Iterator[tuple[int, list[PocNonce]]]:
    """Per forward pass of `batch_size` nonces: how many were computed and which passed.
    Without a screen, every nonce is computed in full and every accepted one found.

    A generator, so that a caller (the gRPC stream) can report progress and yield the
    device between batches.
    """
    size = batch_size or default_batch_size(model)
    # Slices, not len(): a range of 2^63 nonces or more has no len() in Python.
    for start in itertools.count(0, size):
        chunk = nonces[start:start + size]
        if not chunk:
            return
        if screen is not None:
            yield len(chunk), screened(model, screen, chunk, target_distance)
            continue
        found = [PocNonce(n, d) for n, d in zip(chunk, distances(model, chunk), strict=True)
                 if d < target_distance]
        yield len(chunk), found


def compute(model: PocModel, nonces: Sequence[int], target_distance: float,
            batch_size: int | None = None, screen: Screen | None = None) -> list[PocNonce]:
    """The accepted nonces among `nonces` (a range or a list), with their distances."""
    return [hit for _, found in compute_batches(model, nonces, target_distance, batch_size,
                                                screen) for hit in found]
