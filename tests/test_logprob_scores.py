"""A validator's scores: what its report's distance is measured from, and what the chain
measures a claimed canary's real artifact with. The encoding round-trips, refuses anything
that does not fit the output it scores, and one function gives the validator's figure and
the chain's."""

import random

import pytest

from apinode.validation.figures import measure, position_scores
from chain.inference import artifact
from chain.inference.artifact import ArtifactStep
from chain.scales import PPM
from chain.validation import canary, logprob_scores
from chain.validation.logprob_scores import PositionScores
from mlnode.types import ScoredPosition, TokenStep


def steps(count: int, seed: int = 0, k: int = 5) -> list[ArtifactStep]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        tops = sorted((-rng.uniform(0, 6) for _ in range(k)), reverse=True)
        ids = tuple(rng.sample(range(100, 5000), k))
        out.append(ArtifactStep(ids[0], tops[0], ids, tuple(tops)))
    return out


def scored_like(recorded: list[ArtifactStep], noise: float, seed: int = 1,
                extra: int = 3) -> list[ScoredPosition]:
    """A validator's Score of the same output: the recorded logprobs moved by up to
    ``noise``, its own list longer than the executor's, one of the executor's ids left out."""
    rng = random.Random(seed)
    positions = []
    for step in recorded:
        ids = list(step.top_ids[:-1]) + [900_000 + i for i in range(extra)]
        lps = sorted((lp + rng.uniform(-noise, noise) for lp in
                      (*step.top_logprobs[:-1], *[-7.0 - i for i in range(extra)])),
                     reverse=True)
        positions.append(ScoredPosition(TokenStep(step.token_id, lps[0], tuple(ids),
                                                  tuple(lps)), None))
    return positions


def test_scores_round_trip_and_keep_micro_nats():
    recorded = steps(40)
    scores = [position_scores(r, s) for r, s in zip(recorded, scored_like(recorded, 1e-4),
                                                     strict=True)]
    assert any(None in p.tops for p in scores)  # an id outside the validator's list
    assert logprob_scores.decode(logprob_scores.encode(scores), recorded) == scores
    assert logprob_scores.micro(-1e-7) == 0 and logprob_scores.micro(0.3) == 0
    assert logprob_scores.micro(-2000.0) == -1024 * PPM  # clamped at the artifact's floor
    with pytest.raises(ValueError):
        logprob_scores.micro(float("nan"))


def test_the_validators_figure_is_what_the_chain_measures_from_its_scores():
    recorded = steps(32, seed=3)
    data = artifact.encode(recorded, 5)
    _, decoded = artifact.decode(data)
    output = [s.token_id for s in decoded]
    scored = scored_like(decoded, 2e-4)
    figures = measure(decoded, output, scored, greedy=True, ended=True, tolerance=0.0)
    opened = logprob_scores.decode(figures.scores, decoded)
    assert figures.distance == logprob_scores.distance(decoded, opened) > 0
    # Against a canary's shifted artifact the same scores fail by the shift.
    key = bytes(range(32))
    shifted = canary.shift(data, key, canary.shift_quanta(480, 5))
    _, moved = artifact.decode(shifted)
    assert logprob_scores.distance(moved, opened) > figures.distance + 3 * 480e-6


@pytest.mark.parametrize("garbage", [
    b"",
    b"\x02",  # unknown version
    b"\x01\x05",  # five positions for an output of four
    b"\x01\x04\x00",  # truncated
    b"\x01\x80\x00",  # a non-minimal varint
])
def test_scores_that_do_not_fit_the_output_are_refused(garbage):
    with pytest.raises(ValueError):
        logprob_scores.decode(garbage, steps(4))


def test_scores_with_a_wrong_entry_count_or_trailing_bytes_are_refused():
    recorded = steps(3)
    good = [PositionScores(-1, -2, tuple(-3 for _ in step.top_ids)) for step in recorded]
    assert logprob_scores.decode(logprob_scores.encode(good), recorded) == good
    short = list(good)
    short[1] = PositionScores(-1, -2, (-3,))
    with pytest.raises(ValueError, match="top ids"):
        logprob_scores.decode(logprob_scores.encode(short), recorded)
    with pytest.raises(ValueError, match="trailing"):
        logprob_scores.decode(logprob_scores.encode(good) + b"\x00", recorded)
