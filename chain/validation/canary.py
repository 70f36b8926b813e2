"""Canaries (docs/design.md §6.9): inferences whose executor recorded a shifted artifact.

A canary is a real inference, started, served and finished like any other, whose executor
delivered the honest output but recorded an artifact moved away from the model by a shift
drawn from its key: an honest re-score fails it on distance, a validator that passes it did
not compute.
Which inferences are canaries follows from the executor's epoch seed, committed before the
epoch and revealed after it (``key``), so nobody else can tell them apart before their checks
are due, and the executor can neither skip a canary nor make an ordinary inference one.

The shift keeps everything a reader can check without the model: each position's most
likely logprob stays; the others move together (so their order and gaps stay) by a size
between one and two times ``quanta``, up or down by the residue of their gap to the first,
size and residue offset drawn from the key per position, so that no gap turns negative and a
reader without the key cannot tell at which residues gaps were moved. It is its own inverse:
shifting a shifted artifact with the same key gives the original back, which is how the chain
recovers the real artifact when the executor claims the canary.
"""

import hashlib

from chain.inference import artifact
from chain.inference.artifact import LOGPROB_QUANTUM, ArtifactStep, dequantize, quantize
from chain.scales import PPM
from chain.validation import logprob_scores
from chain.validation.verdict import threshold_micro
from inferchain_pb.inference.v1.inference_pb2 import Model

TAG = b"inferchain/canary/v2"
KEY_BYTES = 32
TICKETS = 1 << 64
# The shift's least size, in distance thresholds, at a position whose alternatives all move
# (positions that cannot move lower an artifact's figure: tasks record it at the claim).
THRESHOLDS_APART = 4
_Q_MAX = quantize(artifact.LOGPROB_FLOOR)


def key(seed: bytes, inference_id: str) -> bytes:
    """The inference's canary key under its executor's seed of the draw's epoch."""
    return hashlib.sha256(TAG + seed + inference_id.encode()).digest()


def is_canary(canary_key: bytes, rate_ppm: int) -> bool:
    return int.from_bytes(canary_key[:8], "big") < TICKETS * rate_ppm // PPM


def shift_quanta(threshold_micro: int, k: int) -> int:
    """How far the shift moves each logprob, in artifact quanta: enough that the position's
    mean difference (k − 1 of its k + 1 compared logprobs moved, at worst) is
    ``THRESHOLDS_APART`` thresholds. 0 when an artifact has no alternative to move (k < 2)."""
    if k < 2:
        return 0
    nano = THRESHOLDS_APART * threshold_micro * (k + 1) * 1000
    per_quantum = round(LOGPROB_QUANTUM * 1e9) * (k - 1)
    return max(1, -(-nano // per_quantum))


def model_quanta(model: Model, k: int) -> int:
    """``shift_quanta`` for an artifact of top-k ``k`` of ``model`` in its serving dtype."""
    return shift_quanta(threshold_micro(model), k)


def distance_micro(real: bytes, recorded: bytes) -> int:
    """The distance, in micro-nats, between two artifacts of the same output, as a validator
    whose logprobs were ``real``'s would measure ``recorded`` (chain/validation/
    logprob_scores.py)."""
    _, mine = artifact.decode(real)
    _, theirs = artifact.decode(recorded)
    return round(logprob_scores.distance(theirs, logprob_scores.of_artifact(mine)) * PPM)


def moves(data: bytes, canary_key: bytes, quanta: int) -> bool:
    """Whether the shift changes the artifact (not when it has no alternative to move): only
    then can the inference be a canary."""
    return shift(data, canary_key, quanta) != data


def shift(data: bytes, canary_key: bytes, quanta: int) -> bytes:
    """The artifact with every position's alternatives shifted (an involution); ``data``
    must be a valid artifact (the chain checked it at the finish)."""
    k, steps = artifact.decode(data)
    if quanta <= 0:
        return data
    return artifact.encode([_shift_step(step, _position_shift(canary_key, i, quanta))
                            for i, step in enumerate(steps)], k)


def _position_shift(canary_key: bytes, position: int, quanta: int) -> tuple[int, int]:
    """The position's shift d in [quanta, 2 quanta) and pairing offset in [0, 2d), from the
    key: without it a reader cannot know at which residue a gap was moved, nor by how much."""
    draw = hashlib.sha256(canary_key + position.to_bytes(4, "big")).digest()
    size = quanta + int.from_bytes(draw[:8], "big") % quanta
    return size, int.from_bytes(draw[8:16], "big") % (2 * size)


def _shift_step(step: ArtifactStep, pairing: tuple[int, int]) -> ArtifactStep:
    size, offset = pairing
    tops = [quantize(lp) for lp in step.top_logprobs]
    rank = step.top_ids.index(step.token_id) if step.token_id in step.top_ids else None
    explicit = None if rank is not None else quantize(step.logprob)
    anchor = tops[0] if tops else 0
    moved = tops[1:] + ([explicit] if explicit is not None else [])
    if not moved:
        return step
    gap = moved[0] - anchor
    if gap < 0:
        return step  # not an artifact an honest engine writes: left as it is
    # Gaps pair as (x, x + size) by their residue: each moves to its partner, which moves
    # back. A gap whose partner would lie below 0 or the moved values below the floor has
    # none (no valid artifact holds it) and stays.
    delta = size if (gap + offset) % (2 * size) < size else -size
    if gap + delta < 0 or max(moved) + delta > _Q_MAX:
        return step
    tops[1:] = [q + delta for q in tops[1:]]
    top_logprobs = tuple(dequantize(q) for q in tops)
    if rank is not None:
        logprob = top_logprobs[rank]
    else:
        logprob = dequantize(explicit + delta)
    return ArtifactStep(step.token_id, logprob, step.top_ids, top_logprobs)
