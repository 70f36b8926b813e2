"""The gov module: proposals, deposits, votes, and executing what passed (chain/module.py)."""

from collections.abc import Callable, Mapping

from chain.context import Context
from chain.gas import GasKV
from chain.gov import genesis
from chain.gov.blocks import GovBlocks
from chain.gov.content import Contents
from chain.gov.expected_keepers import (
    BankKeeper,
    EpochKeeper,
    InferenceKeeper,
    ValidationKeeper,
)
from chain.gov.keeper import GovKeeper
from chain.gov.msg_server import GovMsgServer
from chain.gov.query import GovQueries
from chain.gov.tally import VotingPower
from chain.module import Module, Msg, Query, service_queries
from chain.params import ParamsKeeper
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2
from inferchain_pb.inference.v1.gov_pb2 import MsgDeposit, MsgSubmitProposal, MsgVote


class GovModule(Module):
    name = "gov"
    keeper: GovKeeper

    def __init__(self, keeper: GovKeeper, bank: BankKeeper, inference: InferenceKeeper,
                 epochs: EpochKeeper, validation: ValidationKeeper,
                 params: Mapping[str, ParamsKeeper]) -> None:
        """``params`` maps each module with params to its keeper: proposals change them."""
        super().__init__(keeper)
        self._power = VotingPower(keeper, bank, epochs, validation)
        contents = Contents(params, inference, keeper, bank)
        self._msgs = GovMsgServer(keeper, bank, contents, self._power)
        self._blocks = GovBlocks(keeper, bank, contents, self._power)

    def messages(self) -> list[Msg]:
        return [Msg(MsgSubmitProposal, "proposer", self._msgs.submit),
                Msg(MsgDeposit, "depositor", self._msgs.deposit),
                Msg(MsgVote, "voter", self._msgs.vote)]

    def queries(self, latest_height: Callable[[], int]) -> list[Query]:
        queries = GovQueries(self.keeper, self._power, latest_height)
        return service_queries(query_pb2.DESCRIPTOR.services_by_name["Query"], {
            "Proposals": queries.proposals,
            "Proposal": queries.proposal,
            "ProposalVotes": queries.votes,
            "ProposalDeposits": queries.deposits,
            "ProposalTally": queries.tally,
            "UpgradePlan": queries.upgrade_plan,
        })

    def init_genesis(self, kv: GasKV, section: dict) -> None:
        genesis.init_genesis(self.keeper, kv, section)

    def export_genesis(self, state: KVReader) -> dict:
        return genesis.export_genesis(self.keeper, state)

    def end_block(self, ctx: Context) -> None:
        self._blocks.end_block(ctx)
