"""Summaries of the calibration: per-scenario figures, the threshold choice, markdown tables.

The rule is fail = not ids_match or distance > D or violations > V at tolerance T. The choice
is made from the honest results only (so that no honest pair fails, with margin) and then
judged by what it detects: D is the largest honest distance times ``D_MARGIN``; for each
tolerance T, V is the largest honest violation count at T plus ``V_MARGIN``; among these
(T, V) the one detecting the most cheats wins, the larger T on ties (more room for rounding
the calibration did not see).
"""

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from bench.detection.validate import TOLERANCES, Result

D_MARGIN = 1.5
V_MARGIN = 1


@dataclass(frozen=True)
class Rule:
    distance: float  # D, nats
    tolerance: float  # T
    allowed: int  # V, violations per inference
    detection: float  # mean fail rate over the cheat (scenario, length) groups
    honest_fp: int  # honest pairs failing


def is_honest(scenario: str) -> bool:
    return scenario.startswith("honest")


def round_up(value: float, digits: int = 2) -> float:
    """Rounded up to ``digits`` significant digits, so a threshold reads as a plain number."""
    if value <= 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(value)) - digits + 1)
    return math.ceil(value / scale - 1e-9) * scale


def groups(results: Sequence[Result]) -> dict[tuple[str, int], list[Result]]:
    by: dict[tuple[str, int], list[Result]] = defaultdict(list)
    for r in results:
        by[(r.scenario, r.length)].append(r)
    return dict(by)


def choose(results: Sequence[Result]) -> Rule:
    honest = [r for r in results if is_honest(r.scenario)]
    cheats = {k: v for k, v in groups(results).items() if not is_honest(k[0])}
    distance = round_up(max(r.distance for r in honest if r.ids_match) * D_MARGIN)
    best: Rule | None = None
    for index, tolerance in enumerate(TOLERANCES):
        allowed = max(r.violations[index] for r in honest) + V_MARGIN
        fp = sum(r.fails(distance, tolerance, allowed) for r in honest)
        rates = [sum(r.fails(distance, tolerance, allowed) for r in group) / len(group)
                 for group in cheats.values()]
        detection = statistics.fmean(rates) if rates else 0.0
        rule = Rule(distance, tolerance, allowed, detection, fp)
        if best is None or (rule.honest_fp, -rule.detection) <= (best.honest_fp, -best.detection):
            best = rule
    assert best is not None
    return best


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(results: Sequence[Result], rule: Rule) -> str:
    """One row per scenario and length: the figures and the fail rate under ``rule``."""
    index = TOLERANCES.index(rule.tolerance)
    rows = []
    for (scenario, length), group in groups(results).items():
        matched = [r for r in group if r.ids_match]
        dist = [r.distance for r in matched] or [0.0]
        viol = [r.violations[index] for r in matched] or [0]
        fails = sum(r.fails(rule.distance, rule.tolerance, rule.allowed) for r in group)
        rows.append((scenario, length, len(group), len(group) - len(matched),
                     f"{percentile(dist, 0.5):.4f}", f"{percentile(dist, 0.99):.4f}",
                     f"{max(dist):.4f}", f"{statistics.fmean(viol):.2f}", max(viol),
                     f"{fails}/{len(group)} ({100 * fails / len(group):.0f}%)"))
    header = ("scenario", "max_tokens", "n", "ids mismatch", "distance p50", "p99", "max",
              "violations mean", "max", "fail" + " (honest: false positive)")
    return table(header, rows)


def tolerance_table(results: Sequence[Result], scenarios: Sequence[str]) -> str:
    """Honest violations per tolerance: share of positions violating and the per-inference
    maximum, by scenario and length, so the choice of T and V can be checked by eye."""
    rows = []
    for (scenario, length), everything in sorted(groups(results).items()):
        if scenario not in scenarios:
            continue
        for kind, greedy in (("greedy", True), ("sampled", False)):
            group = [r for r in everything if (r.temperature == 0) == greedy and r.ids_match]
            if not group:
                continue
            positions = sum(r.positions for r in group)
            cells = []
            for index in range(len(TOLERANCES)):
                counts = [r.violations[index] for r in group]
                cells.append(f"{sum(counts)} / {max(counts)}")
            rows.append((scenario, length, kind, positions, *cells))
    header = ("scenario", "max_tokens", "decoding", "positions",
              *(f"T={t:g}" for t in TOLERANCES))
    return table(header, rows)


def summary(results: Sequence[Result], rule: Rule) -> str:
    honest = [r for r in results if is_honest(r.scenario)]
    cheats = [r for r in results if not is_honest(r.scenario)]
    caught = sum(r.fails(rule.distance, rule.tolerance, rule.allowed) for r in cheats)
    return (f"Chosen: D = {rule.distance:g} nats, T = {rule.tolerance:g}, V = {rule.allowed}. "
            f"Honest false positives: {rule.honest_fp} of {len(honest)} pairs; cheats "
            f"detected: {caught} of {len(cheats)} pairs (mean over scenario rows "
            f"{100 * rule.detection:.1f}%).")


def alternatives(results: Sequence[Result], distance: float) -> str:
    """Every tolerance with its smallest zero-false-positive V and what that detects."""
    honest = [r for r in results if is_honest(r.scenario)]
    cheats = groups([r for r in results if not is_honest(r.scenario)])
    rows = []
    for index, tolerance in enumerate(TOLERANCES):
        allowed = max(r.violations[index] for r in honest)
        cells = []
        for v in (allowed, allowed + V_MARGIN):
            rates = [sum(r.fails(distance, tolerance, v) for r in g) / len(g)
                     for g in cheats.values()]
            cells.append(f"{100 * statistics.fmean(rates):.1f}%" if rates else "-")
        rows.append((f"{tolerance:g}", allowed, *cells))
    return table(("T", "honest max violations", "detection at V = max",
                  f"detection at V = max + {V_MARGIN}"), rows)
