"""The evidence test's bet on rule violations, calibrated and played per participant-epoch:
``python -m bench.detection.violations --from-results FILE``.

FILE holds the per-pair figures ``python -m bench.detection`` saves (every output scored by
an fp32 validator, so the figures are an fp32-registered model's). This:

- sets μv, the honest reference of violations per output position, for an fp32 model: the
  upper end of the 95 % interval of the honest fp32 executors' pooled violation rate (they
  may have none at all), and at least 1.25 × the largest honest class's rate;
- chooses the violation bet b_v that makes the weakest of the cheats judged by the rule
  (those whose distance is honest) grow its evidence fastest;
- plays bootstrapped participant-epochs of every class through the chain's own code: a
  failed check is an invalidation (``invalid_by_invalidations``), a passed one bets on its
  distance and on its violations (``chain/validation/evidence.py``, both bets on, each at
  α/2), under the default validation params and fp32 registry entry; and reports how many
  checks (and output tokens) catch 99.9 % of a cheat's participant-epochs, and how many
  honest participant-epochs of 2,000 checks are flagged.
"""

import argparse
import json
import math
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.detection.report import is_honest, percentile
from bench.detection.validate import Result
from bench.economics.rates import clopper_pearson
from bench.report import table
from chain.inference.model import DEFAULT_REFERENCES, DEFAULT_RULES, DEFAULT_THRESHOLDS
from chain.scales import PPM
from chain.validation import evidence
from chain.validation.params import ValidationParams
from chain.validation.tasks import invalid_by_invalidations
from inferchain_pb.inference.v1.validation_pb2 import ExecutorStats

DTYPE = "float32"
REFERENCE_MARGIN = 1.25
CONFIDENCE = 0.95
BETS_PPM = (10_000, 20_000, 30_000, 50_000, 100_000, 200_000, 300_000, 500_000, 700_000, 900_000)
# The cheats the rule judges whose distance is the real model's: what the bet is for.
RULE_CHEATS = ("temperature-1.0-recorded-0.7", "wrong-seed", "token-edit", "forge-prefill-int8")
ALPHA_PPM = ValidationParams().evidence_alpha_ppm
GOAL = 0.999
GOAL_TOKENS = 2_000
CHEAT_EPOCHS = 2_000
CHEAT_CHECKS = 4_000  # a cheating participant-epoch is played up to this many checks
HONEST_EPOCHS = 500
HONEST_CHECKS = 2_000


@dataclass(frozen=True)
class Check:
    """One checked inference as the chain sees it: failed alone, or passed with figures."""

    failed: bool
    distance_micro: int
    violations: int
    positions: int


def checks_of(results: Sequence[Result], threshold: float) -> list[Check]:
    """Each result as the chain judges it under the registry's rule for DTYPE."""
    sampled_micro, greedy_micro, fixed, per_1024 = DEFAULT_RULES[DTYPE]
    greedy, sampled = greedy_micro / PPM, sampled_micro / PPM
    return [Check(r.fails(threshold, greedy, sampled, fixed, per_1024),
                  round(r.distance * PPM), r.counted(greedy, sampled), r.positions)
            for r in results]


def is_fp32(scenario: str) -> bool:
    return "fp32" in scenario or "float32" in scenario


def reference_ppm(honest: dict[str, list[Check]]) -> tuple[int, str]:
    """μv in ppm, and how it was set."""
    violations = sum(c.violations for checks in honest.values() for c in checks)
    positions = sum(c.positions for checks in honest.values() for c in checks)
    upper = clopper_pearson(violations, positions, CONFIDENCE)[1]
    worst = max(sum(c.violations for c in checks) / max(1, sum(c.positions for c in checks))
                for checks in honest.values())
    mu = max(upper, REFERENCE_MARGIN * worst)
    why = (f"{violations} violations in {positions:,} honest fp32 positions: the 95 % upper "
           f"end {upper * PPM:.0f} ppm, {REFERENCE_MARGIN} × the largest class rate "
           f"{REFERENCE_MARGIN * worst * PPM:.0f} ppm")
    return math.ceil(mu * PPM), why


def growth(checks: Sequence[Check], mu_ppm: int, bet_ppm: int) -> float:
    """Mean log-growth of the violation bet per output position of the passed checks: the
    goal counts checked tokens, and a long check weighs as much as several short ones."""
    passed = [c for c in checks if not c.failed]
    if not passed:
        return math.inf
    return sum(math.log(evidence.bet_violations(evidence.WEALTH_ONE, c.violations,
                                                c.positions, mu_ppm, bet_ppm)
                        / evidence.WEALTH_ONE) for c in passed) / sum(c.positions
                                                                      for c in passed)


def choose_bet(cheats: dict[tuple[str, int], list[Check]], mu_ppm: int) -> int:
    """The bet under which the slowest of the rule-judged cheats that some bet can catch (its
    evidence growing on average) grows fastest; one no bet can catch is left to the table."""
    judged = [checks for (name, _), checks in cheats.items() if name in RULE_CHEATS]
    catchable = [c for c in judged if max(growth(c, mu_ppm, b) for b in BETS_PPM) > 0]
    if not catchable:
        return BETS_PPM[-1]
    return max(BETS_PPM, key=lambda b: min(growth(c, mu_ppm, b) for c in catchable))


@dataclass(frozen=True)
class Bets:
    reference_micro: int
    threshold_micro: int
    bet_ppm: int
    violations_ppm: int
    violation_bet_ppm: int


def play(checks: Sequence[Check], bets: Bets, params: ValidationParams, limit: int,
         rng: random.Random) -> int | None:
    """Checks until the participant is INVALID (by invalidations or by evidence), drawing
    each from ``checks``; None when ``limit`` checks pass without it."""
    stats = ExecutorStats()
    wealth = violation_wealth = evidence.WEALTH_ONE
    for n in range(1, limit + 1):
        check = rng.choice(checks)
        if check.failed:
            stats.epoch_invalidations += 1
            stats.consecutive_invalidations += 1
            if invalid_by_invalidations(stats, params):
                return n
            continue
        stats.epoch_passed += 1
        stats.consecutive_invalidations = 0
        wealth = evidence.bet(wealth, check.distance_micro, bets.reference_micro,
                              bets.threshold_micro, bets.bet_ppm)
        violation_wealth = evidence.bet_violations(violation_wealth, check.violations,
                                                   check.positions, bets.violations_ppm,
                                                   bets.violation_bet_ppm)
        if evidence.crossed(wealth, ALPHA_PPM, 2) or \
                evidence.crossed(violation_wealth, ALPHA_PPM, 2):
            return n
    return None


def report(results: Sequence[Result], seed: int, cheat_epochs: int,
           honest_epochs: int) -> list[str]:
    params = ValidationParams()
    threshold = float(DEFAULT_THRESHOLDS[DTYPE])
    by_class: dict[tuple[str, int], list[Check]] = defaultdict(list)
    for r in results:
        if not is_honest(r.scenario) or is_fp32(r.scenario):
            by_class[(r.scenario, r.length)] += checks_of([r], threshold)
    honest = {f"{s}/{n}": c for (s, n), c in by_class.items() if is_honest(s)}
    cheats = {k: c for k, c in by_class.items() if not is_honest(k[0])}
    mu_ppm, why = reference_ppm(honest)
    bet_ppm = choose_bet(cheats, mu_ppm)
    reference, distance_bet = DEFAULT_REFERENCES[DTYPE]
    bets = Bets(reference, round(threshold * PPM), distance_bet, mu_ppm, bet_ppm)
    rng = random.Random(seed)
    rows = []
    for (scenario, length), checks in sorted(by_class.items(),
                                             key=lambda kv: (not is_honest(kv[0][0]), kv[0])):
        passed = [c for c in checks if not c.failed]
        rate = (sum(c.violations for c in passed) / max(1, sum(c.positions for c in passed)))
        if is_honest(scenario):
            flagged = sum(play(checks, bets, params, HONEST_CHECKS, rng) is not None
                          for _ in range(honest_epochs))
            rows.append((scenario, str(length), str(len(checks)),
                         f"{len(passed)}/{len(checks)}", f"{rate * PPM:.0f}", "—", "—", "—",
                         f"{flagged}/{honest_epochs} flagged"))
            continue
        caught = [play(checks, bets, params, CHEAT_CHECKS, rng) for _ in range(cheat_epochs)]
        found = [n for n in caught if n is not None]
        within = math.ceil(GOAL_TOKENS / length)
        share = sum(1 for n in found if n <= within) / cheat_epochs
        top = (f"{percentile(found, GOAL):,.0f}" if len(found) == cheat_epochs
               else f"> {CHEAT_CHECKS:,}")
        rows.append((scenario, str(length), str(len(checks)), f"{len(passed)}/{len(checks)}",
                     f"{rate * PPM:.0f}",
                     f"{percentile(found, 0.5):,.0f}" if found else "—", top,
                     f"{100 * share:.2f} %", "met" if share >= GOAL else "NOT"))
    return [
        f"μv = {mu_ppm:,} ppm ({why}); b_v = {bet_ppm / PPM:g} (of "
        f"{', '.join(f'{b / PPM:g}' for b in BETS_PPM)}: the one under which the slowest of "
        f"{', '.join(RULE_CHEATS)} that a bet can catch grows fastest); distance bet as "
        f"registered for fp32 "
        f"(μ0 = {reference} micro-nats, D = {threshold:g}, b = {distance_bet / PPM:g}); each "
        f"bet at α/2, α = {ALPHA_PPM / 10_000:g} %; INVALID rule as the chain's defaults. "
        f"{cheat_epochs:,} bootstrapped participant-epochs per cheat row, {honest_epochs:,} of "
        f"{HONEST_CHECKS:,} checks per honest row.", "",
        *table(["class", "max_tokens", "outputs", "passed alone", "violations per 10^6 "
                "positions (passed)", "checks to catch: p50", "p99.9",
                f"caught by {GOAL_TOKENS:,} tokens", "goal"], rows, text_columns=1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection.violations",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-results", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cheat-epochs", type=int, default=CHEAT_EPOCHS)
    parser.add_argument("--honest-epochs", type=int, default=HONEST_EPOCHS)
    args = parser.parse_args(argv)
    saved = json.loads(args.from_results.read_text())
    results = [Result.from_json(r) for r in saved["results"]]
    print("\n".join(report(results, args.seed, args.cheat_epochs, args.honest_epochs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
