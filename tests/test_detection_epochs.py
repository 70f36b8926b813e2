"""The participant-epoch detection bench plays the chain's INVALID rule exactly: its Markov
chain agrees with every sequence of passed and failed checks enumerated through the chain's
own rule, and what the rule cannot catch (a cheat no check fails) it never reports caught."""

import itertools

import pytest

from bench.detection.epochs import Rule, caught_by_checks, epoch_rows
from bench.economics.rates import HALF_PRECISION
from chain.validation.params import ValidationParams
from chain.validation.tasks import invalid_by_invalidations
from inferchain_pb.inference.v1.validation_pb2 import ExecutorStats

CHECKS = 12


def invalid_after(outcomes: tuple[bool, ...], params: ValidationParams) -> bool:
    """Plays checks through the stats the chain keeps: a pass ends the run, a failure is an
    invalidation the chain then judges by its rule."""
    stats = ExecutorStats()
    for failed in outcomes:
        if not failed:
            stats.epoch_passed += 1
            stats.consecutive_invalidations = 0
            continue
        stats.epoch_invalidations += 1
        stats.consecutive_invalidations += 1
        if invalid_by_invalidations(stats, params):
            return True
    return False


@pytest.mark.parametrize("params", [ValidationParams(), ValidationParams(
    invalid_after_consecutive=4, invalid_min_count=2, invalid_rate_ppm=400_000)])
def test_the_markov_chain_agrees_with_every_sequence_of_checks(params: ValidationParams):
    rule = Rule.of(params, CHECKS)
    rate = 0.3
    expected = [0.0] * (CHECKS + 1)
    for outcomes in itertools.product((False, True), repeat=CHECKS):
        failures = sum(outcomes)
        chance = rate ** failures * (1 - rate) ** (CHECKS - failures)
        for n in range(CHECKS + 1):
            expected[n] += chance * invalid_after(outcomes[:n], params)
    assert caught_by_checks(rate, rule, CHECKS).tolist() == pytest.approx(expected, abs=1e-12)


def test_every_row_is_caught_as_often_as_its_rate_allows():
    rule = Rule.of(ValidationParams(), 200)
    rows = {(r.detection.cheat, r.detection.max_tokens): r
            for r in epoch_rows(rule, 200, HALF_PRECISION)}
    never = rows[("int8", 8)]  # no check fails it under the bf16 rule: the evidence test's
    assert (never.rate, never.checks, never.within_goal_tokens) == (0.0, None, 0.0)
    every = rows[("skip-layers", 8)]  # fails nearly every check: INVALID within a few
    assert every.met and every.checks is not None and every.checks <= 12
    assert all(r.within_goal_tokens <= 1.0 for r in rows.values())
