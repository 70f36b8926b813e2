"""What the explorer asks the chain node, on top of the API node's ``ChainQueries``.

Every call goes through ``ChainQueries.call``/``find``, so a node that is down raises
``ChainUnavailable`` and a refused query ``ChainQueryError``; the server turns the first into
the "chain node unreachable" page and a NOT_FOUND or INVALID_ARGUMENT into a 404.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from cosmpy.protos.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query

from apinode.chain_queries import INFERENCE, LATEST_BLOCK, ChainQueries, ChainQueryError
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.epochs_pb2 import EpochSettlement
from inferchain_pb.inference.v1.gov_pb2 import Proposal, TallyResult, Vote
from inferchain_pb.inference.v1.inference_pb2 import Inference, InferenceStatus, Participant
from inferchain_pb.inference.v1.validation_pb2 import ExecutorStats, ValidationTask

# Statuses the inference list shows, each asked for separately (the chain indexes by status).
LISTED_STATUSES = [v for v in InferenceStatus.values() if v]


@dataclass(frozen=True)
class ParticipantRow:
    """A participant with its standing as an executor (reputation, invalidations)."""

    participant: Participant
    stats: ExecutorStats

    @property
    def invalid(self) -> bool:
        return bool(self.participant.invalid_since and not self.participant.invalid_until)

    @property
    def availability(self) -> float | None:
        """Share of the draws it was picked for that it served; None before its first."""
        done, missed = self.participant.completions, self.participant.misses
        return done / (done + missed) if done + missed else None


@dataclass(frozen=True)
class ProposalRow:
    """A proposal with its tally: the live one while voting, the final one after."""

    proposal: Proposal
    tally: TallyResult


class ChainReader:
    def __init__(self, queries: ChainQueries) -> None:
        self.queries = queries

    async def status(self) -> q.QueryStatusResponse:
        return await self.queries.call(INFERENCE + "Status", q.QueryStatusRequest(),
                                       q.QueryStatusResponse)

    async def latest_block(self) -> tm_query.GetLatestBlockResponse:
        return await self.queries.call(LATEST_BLOCK, tm_query.GetLatestBlockRequest(),
                                       tm_query.GetLatestBlockResponse)

    async def executor_stats(self, address: str) -> ExecutorStats:
        reply = await self.queries.call(INFERENCE + "ExecutorStats",
                                        q.QueryExecutorStatsRequest(address=address),
                                        q.QueryExecutorStatsResponse)
        return reply.stats

    async def participants(self) -> list[ParticipantRow]:
        return [ParticipantRow(p, await self.executor_stats(p.address))
                for p in await self.queries.participants()]

    async def participant(self, address: str) -> ParticipantRow | None:
        found = await self.queries.participant(address)
        if found is None:
            return None
        return ParticipantRow(found, await self.executor_stats(address))

    async def recent_inferences(self, limit: int) -> list[Inference]:
        """The ``limit`` inferences whose status changed last, over the heights one query
        scans (chain.query.MAX_HEIGHT_SPAN back from the latest)."""
        found: list[Inference] = []
        for status in LISTED_STATUSES:
            reply = await self.queries.call(
                INFERENCE + "Inferences", q.QueryInferencesRequest(status=status),
                q.QueryInferencesResponse)
            found.extend(reply.inferences)
        found.sort(key=lambda i: (i.status_height, i.id), reverse=True)
        return found[:limit]

    async def validation_task(self, inference_id: str, height: int = 0
                              ) -> ValidationTask | None:
        reply = await self.queries.find(INFERENCE + "ValidationTask",
                                        q.QueryValidationTaskRequest(inference_id=inference_id),
                                        q.QueryValidationTaskResponse, height)
        return reply.task if reply else None

    async def settlement(self, epoch: int) -> EpochSettlement | None:
        """What epoch ``epoch`` paid; None until it is settled."""
        return (await self.settlement_or_reason(epoch))[0]

    async def settlement_or_reason(self, epoch: int) -> tuple[EpochSettlement | None, str]:
        """What epoch ``epoch`` paid, or None and the chain's reason there is nothing to show:
        not settled yet, or settled so long ago that its records were dropped."""
        try:
            reply = await self.queries.call(INFERENCE + "EpochSettlement",
                                            q.QueryEpochSettlementRequest(epoch=epoch),
                                            q.QueryEpochSettlementResponse)
        except ChainQueryError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND:
                raise
            return None, exc.details
        return reply.settlement, ""

    async def proposals(self) -> list[ProposalRow]:
        reply = await self.queries.call(INFERENCE + "Proposals", q.QueryProposalsRequest(),
                                        q.QueryProposalsResponse)
        rows = [ProposalRow(p, await self.tally(p.id)) for p in reply.proposals]
        return sorted(rows, key=lambda row: row.proposal.id, reverse=True)

    async def proposal(self, proposal_id: int) -> ProposalRow | None:
        reply = await self.queries.find(INFERENCE + "Proposal",
                                        q.QueryProposalRequest(proposal_id=proposal_id),
                                        q.QueryProposalResponse)
        if reply is None:
            return None
        return ProposalRow(reply.proposal, await self.tally(proposal_id))

    async def tally(self, proposal_id: int) -> TallyResult:
        reply = await self.queries.call(INFERENCE + "ProposalTally",
                                        q.QueryProposalTallyRequest(proposal_id=proposal_id),
                                        q.QueryProposalTallyResponse)
        return reply.tally

    async def votes(self, proposal_id: int) -> list[Vote]:
        reply = await self.queries.call(INFERENCE + "ProposalVotes",
                                        q.QueryProposalVotesRequest(proposal_id=proposal_id),
                                        q.QueryProposalVotesResponse)
        return list(reply.votes)
