"""Validation's queries on inference.v1.Query: what validator workers and operators read."""

from collections.abc import Callable

import grpc

from chain.query import (
    MAX_HEIGHT_SPAN,
    MAX_PAGE,
    QueryError,
    address_arg,
    height_arg,
    invalid,
    page_limit,
)
from chain.store import KVReader
from chain.validation.keeper import ValidationKeeper
from inferchain_pb.inference.v1 import query_pb2 as q

MAX_TASKS = MAX_PAGE
MAX_HEIGHTS = MAX_HEIGHT_SPAN


class ValidationQueries:
    def __init__(self, keeper: ValidationKeeper, latest_height: Callable[[], int]) -> None:
        self._keeper = keeper
        self._latest_height = latest_height

    def task(self, state: KVReader, req: q.QueryValidationTaskRequest
             ) -> q.QueryValidationTaskResponse:
        found = self._keeper.task(state, req.inference_id)
        if found is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND,
                             f"validation task {req.inference_id!r} not found")
        return q.QueryValidationTaskResponse(task=found)

    def tasks(self, state: KVReader, req: q.QueryValidationTasksRequest
              ) -> q.QueryValidationTasksResponse:
        from_height = height_arg(req.from_height, "from_height")
        if req.to_height and height_arg(req.to_height, "to_height") < from_height:
            raise invalid(f"to_height {req.to_height} is below from_height {from_height}")
        to_height = min(req.to_height or self._latest_height(), from_height + MAX_HEIGHTS - 1)
        limit = page_limit(req.limit)
        found = []
        for item in self._keeper.tasks_finished(state, from_height, to_height):
            found.append(item)
            if len(found) == limit:
                break
        return q.QueryValidationTasksResponse(tasks=found)

    def pending_votes(self, state: KVReader, req: q.QueryPendingVotesRequest
                      ) -> q.QueryPendingVotesResponse:
        address_arg(req.voter, "voter")
        return q.QueryPendingVotesResponse(tasks=[
            t for t in self._keeper.open_votes(state)
            if req.voter in t.voters and all(r.validator != req.voter for r in t.reports)
            and all(s.validator != req.voter for s in t.seals)])

    def executor_stats(self, state: KVReader, req: q.QueryExecutorStatsRequest
                       ) -> q.QueryExecutorStatsResponse:
        address_arg(req.address, "address")
        return q.QueryExecutorStatsResponse(stats=self._keeper.stats(state, req.address))

    def seed_commitment(self, state: KVReader, req: q.QuerySeedCommitmentRequest
                        ) -> q.QuerySeedCommitmentResponse:
        address_arg(req.address, "address")
        found = self._keeper.commitment(state, req.epoch, req.address)
        if found is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND,
                             f"no seed committed by {req.address} for epoch {req.epoch}")
        return q.QuerySeedCommitmentResponse(commitment=found)

    def validator_record(self, state: KVReader, req: q.QueryValidatorRecordRequest
                         ) -> q.QueryValidatorRecordResponse:
        address_arg(req.address, "address")
        return q.QueryValidatorRecordResponse(record=self._keeper.record(state, req.epoch,
                                                                         req.address))
