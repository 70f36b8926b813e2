"""Canaries (docs/design.md §6.9): inferences whose executor recorded a shifted artifact.

A canary is a real inference, started, served and finished like any other, whose executor
delivered the honest output but recorded an artifact moved away from the model by a fixed
shift: an honest re-score fails it on distance, a validator that passes it did not compute.
Which inferences are canaries follows from the executor's epoch seed, committed before the
epoch and revealed after it (``key``), so nobody else can tell them apart before their checks
are due, and the executor can neither skip a canary nor make an ordinary inference one.

The shift keeps everything a reader can check without the model: each position's most
likely logprob stays; the others move together by ``quanta`` (so their order and gaps stay),
up or down by the parity of their gap to the first, so that the gap never turns negative and
the distribution of gaps is unchanged wherever it is smooth on the scale of two shifts. It is
its own inverse: shifting a shifted artifact gives the original back, which is how the chain
recovers the real artifact when the executor claims the canary.
"""

import hashlib

from chain.inference import artifact
from chain.inference.artifact import LOGPROB_QUANTUM, ArtifactStep, dequantize, quantize
from chain.scales import PPM
from chain.validation.verdict import threshold_micro
from inferchain_pb.inference.v1.inference_pb2 import Model

TAG = b"inferchain/canary/v2"
KEY_BYTES = 32
TICKETS = 1 << 64
# An honest re-score of a canary measures at least this many times the distance threshold.
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


def moves(data: bytes, quanta: int) -> bool:
    """Whether the shift changes the artifact (not when it has no alternative to move): only
    then can the inference be a canary."""
    return shift(data, quanta) != data


def shift(data: bytes, quanta: int) -> bytes:
    """The artifact with every position's alternatives shifted (an involution); ``data``
    must be a valid artifact (the chain checked it at the finish)."""
    k, steps = artifact.decode(data)
    if quanta <= 0:
        return data
    return artifact.encode([_shift_step(step, quanta) for step in steps], k)


def _shift_step(step: ArtifactStep, quanta: int) -> ArtifactStep:
    tops = [quantize(lp) for lp in step.top_logprobs]
    rank = step.top_ids.index(step.token_id) if step.token_id in step.top_ids else None
    explicit = None if rank is not None else quantize(step.logprob)
    anchor = tops[0] if tops else 0
    moved = tops[1:] + ([explicit] if explicit is not None else [])
    if not moved:
        return step
    gap = moved[0] - anchor
    room = _Q_MAX - max(moved)  # how far the moved values may go up before the floor
    if gap < 0:
        return step  # not an artifact an honest engine writes: left as it is
    if gap % (2 * quanta) < quanta:
        if room < quanta:
            return step  # its partner would lie below the floor: the pair does not exist
        delta = quanta
    else:
        delta = -quanta
    tops[1:] = [q + delta for q in tops[1:]]
    top_logprobs = tuple(dequantize(q) for q in tops)
    if rank is not None:
        logprob = top_logprobs[rank]
    else:
        logprob = dequantize(explicit + delta)
    return ArtifactStep(step.token_id, logprob, step.top_ids, top_logprobs)
