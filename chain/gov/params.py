"""Gov params: what a proposal costs, how long it waits, and what counts as a yes."""

from dataclasses import dataclass
from typing import ClassVar

from chain.errors import InvalidRequest
from chain.params import ModuleParams, bounded, flag
from chain.scales import PPM

KEY = b"gov/params"
MAX_DEPOSIT = 10**18
MAX_PERIOD_BLOCKS = 604_800


@dataclass(frozen=True)
class GovParams(ModuleParams):
    module = "gov"
    governable: ClassVar[frozenset[str]] = frozenset({
        "min_deposit", "min_initial_deposit", "deposit_period_blocks", "voting_period_blocks",
        "quorum_ppm", "threshold_ppm", "veto_threshold_ppm", "balance_votes"})
    # ninfer a proposal needs in deposits before its vote opens (1 INFER). 1 to 1e18 (a
    # billion INFER): deposits add up in Proposal.total_deposit, a uint64, and a total no
    # supply reaches would leave every proposal in its deposit period. A proposal is also
    # held to the supply of the moment (chain/gov/content.py).
    min_deposit: int = bounded(1_000_000_000, 1, MAX_DEPOSIT)
    # ninfer a submission must bring itself: cheaper spam is refused outright. 1 to
    # min_deposit.
    min_initial_deposit: int = bounded(100_000_000, 1, MAX_DEPOSIT)
    # Blocks a proposal may collect deposits, and blocks of voting; a day at 5-second
    # blocks. 1 to 604,800 (a week at 1-second blocks, five at 5-second ones): a proposal
    # that undoes a change ends within weeks, never in years.
    deposit_period_blocks: int = bounded(17_280, 1, MAX_PERIOD_BLOCKS)
    voting_period_blocks: int = bounded(17_280, 1, MAX_PERIOD_BLOCKS)
    # Cosmos gov's defaults, in parts per million: voted power / total power must reach the
    # quorum; yes / (voted − abstain) must exceed the threshold; no-with-veto / voted above the
    # veto threshold rejects the proposal and burns its deposits. Each at least 1; the
    # threshold below 1000000, which no share of yes votes could exceed.
    quorum_ppm: int = bounded(334_000, 1, PPM)
    threshold_ppm: int = bounded(500_000, 1, PPM - 1)
    veto_threshold_ppm: int = bounded(334_000, 1, PPM)
    # False: participants vote with their epoch weight and other accounts cannot vote.
    # True: every account votes with its ninfer balance instead (docs/gov.md).
    balance_votes: bool = flag(False)

    def check_consistency(self) -> None:
        if self.min_initial_deposit > self.min_deposit:
            raise InvalidRequest("gov params need min_initial_deposit <= min_deposit")
