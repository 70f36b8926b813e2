"""Voting power and the tally (docs/design.md §8.2: the network is changed by those who run it).

Power has one unit per chain, never a mix: with ``balance_votes`` off (the default), a
participant votes with its weight among the current epoch's members and the total is the
members' total weight; other accounts have no power. With ``balance_votes`` on, every
account votes with its ninfer balance and the total is the ninfer supply. Power is read at
tally time, so moving coins or weight after voting cannot count twice.
"""

import enum
from dataclasses import dataclass

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.gov.expected_keepers import BankKeeper, EpochKeeper, ValidationKeeper
from chain.gov.keeper import GovKeeper
from chain.gov.params import GovParams
from chain.scales import PPM
from chain.store import KVReader
from inferchain_pb.inference.v1.gov_pb2 import (
    VOTE_OPTION_ABSTAIN,
    VOTE_OPTION_NO,
    VOTE_OPTION_NO_WITH_VETO,
    VOTE_OPTION_YES,
    TallyResult,
)

FIELD = {VOTE_OPTION_YES: "yes", VOTE_OPTION_ABSTAIN: "abstain", VOTE_OPTION_NO: "no",
         VOTE_OPTION_NO_WITH_VETO: "no_with_veto"}


class Verdict(enum.Enum):
    PASSED = "passed"
    NO_QUORUM = "quorum not reached"
    VETOED = "vetoed"
    REJECTED = "threshold not reached"


@dataclass(frozen=True)
class VotingPower:
    gov: GovKeeper
    bank: BankKeeper
    epochs: EpochKeeper
    validation: ValidationKeeper

    def weights(self, state: KVReader, height: int) -> dict[str, int]:
        """Each member's weight in the epoch of ``height``."""
        members = self.validation.members(state, self.epochs.epoch_of(state, height))
        return {m.address: m.weight for m in members.members} if members else {}

    def of(self, state: KVReader, height: int, voter: str) -> int:
        if self.gov.params(state).balance_votes:
            return self.bank.balance(state, address.decode(voter), NATIVE_DENOM)
        return self.weights(state, height).get(voter, 0)

    def tally(self, state: KVReader, height: int, proposal_id: int) -> TallyResult:
        """Every recorded vote weighed by its voter's power now."""
        balances = self.gov.params(state).balance_votes
        if balances:
            total = self.bank.supply(state, NATIVE_DENOM)
        else:
            weights = self.weights(state, height)
            total = sum(weights.values())
        result = TallyResult(total_power=total)
        for vote in self.gov.votes(state, proposal_id):
            power = self.of(state, height, vote.voter) if balances else \
                weights.get(vote.voter, 0)
            field = FIELD[vote.option]
            setattr(result, field, getattr(result, field) + power)
        return result


def verdict(tally: TallyResult, params: GovParams) -> Verdict:
    """Cosmos gov's rule: quorum of all power voted; then a veto share of the voted power
    rejects; then yes must exceed the threshold of the non-abstaining power."""
    voted = tally.yes + tally.abstain + tally.no + tally.no_with_veto
    if voted == 0 or voted * PPM < params.quorum_ppm * tally.total_power:
        return Verdict.NO_QUORUM
    if tally.no_with_veto * PPM > params.veto_threshold_ppm * voted:
        return Verdict.VETOED
    deciding = voted - tally.abstain
    if deciding and tally.yes * PPM > params.threshold_ppm * deciding:
        return Verdict.PASSED
    return Verdict.REJECTED
