"""Validation params (DESIGN.md §4): sampling rates, windows, vote size, verdict thresholds.

The verdict thresholds (the rule tolerances and allowed violations; the distance
threshold is each model's ``validation_threshold``) come from the calibration in
docs/verification.md, not from guesses.
"""

from dataclasses import dataclass
from typing import ClassVar

from chain.errors import InvalidRequest
from chain.params import ModuleParams
from chain.validation.sampling import PPM

KEY = b"validation/params"


@dataclass(frozen=True)
class ValidationParams(ModuleParams):
    module = "validation"
    # Not reveal_window_blocks: the height an epoch's validators are judged at follows from it,
    # so changing it mid-way could judge an epoch twice or never.
    governable: ClassVar[frozenset[str]] = frozenset({
        "p_min_ppm", "p_max_ppm", "epochs_to_max", "validation_window_blocks",
        "voting_period_blocks", "voters_per_vote", "rule_tolerance_micro",
        "greedy_tolerance_micro", "max_rule_violations", "rule_violations_per_1024",
        "invalid_after_consecutive", "invalid_min_count",
        "invalid_rate_ppm", "canary_rate_ppm"})
    # p = p_min + (p_max − p_min) × (1 − reputation), in parts per million.
    p_min_ppm: int = 10_000
    p_max_ppm: int = 1_000_000
    # Clean epochs from reputation 0 to full reputation.
    epochs_to_max: int = 30
    # Blocks after an inference is finished during which validators may check it.
    validation_window_blocks: int = 20
    # Blocks drawn voters have to re-score an inference whose validation failed.
    voting_period_blocks: int = 20
    voters_per_vote: int = 3
    # Blocks into the next epoch during which an epoch's seeds may be revealed; the epoch's
    # validators are judged when it ends, so it must outlast every window and vote.
    reveal_window_blocks: int = 50
    # The seeded-rule check, from the calibration (docs/verification.md), which keeps every
    # honest bf16/fp16/fp32 executor (CPU and H200) passing: rounding allowed on a sampled
    # token's CDF interval and on a greedy token's argmax gap (nats), in millionths, and the
    # violations an inference may have: max_rule_violations plus rule_violations_per_1024
    # for every 1,024 output positions.
    rule_tolerance_micro: int = 30_000
    greedy_tolerance_micro: int = 100_000
    max_rule_violations: int = 2
    rule_violations_per_1024: int = 8
    # An executor is INVALID for the epoch after this many invalidations in a row, or when
    # at least invalid_min_count of its checked inferences this epoch were invalidated and
    # they are at least invalid_rate_ppm of them (honest executors measure ~0).
    invalid_after_consecutive: int = 3
    invalid_min_count: int = 5
    invalid_rate_ppm: int = 200_000
    # Chance per finished inference that the chain plants a known-bad twin (a canary).
    canary_rate_ppm: int = 5_000

    def __post_init__(self) -> None:
        self.check_integers()
        if not self.p_min_ppm <= self.p_max_ppm <= PPM:
            raise InvalidRequest("validation params need p_min_ppm <= p_max_ppm <= 1000000")
        if self.epochs_to_max < 1 or self.voters_per_vote < 1 or \
                self.validation_window_blocks < 1 or self.voting_period_blocks < 1:
            raise InvalidRequest("validation params epochs_to_max, voters_per_vote and the "
                                 "windows must be at least 1")
        if self.reveal_window_blocks < self.validation_window_blocks + self.voting_period_blocks:
            raise InvalidRequest("validation param reveal_window_blocks must be at least "
                                 "validation_window_blocks + voting_period_blocks")
        if self.canary_rate_ppm > PPM or self.invalid_rate_ppm > PPM:
            raise InvalidRequest("validation rates are parts per million, at most 1000000")

    @property
    def reputation_step_ppm(self) -> int:
        return -(-PPM // self.epochs_to_max)
