"""Gov params: what a proposal costs, how long it waits, and what counts as a yes."""

from dataclasses import dataclass
from typing import ClassVar

from chain.errors import InvalidRequest
from chain.params import ModuleParams

KEY = b"gov/params"
PPM = 1_000_000


@dataclass(frozen=True)
class GovParams(ModuleParams):
    module = "gov"
    governable: ClassVar[frozenset[str]] = frozenset({
        "min_deposit", "min_initial_deposit", "deposit_period_blocks", "voting_period_blocks",
        "quorum_ppm", "threshold_ppm", "veto_threshold_ppm", "balance_votes"})
    # ninfer a proposal needs in deposits before its vote opens (1 INFER).
    min_deposit: int = 1_000_000_000
    # ninfer a submission must bring itself: cheaper spam is refused outright.
    min_initial_deposit: int = 100_000_000
    # Blocks a proposal may collect deposits; a day at 5-second blocks.
    deposit_period_blocks: int = 17_280
    voting_period_blocks: int = 17_280
    # Cosmos gov's defaults, in parts per million: voted power / total power must reach the
    # quorum; yes / (voted − abstain) must exceed the threshold; no-with-veto / voted above the
    # veto threshold rejects the proposal and burns its deposits.
    quorum_ppm: int = 334_000
    threshold_ppm: int = 500_000
    veto_threshold_ppm: int = 334_000
    # False: participants vote with their epoch weight and other accounts cannot vote.
    # True: every account votes with its ninfer balance instead (docs/gov.md).
    balance_votes: bool = False

    def __post_init__(self) -> None:
        self.check_integers()
        if not isinstance(self.balance_votes, bool):
            raise InvalidRequest("gov param balance_votes must be true or false")
        if not 0 < self.min_initial_deposit <= self.min_deposit:
            raise InvalidRequest("gov params need 0 < min_initial_deposit <= min_deposit")
        if self.deposit_period_blocks < 1 or self.voting_period_blocks < 1:
            raise InvalidRequest("gov params deposit_period_blocks and voting_period_blocks "
                                 "must be at least 1")
        if not all(0 < v <= PPM for v in (self.quorum_ppm, self.threshold_ppm,
                                          self.veto_threshold_ppm)):
            raise InvalidRequest("gov params quorum_ppm, threshold_ppm and veto_threshold_ppm "
                                 "are parts per million in (0, 1000000]")
