"""How the chain judges figures: one report's pass or fail, and a vote's robust outcome.

A report fails when the output ids do not match (which includes an output that goes on past
its EOS or stop: its extra tokens were never allowed, so that is no forgivable violation,
docs/design.md §6.3), when more tokens break the seeded rule than
the allowed violations (``allowed_violations``: a fixed part plus a share of the length), or
when the logprob distance exceeds the model's threshold. A vote
takes the weighted lower median of its ballots' effective distances (infinite for a report
that failed on ids or rule); the validation module gives each drawn voter one ballot of weight
1 (chain/validation/tasks.py), so the outcome moves only when more than half of the drawn
voters say so. A tie keeps the executor's output (the lower median).
"""

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from chain.scales import PPM
from inferchain_pb.inference.v1.inference_pb2 import Model
from inferchain_pb.inference.v1.validation_pb2 import ValidationReport

FAILED_OUTRIGHT = (1 << 64) - 1


def threshold_micro(model: Model) -> int:
    """The model's distance threshold (a decimal string of nats) in micro-nats."""
    try:
        value = Decimal(model.validation_threshold)
    except InvalidOperation as exc:
        raise ValueError(f"model {model.id} has threshold {model.validation_threshold!r}, "
                         f"not a decimal") from exc
    return int(value * PPM)


def allowed_violations(fixed: int, per_1024: int, positions: int) -> int:
    """Rule violations an output of ``positions`` tokens may have and still pass: half
    precision executors break the rule now and then, more often in longer outputs."""
    return fixed + per_1024 * positions // 1024


def effective_distance(report: ValidationReport, allowed: int) -> int:
    if not report.ids_match or report.rule_violations > allowed:
        return FAILED_OUTRIGHT
    return report.distance_micro


def passes(report: ValidationReport, allowed: int, threshold: int) -> bool:
    return effective_distance(report, allowed) <= threshold


def weighted_median(values: Sequence[tuple[int, int]]) -> int:
    """Lower weighted median of (value, weight) pairs; weights must sum to more than 0."""
    total = sum(weight for _, weight in values)
    if total <= 0:
        raise ValueError("a weighted median needs positive total weight")
    running = 0
    for value, weight in sorted(values):
        running += weight
        if 2 * running >= total:
            return value
    raise AssertionError("unreachable: the running weight reaches the total")


def vote_upholds_failure(reports: Sequence[ValidationReport], allowed: int,
                         threshold: int) -> bool:
    """True when the weighted median distance is over the threshold."""
    values = [(effective_distance(r, allowed), max(r.weight, 1)) for r in reports]
    return weighted_median(values) > threshold
