"""Validation params (docs/design.md §6): sampling rates, windows, vote size, INVALID.

The verdict thresholds (the distance threshold, the rule's tolerances and allowed
violations) are each model's, in its registry entry, per serving dtype
(chain/inference/model.py), from the calibration in docs/verification.md.
"""

from dataclasses import dataclass
from typing import ClassVar

from chain.errors import InvalidRequest
from chain.params import ModuleParams, bounded
from chain.scales import PPM

KEY = b"validation/params"
MAX_WINDOW_BLOCKS = 100_000


@dataclass(frozen=True)
class ValidationParams(ModuleParams):
    module = "validation"
    # Not reveal_window_blocks: the height an epoch's validators are judged at follows from it,
    # so changing it mid-way could judge an epoch twice or never.
    governable: ClassVar[frozenset[str]] = frozenset({
        "p_min_ppm", "p_max_ppm", "max_expected_checks_ppm", "epochs_to_max",
        "validation_window_blocks", "voting_period_blocks", "opening_blocks",
        "voters_per_vote",
        "invalid_after_consecutive", "invalid_min_count",
        "invalid_rate_ppm", "canary_rate_ppm", "canary_claim_blocks", "vote_bond",
        "evidence_alpha_ppm",
        "passed_over_allowance_ppm", "probe_quota"})
    # p = p_min + (p_max − p_min) × (1 − reputation), in parts per million; each 0 to
    # 1000000 (p_max 0 checks nothing, which stops no block) and p_min <= p_max.
    p_min_ppm: int = bounded(10_000, 0, PPM)
    p_max_ppm: int = bounded(PPM, 0, PPM)
    # The checks an inference is owed in all, on average, whatever its p: −ln(1 − p) capped
    # at this (chain/validation/sampling.py), so a newcomer's inference costs the network two
    # re-scores however many members it has. In millionths of a check: 0 (nothing is checked,
    # as with p_max 0) to 100 checks.
    max_expected_checks_ppm: int = bounded(2 * PPM, 0, 100 * PPM)
    # Clean epochs from reputation 0 to full reputation: 1 to 10,000.
    epochs_to_max: int = bounded(30, 1, 10_000)
    # Blocks after an inference is finished during which validators may check it, and blocks
    # drawn voters have to re-score an inference whose validation failed: 1 to 100,000
    # each, and together inside reveal_window_blocks.
    validation_window_blocks: int = bounded(20, 1, MAX_WINDOW_BLOCKS)
    voting_period_blocks: int = bounded(20, 1, MAX_WINDOW_BLOCKS)
    # Blocks after a window's or a vote's sealing ends during which its sealed reports are
    # opened (docs/design.md §6.3): 1 to 100,000. A seal not opened in time is a check not
    # made, so it is long enough for a node's worker to notice and its tx to land.
    opening_blocks: int = bounded(20, 1, MAX_WINDOW_BLOCKS)
    # 1 to 100 voters: each re-scores the whole inference.
    voters_per_vote: int = bounded(3, 1, 100)
    # Blocks into the next epoch during which an epoch's seeds may be revealed; the epoch's
    # validators are judged when it ends, so it must outlast every window and vote with
    # their openings: 4 to 500,000, at least validation_window_blocks +
    # voting_period_blocks + 2 × opening_blocks (+ canary_claim_blocks with canaries on).
    reveal_window_blocks: int = bounded(90, 4, 5 * MAX_WINDOW_BLOCKS)
    # An executor is INVALID for the epoch after this many invalidations in a row, or when
    # at least invalid_min_count of its checked inferences this epoch were invalidated and
    # they are at least invalid_rate_ppm of them (honest executors measure ~0). Both counts
    # are at least 1: at 0 every executor, invalidated or not, would be INVALID.
    invalid_after_consecutive: int = bounded(3, 1, 100_000)
    invalid_min_count: int = bounded(5, 1, 100_000)
    invalid_rate_ppm: int = bounded(200_000, 0, PPM)
    # Share of each executor's inferences that are canaries, drawn from its seed (docs/
    # design.md §6.9): it records their artifacts shifted, and claims each once its window
    # closed or a vote opened on it, within canary_claim_blocks (1 to 100,000; with canaries
    # on, the window, this and the voting period fit inside reveal_window_blocks, and this is
    # below the voting period: the checkers open their scores of a claimed canary within it,
    # and its voters re-score only after).
    canary_rate_ppm: int = bounded(5_000, 0, PPM)
    canary_claim_blocks: int = bounded(10, 1, MAX_WINDOW_BLOCKS)
    # ninfer a member locks to open a vote before its seed is revealed (docs/design.md §6.5):
    # returned if its seed assigned it the check, burned if not. 0 (no bond) to 10^15 (a
    # million INFER); 0.1 INFER by default, a hundred inferences' fees at the default price.
    vote_bond: int = bounded(100_000_000, 0, 10**15)
    # The evidence test's false-positive bound per honest participant-epoch, α in parts per
    # million (chain/validation/evidence.py): an executor whose evidence wealth reaches 1/α
    # within an epoch is INVALID for it. 0 turns the test off; at most 100,000 (10%).
    evidence_alpha_ppm: int = bounded(1_000, 0, 100_000)
    # The share of a member's draws in an epoch (finished + missed + passed over) that starts
    # may pass over without its refusal before the rest count as misses (docs/design.md §6.7):
    # above the traffic share of any coalition of transfer agents below ⅓, which could pass
    # an honest member over at will. 0 (every pass a miss) to 1,000,000 (none).
    passed_over_allowance_ppm: int = bounded(500_000, 0, PPM)
    # Probes each member owes each model that two or more members serve, per epoch
    # (docs/design.md §10.4): its own API-key requests, committed as probes. Without them a
    # model without demand draws nobody, and its members are paid their whole share without
    # serving; with probing left to goodwill, a member that sent none saved their fees. Fixed
    # for an epoch at its first block; a member short of it is lazy. 0 (none owed) to 1,000.
    probe_quota: int = bounded(4, 0, 1_000)

    def check_consistency(self) -> None:
        if self.p_min_ppm > self.p_max_ppm:
            raise InvalidRequest("validation params need p_min_ppm <= p_max_ppm")
        if self.canary_rate_ppm and self.canary_claim_blocks >= self.voting_period_blocks:
            raise InvalidRequest("validation param canary_claim_blocks must be below "
                                 "voting_period_blocks while canary_rate_ppm is not 0: a "
                                 "canary's voters wait that long for its checkers' scores "
                                 "before they re-score")
        claims = self.canary_claim_blocks if self.canary_rate_ppm else 0
        if self.reveal_window_blocks < self.validation_window_blocks + claims + \
                self.voting_period_blocks + 2 * self.opening_blocks:
            raise InvalidRequest("validation param reveal_window_blocks must be at least "
                                 "validation_window_blocks + voting_period_blocks + 2 × "
                                 "opening_blocks (+ canary_claim_blocks while "
                                 "canary_rate_ppm is not 0)")

    @property
    def block_values_kept(self) -> int:
        """How many blocks' random values the module keeps for vote draws: a vote draws from
        the value of its window's first opening height, at the earliest the block after the
        finish, and the last vote to open on a window is a canary's fresh vote, at most
        ``canary_claim_blocks`` after ``open_until``."""
        return self.validation_window_blocks + self.opening_blocks + \
            self.canary_claim_blocks + 1

    @property
    def reputation_step_ppm(self) -> int:
        return -(-PPM // self.epochs_to_max)
