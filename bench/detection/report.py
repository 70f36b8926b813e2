"""Summaries of the calibration: per-scenario figures, the threshold choice, markdown tables.

The rule (``Result.fails``) is fail = not ids_match or distance > D or violations > V +
P * positions // 1024, where a greedy inference's violations are counted at the argmax-gap
tolerance Tg (nats) and a sampled one's at the CDF tolerance Ts (probability). The choice is
made from the honest results only (so that no honest pair fails, with margin) and then judged
by what it detects: D is the largest honest distance times ``D_MARGIN``; for each (Tg, Ts, P),
V is the smallest count with no honest false positive plus ``V_MARGIN``; among these the one
detecting the most cheats wins, ties going to the larger Tg, then the larger Ts (more room for
rounding the calibration did not see), then the smaller P (fewer violations forgiven).
"""

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from bench.detection.validate import TOLERANCES, Result

D_MARGIN = 1.5
V_MARGIN = 1
PER_1024 = (0, 8, 16, 32, 64)  # candidate P: violations allowed per 1,024 positions


@dataclass(frozen=True)
class Rule:
    distance: float  # D, nats
    greedy_tolerance: float  # Tg, argmax gap in nats, for temperature-0 inferences
    sampled_tolerance: float  # Ts, CDF probability, for sampled inferences
    allowed: int  # V, violations per inference on top of the length allowance
    per_1024: int  # P, violations allowed per 1,024 positions
    detection: float  # mean fail rate over the cheat (scenario, length) groups
    honest_fp: int  # honest pairs failing

    def fails(self, result: Result) -> bool:
        """Shorthand for ``Result.fails`` with this rule's thresholds (the rule lives there)."""
        return result.fails(self.distance, self.greedy_tolerance, self.sampled_tolerance,
                            self.allowed, self.per_1024)

    def describe(self) -> str:
        """The thresholds as one line of text, for table headers and summaries."""
        return (f"D = {self.distance:g}, Tg = {self.greedy_tolerance:g}, "
                f"Ts = {self.sampled_tolerance:g}, V = {self.allowed}, P = {self.per_1024}")


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


def choose_distance(results: Sequence[Result]) -> float:
    """D: the largest honest distance with margin; it only has to clear honest rounding."""
    honest = [r for r in results if is_honest(r.scenario) and r.ids_match]
    return round_up(max(r.distance for r in honest) * D_MARGIN)


def evaluate(results: Sequence[Result], distance: float, greedy_tolerance: float,
             sampled_tolerance: float, per_1024: int, margin: int = V_MARGIN) -> Rule:
    """The rule for (D, Tg, Ts, P) with V = the smallest count without an honest false
    positive plus ``margin``, and what it detects (mean over cheat scenario-length groups, so
    that each kind of cheat weighs the same whatever its pair count)."""
    honest = [r for r in results if is_honest(r.scenario)]
    cheats = [g for k, g in groups(results).items() if not is_honest(k[0])]
    least = max([0, *(r.excess(greedy_tolerance, sampled_tolerance, per_1024)
                      for r in honest)])
    rule = Rule(distance, greedy_tolerance, sampled_tolerance, least + margin, per_1024,
                0.0, 0)
    rates = [sum(map(rule.fails, group)) / len(group) for group in cheats]
    return Rule(distance, greedy_tolerance, sampled_tolerance, least + margin, per_1024,
                statistics.fmean(rates) if rates else 0.0, sum(map(rule.fails, honest)))


def search(results: Sequence[Result]) -> list[Rule]:
    """Every (Tg, Ts, P) candidate with its V, for the choice and the alternatives table."""
    distance = choose_distance(results)
    return [evaluate(results, distance, tg, ts, p)
            for tg in TOLERANCES for ts in TOLERANCES for p in PER_1024]


def rank(rule: Rule) -> tuple[int, float, float, float, int]:
    """Sort key, best first: no false positives, detection, then larger Tg, larger Ts and
    smaller P on ties (prefer forgiving rounding over forgiving violations)."""
    return (rule.honest_fp, -rule.detection, -rule.greedy_tolerance,
            -rule.sampled_tolerance, rule.per_1024)


def choose(results: Sequence[Result]) -> Rule:
    return min(search(results), key=rank)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(results: Sequence[Result], rule: Rule) -> str:
    """One row per scenario and length: the figures and the fail rate under ``rule``.
    Violations are counted at Tg for greedy inferences and Ts for sampled ones."""
    rows = []
    for (scenario, length), group in groups(results).items():
        matched = [r for r in group if r.ids_match]
        dist = [r.distance for r in matched] or [0.0]
        viol = [r.counted(rule.greedy_tolerance, rule.sampled_tolerance)
                for r in matched] or [0]
        fails = sum(map(rule.fails, group))
        rows.append((scenario, length, len(group), len(group) - len(matched),
                     f"{percentile(dist, 0.5):.4f}", f"{percentile(dist, 0.99):.4f}",
                     f"{max(dist):.4f}", f"{statistics.fmean(viol):.2f}", max(viol),
                     f"{fails}/{len(group)} ({100 * fails / len(group):.0f}%)"))
    header = ("scenario", "max_tokens", "n", "ids mismatch", "distance p50", "p99", "max",
              "violations mean", "max", "fail" + " (honest: false positive)")
    return table(header, rows)


def tolerance_table(results: Sequence[Result], scenarios: Sequence[str]) -> str:
    """Honest violations per tolerance: share of positions violating and the per-inference
    maximum, by scenario and length, so the choice of Tg, Ts and V can be checked by eye."""
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
    caught = sum(map(rule.fails, cheats))
    return (f"Chosen: D = {rule.distance:g} nats, Tg = {rule.greedy_tolerance:g} nats "
            f"(greedy), Ts = {rule.sampled_tolerance:g} (sampled), V = {rule.allowed}, "
            f"P = {rule.per_1024} per 1,024 positions: an inference fails when its ids differ, "
            f"its distance exceeds {rule.distance:g}, or it has more than {rule.allowed} + "
            f"{rule.per_1024} × positions // 1024 violations. Honest false positives: "
            f"{rule.honest_fp} of {len(honest)} pairs; cheats detected: {caught} of "
            f"{len(cheats)} pairs (mean over scenario rows {100 * rule.detection:.1f}%).")


def alternatives(results: Sequence[Result], rule: Rule) -> str:
    """What the other tolerances would give, one varied at a time around the chosen rule:
    for each P, the V the calibration would set ("V / detection"). The full (Tg, Ts) grid is
    81 rows of mostly equal numbers; one axis at a time shows where each tolerance stops
    mattering."""
    rules = {(r.greedy_tolerance, r.sampled_tolerance, r.per_1024): r
             for r in search(results)}

    def cells(tg: float, ts: float) -> list[str]:
        out = []
        for p in PER_1024:
            r = rules[(tg, ts, p)]
            mark = "**" if r == rule else ""
            out.append(f"{mark}{r.allowed} / {100 * r.detection:.1f}%{mark}")
        return out

    def rows(pairs: Sequence[tuple[float, float]], varied: int) -> list[tuple[str, ...]]:
        """One row per tolerance, runs of identical rows merged ("0 to 0.01"): below some
        tolerance the honest counts stop changing, and repeating them hides where they do."""
        merged: list[tuple[list[float], list[str]]] = []
        for pair in pairs:
            row = cells(*pair)
            if merged and merged[-1][1] == row:
                merged[-1][0].append(pair[varied])
            else:
                merged.append(([pair[varied]], row))
        return [(f"{ts[0]:g}" if len(ts) == 1 else f"{ts[0]:g} to {ts[-1]:g}", *row)
                for ts, row in merged]

    head = [f"P = {p}" for p in PER_1024]
    tg, ts = rule.greedy_tolerance, rule.sampled_tolerance
    sampled = table((f"Ts (Tg = {tg:g})", *head), rows([(tg, t) for t in TOLERANCES], 1))
    greedy = table((f"Tg (Ts = {ts:g})", *head), rows([(t, ts) for t in TOLERANCES], 0))
    return sampled + "\n\n" + greedy
