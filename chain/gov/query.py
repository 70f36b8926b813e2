"""Gov's queries on inference.v1.Query: proposals, their votes, deposits and tally so far.

Every module's params are read through the ``Params`` query (chain/inference/query.py).
"""

from collections.abc import Callable

import grpc

from chain.gov.keeper import GovKeeper
from chain.gov.tally import VotingPower
from chain.query import QueryError, QueryRouter, enum_arg, page_limit
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.gov_pb2 import (
    PROPOSAL_STATUS_UNSPECIFIED,
    PROPOSAL_STATUS_VOTING_PERIOD,
    Proposal,
    ProposalStatus,
)

PATH = "/inference.v1.Query/"


def register(queries: QueryRouter, keeper: GovKeeper, power: VotingPower,
             latest_height: Callable[[], int]) -> None:
    def find(state: KVReader, proposal_id: int) -> Proposal:
        found = keeper.proposal(state, proposal_id)
        if found is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND, f"proposal {proposal_id} not found")
        return found

    def proposals(state: KVReader, req: q.QueryProposalsRequest) -> q.QueryProposalsResponse:
        limit = page_limit(req.limit)
        status = enum_arg(ProposalStatus, req.status, "status")
        if status == PROPOSAL_STATUS_UNSPECIFIED:
            status = None
        found = []
        for item in keeper.proposals(state, status):
            found.append(item)
            if len(found) == limit:
                break
        return q.QueryProposalsResponse(proposals=found)

    def proposal(state: KVReader, req: q.QueryProposalRequest) -> q.QueryProposalResponse:
        return q.QueryProposalResponse(proposal=find(state, req.proposal_id))

    def votes(state: KVReader, req: q.QueryProposalVotesRequest
              ) -> q.QueryProposalVotesResponse:
        return q.QueryProposalVotesResponse(votes=list(keeper.votes(state, req.proposal_id)))

    def deposits(state: KVReader, req: q.QueryProposalDepositsRequest
                 ) -> q.QueryProposalDepositsResponse:
        return q.QueryProposalDepositsResponse(
            deposits=list(keeper.deposits(state, req.proposal_id)))

    def tally(state: KVReader, req: q.QueryProposalTallyRequest
              ) -> q.QueryProposalTallyResponse:
        found = find(state, req.proposal_id)
        if found.status != PROPOSAL_STATUS_VOTING_PERIOD:
            return q.QueryProposalTallyResponse(tally=found.final_tally)
        return q.QueryProposalTallyResponse(
            tally=power.tally(state, max(latest_height(), 1), found.id))

    def upgrade_plan(state: KVReader, req: q.QueryUpgradePlanRequest
                     ) -> q.QueryUpgradePlanResponse:
        return q.QueryUpgradePlanResponse(plan=keeper.upgrade_plan(state))

    for name, fn, request, response in [
        ("Proposals", proposals, q.QueryProposalsRequest, q.QueryProposalsResponse),
        ("Proposal", proposal, q.QueryProposalRequest, q.QueryProposalResponse),
        ("ProposalVotes", votes, q.QueryProposalVotesRequest, q.QueryProposalVotesResponse),
        ("ProposalDeposits", deposits, q.QueryProposalDepositsRequest,
         q.QueryProposalDepositsResponse),
        ("ProposalTally", tally, q.QueryProposalTallyRequest, q.QueryProposalTallyResponse),
        ("UpgradePlan", upgrade_plan, q.QueryUpgradePlanRequest, q.QueryUpgradePlanResponse),
    ]:
        queries.register(PATH + name, request, response, fn)
