"""Detection per cheating participant-epoch: ``python -m bench.detection.epochs``.

One checked inference of a cheat fails its check with the probability the calibration
measured under each registered precision's rule (fp32 and half precision, as
``bench/economics/rates.py`` keeps them, at the low end of the 95 % interval). A participant
is treated as a cheater for the epoch once its invalidations make it INVALID: the chain's
own rule decides that (``chain.validation.tasks.invalid_by_invalidations``, under the
default validation params: a run of failed checks, or enough of them at a high enough
share). For a participant that cheats on every inference, this computes exactly (a Markov
chain over its run of failures and its count of them) the chance that it is INVALID after n
checked inferences, and so how many checked inferences, and output tokens, catch 99.9 % of
such participant-epochs.

The distance-judged substitutes (int8, and prefill forgeries made from it) pass the rule and
are caught by the evidence test instead; their participant-epoch figures are bootstrapped by
``bench.detection.dtypes``. This bench covers the rule's side of the goal.
"""

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.economics.rates import REGISTRIES, Detection, Registry
from bench.report import table
from chain.validation.params import ValidationParams
from chain.validation.tasks import invalid_by_invalidations
from inferchain_pb.inference.v1.validation_pb2 import ExecutorStats

GOAL = 0.999  # the share of cheating participant-epochs to catch
GOAL_TOKENS = 2_000  # ... once this many of the participant's output tokens were checked
MAX_CHECKS = 4_000  # a participant-epoch's checked inferences searched up to
PASSED_MANY = 10**12  # checks passed, so large that no invalidation share can reach the rate


@dataclass(frozen=True)
class Rule:
    """Where the chain's INVALID rule draws its lines, found by asking it."""

    in_a_row: int  # failed checks in a row that make a participant INVALID
    least: list[int]  # least[t]: failures among t checks that make it INVALID by share

    @classmethod
    def of(cls, params: ValidationParams, checks: int) -> "Rule":
        def invalid(row: int, failed: int, passed: int) -> bool:
            return invalid_by_invalidations(ExecutorStats(
                consecutive_invalidations=row, epoch_invalidations=failed,
                epoch_passed=passed), params)

        in_a_row = next(c for c in range(1, 10**6) if invalid(c, c, PASSED_MANY))
        least = [checks + 1] * (checks + 1)
        for t in range(1, checks + 1):
            # A single failure in a row never trips the run rule (in_a_row > 1 by default;
            # else every failure does, and the share is moot), so this asks the share rule.
            low, high = 1, t + 1
            while low < high:  # the share rule holds for every count from its least one up
                mid = (low + high) // 2
                if invalid(min(1, in_a_row - 1), mid, t - mid):
                    high = mid
                else:
                    low = mid + 1
            least[t] = low
        return cls(in_a_row, least)


def caught_by_checks(rate: float, rule: Rule, checks: int) -> np.ndarray:
    """caught[n]: the chance a participant failing each check with ``rate`` is INVALID after
    n checked inferences (n = 0 .. checks)."""
    # alive[row, failed]: not yet INVALID, ``row`` failures at the end, ``failed`` in all.
    alive = np.zeros((rule.in_a_row, checks + 1))
    alive[0, 0] = 1.0
    caught = np.zeros(checks + 1)
    counts = np.arange(checks + 1)
    for t in range(1, checks + 1):
        passed = alive.sum(axis=0) * (1 - rate)
        failing = np.zeros_like(alive)
        failing[1:, 1:] = alive[:-1, :-1] * rate  # one more in the row and in all
        tripped = alive[-1, :-1].sum() * rate  # the row reaches in_a_row
        by_share = failing[:, counts >= rule.least[t]].sum()
        failing[:, counts >= rule.least[t]] = 0.0
        alive = failing
        alive[0] += passed
        caught[t] = caught[t - 1] + tripped + by_share
    return caught


@dataclass(frozen=True)
class EpochRow:
    registry: str
    detection: Detection
    rate: float  # per checked inference, the low end of its interval
    checks: int | None  # checked inferences that catch GOAL of participant-epochs
    within_goal_tokens: float  # share caught once GOAL_TOKENS output tokens were checked
    checks_measured: int | None  # the same at the measured rate, not its low end

    @property
    def tokens(self) -> int | None:
        return None if self.checks is None else self.checks * self.detection.max_tokens

    @property
    def met(self) -> bool:
        return self.within_goal_tokens >= GOAL


def epoch_rows(rule: Rule, max_checks: int, registry: Registry) -> list[EpochRow]:
    rows = []
    for found in registry.detections():
        rate = found.interval[0]
        caught = caught_by_checks(rate, rule, max_checks)
        within = min(max_checks, math.ceil(GOAL_TOKENS / found.max_tokens))
        rows.append(EpochRow(registry.name, found, rate, first_reaching(caught),
                             float(caught[within]),
                             first_reaching(caught_by_checks(found.rate, rule, max_checks))))
    return rows


def first_reaching(caught: np.ndarray) -> int | None:
    reached = np.nonzero(caught >= GOAL)[0]
    return int(reached[0]) if reached.size else None


def report(rows: Sequence[EpochRow], rule: Rule, params: ValidationParams,
           max_checks: int) -> list[str]:
    def checks(found: int | None) -> str:
        return f"{found:,}" if found is not None else f"> {max_checks:,}"

    def tokens(row: EpochRow) -> str:
        return f"{row.tokens:,}" if row.tokens is not None else "—"

    return [
        f"INVALID rule (default validation params): {rule.in_a_row} failed checks in a row, "
        f"or at least {params.invalid_min_count} failed and at least "
        f"{params.invalid_rate_ppm / 10_000:g} % of the epoch's checks; a participant that "
        f"cheats on every inference, each checked inference failing at the low end of its "
        f"95 % interval.", "",
        *table(["registry", "cheat", "max_tokens", "failed alone", "rate used",
                "checks for 99.9 %", "checked tokens", f"caught by {GOAL_TOKENS:,} tokens",
                "goal", "checks at the measured rate"],
               [(r.registry, r.detection.cheat, str(r.detection.max_tokens),
                 f"{r.detection.caught}/{r.detection.n}", f"{r.rate:.3f}", checks(r.checks),
                 tokens(r), f"{100 * r.within_goal_tokens:.2f} %", "met" if r.met else "NOT",
                 checks(r.checks_measured))
                for r in rows], text_columns=2)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection.epochs",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-checks", type=int, default=MAX_CHECKS)
    args = parser.parse_args(argv)
    params = ValidationParams()
    rule = Rule.of(params, args.max_checks)
    rows = [row for registry in REGISTRIES
            for row in epoch_rows(rule, args.max_checks, registry)]
    print("\n".join(report(rows, rule, params, args.max_checks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
