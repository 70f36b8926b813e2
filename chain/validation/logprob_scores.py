"""A validator's scores of an output (docs/design.md §6.3, §6.9), and the distance measured
from them: one function for the validator's report and for the chain's measure of a canary's
real artifact, so both give the same figure.

For each output position the scores are the logprob the validator's model gave the sampled
token, the last logprob of its own top list (the bound an alternative missing from that list
is compared with), and its logprobs of the executor's top-k ids, each absent when outside its
list. A report commits their sha256 (``MsgValidation.scores_sha256``). Once the inference is
claimed as a canary, a validator whose report failed the shifted artifact opens them
(``MsgOpenScores``) and the chain measures them against the real artifact the claim put on
record: the checks decide the real artifact without a re-score, so the claim needs no vote
whose voters could pass it unread (an honest executor's real artifact always passes).

    scores = version (1 byte) · position count (varint) · position*
    position = sampled · floor · n (varint) · n entries
    values are −logprob in micro-nats (varints), clamped to [0, 1024 nats]; an entry is 0
    when the id is outside the validator's list, else the value + 1.

Micro-nats keep the validator's own precision: the default model's threshold is 480 of them,
where the artifact's 1/1024-nat quantum would not do.
"""

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from chain.inference.artifact import (
    LOGPROB_FLOOR,
    ArtifactError,
    ArtifactStep,
    VarintReader,
    put_varint,
)
from chain.scales import PPM

VERSION = 1
_MAX_MICRO = round(-LOGPROB_FLOOR * PPM)


@dataclass(frozen=True)
class PositionScores:
    """One position's scores, logprobs in micro-nats (≤ 0); ``tops`` follows the executor's
    top ids, None where the id is outside the validator's list."""

    sampled: int
    floor: int
    tops: tuple[int | None, ...]


def of_artifact(steps: Sequence[ArtifactStep]) -> list[PositionScores]:
    """The scores of a validator whose logprobs are an artifact's own (every top id in its
    list, the list's last logprob its floor)."""
    return [PositionScores(micro(step.logprob),
                           micro(step.top_logprobs[-1] if step.top_logprobs else step.logprob),
                           tuple(micro(lp) for lp in step.top_logprobs)) for step in steps]


def micro(logprob: float) -> int:
    """A logprob in micro-nats, clamped as the scores store it."""
    if math.isnan(logprob):
        raise ValueError("logprob is NaN")
    return -min(_MAX_MICRO, max(0, round(-logprob * PPM))) if logprob < 0 else 0


def encode(positions: Sequence[PositionScores]) -> bytes:
    out = bytearray([VERSION])
    put_varint(out, len(positions))
    for position in positions:
        put_varint(out, -position.sampled)
        put_varint(out, -position.floor)
        put_varint(out, len(position.tops))
        for value in position.tops:
            put_varint(out, 0 if value is None else 1 - value)
    return bytes(out)


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def decode(data: bytes, recorded: Sequence[ArtifactStep]) -> list[PositionScores]:
    """The scores of the output ``recorded`` is an artifact of, from untrusted bytes: one
    position per step, as many entries as the step's top ids. ValueError otherwise."""
    reader = VarintReader(data)
    try:
        if reader.byte("version") != VERSION:
            raise ValueError(f"unknown scores version, expected {VERSION}")
        count = reader.varint("position count", len(recorded))
        if count != len(recorded):
            raise ValueError(f"{count} positions scored, the output has {len(recorded)}")
        positions = []
        for step in recorded:
            sampled = -reader.varint("sampled logprob", _MAX_MICRO)
            floor = -reader.varint("floor", _MAX_MICRO)
            if reader.varint("entry count", len(step.top_ids)) != len(step.top_ids):
                raise ValueError("a position's entries are not the artifact's top ids")
            tops = tuple(None if value == 0 else 1 - value for value in (
                reader.varint("entry", _MAX_MICRO + 1) for _ in step.top_ids))
            positions.append(PositionScores(sampled, floor, tops))
    except ArtifactError as exc:
        raise ValueError(str(exc)) from None
    if reader.remaining():
        raise ValueError(f"{reader.remaining()} trailing bytes after the last position")
    return positions


def position_distance(recorded: ArtifactStep, scores: PositionScores) -> float:
    """Mean |executor − validator| logprob over the sampled token and the executor's top ids,
    in nats. An id outside the validator's list is compared with the list's last logprob,
    an upper bound of its true value, so the difference counted never exceeds the real one."""
    floor = scores.floor / PPM
    diffs = [abs(recorded.logprob - scores.sampled / PPM)]
    diffs += [abs(lp - (min(floor, lp) if mine is None else mine / PPM))
              for lp, mine in zip(recorded.top_logprobs, scores.tops, strict=True)]
    return sum(diffs) / len(diffs)


def distance(recorded: Sequence[ArtifactStep], scores: Sequence[PositionScores]) -> float:
    """Mean over positions of ``position_distance``, in nats (0 for an empty output)."""
    if not recorded:
        return 0.0
    return sum(position_distance(r, s) for r, s in zip(recorded, scores, strict=True)) / \
        len(recorded)
