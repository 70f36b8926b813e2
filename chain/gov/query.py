"""Gov's queries on inference.v1.Query: proposals, their votes, deposits and tally so far.

Every module's params are read through the ``Params`` query, which the app serves from each
module's declaration (chain/module_manager.py).
"""

from collections.abc import Callable

import grpc

from chain.gov.keeper import GovKeeper
from chain.gov.tally import VotingPower
from chain.query import QueryError, enum_arg, page_limit
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.gov_pb2 import (
    PROPOSAL_STATUS_UNSPECIFIED,
    PROPOSAL_STATUS_VOTING_PERIOD,
    Proposal,
    ProposalStatus,
)


class GovQueries:
    def __init__(self, keeper: GovKeeper, power: VotingPower,
                 latest_height: Callable[[], int]) -> None:
        self._keeper = keeper
        self._power = power
        self._latest_height = latest_height

    def _find(self, state: KVReader, proposal_id: int) -> Proposal:
        found = self._keeper.proposal(state, proposal_id)
        if found is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND, f"proposal {proposal_id} not found")
        return found

    def proposals(self, state: KVReader, req: q.QueryProposalsRequest
                  ) -> q.QueryProposalsResponse:
        limit = page_limit(req.limit)
        status = enum_arg(ProposalStatus, req.status, "status")
        if status == PROPOSAL_STATUS_UNSPECIFIED:
            status = None
        found = []
        for item in self._keeper.proposals(state, status):
            found.append(item)
            if len(found) == limit:
                break
        return q.QueryProposalsResponse(proposals=found)

    def proposal(self, state: KVReader, req: q.QueryProposalRequest
                 ) -> q.QueryProposalResponse:
        return q.QueryProposalResponse(proposal=self._find(state, req.proposal_id))

    def votes(self, state: KVReader, req: q.QueryProposalVotesRequest
              ) -> q.QueryProposalVotesResponse:
        return q.QueryProposalVotesResponse(
            votes=list(self._keeper.votes(state, req.proposal_id)))

    def deposits(self, state: KVReader, req: q.QueryProposalDepositsRequest
                 ) -> q.QueryProposalDepositsResponse:
        return q.QueryProposalDepositsResponse(
            deposits=list(self._keeper.deposits(state, req.proposal_id)))

    def tally(self, state: KVReader, req: q.QueryProposalTallyRequest
              ) -> q.QueryProposalTallyResponse:
        found = self._find(state, req.proposal_id)
        if found.status != PROPOSAL_STATUS_VOTING_PERIOD:
            return q.QueryProposalTallyResponse(tally=found.final_tally)
        return q.QueryProposalTallyResponse(
            tally=self._power.tally(state, max(self._latest_height(), 1), found.id))

    def upgrade_plan(self, state: KVReader, req: q.QueryUpgradePlanRequest
                     ) -> q.QueryUpgradePlanResponse:
        return q.QueryUpgradePlanResponse(plan=self._keeper.upgrade_plan(state))
