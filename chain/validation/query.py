"""Validation's queries on inference.v1.Query: what validator workers and operators read."""

from collections.abc import Callable

import grpc

from chain.epochs.keeper import EpochKeeper
from chain.query import (
    MAX_HEIGHT_SPAN,
    MAX_PAGE,
    QueryError,
    QueryRouter,
    address_arg,
    height_arg,
    invalid,
    page_limit,
)
from chain.store import KVReader
from chain.validation.keeper import ValidationKeeper
from inferchain_pb.inference.v1 import query_pb2 as q

PATH = "/inference.v1.Query/"
MAX_TASKS = MAX_PAGE
MAX_HEIGHTS = MAX_HEIGHT_SPAN


def register(queries: QueryRouter, keeper: ValidationKeeper, epochs: EpochKeeper,
             latest_height: Callable[[], int]) -> None:
    def epoch(state: KVReader, req: q.QueryEpochRequest) -> q.QueryEpochResponse:
        current = epochs.current(state, max(latest_height(), 1))
        number = req.epoch if req.HasField("epoch") else current.number
        return q.QueryEpochResponse(current=current, members=keeper.members(state, number))

    def task(state: KVReader, req: q.QueryValidationTaskRequest
             ) -> q.QueryValidationTaskResponse:
        found = keeper.task(state, req.inference_id)
        if found is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND,
                             f"validation task {req.inference_id!r} not found")
        return q.QueryValidationTaskResponse(task=found)

    def tasks(state: KVReader, req: q.QueryValidationTasksRequest
              ) -> q.QueryValidationTasksResponse:
        from_height = height_arg(req.from_height, "from_height")
        if req.to_height and height_arg(req.to_height, "to_height") < from_height:
            raise invalid(f"to_height {req.to_height} is below from_height {from_height}")
        to_height = min(req.to_height or latest_height(), from_height + MAX_HEIGHTS - 1)
        limit = page_limit(req.limit)
        found = []
        for item in keeper.tasks_finished(state, from_height, to_height):
            found.append(item)
            if len(found) == limit:
                break
        return q.QueryValidationTasksResponse(tasks=found)

    def pending_votes(state: KVReader, req: q.QueryPendingVotesRequest
                      ) -> q.QueryPendingVotesResponse:
        address_arg(req.voter, "voter")
        return q.QueryPendingVotesResponse(tasks=[
            t for t in keeper.open_votes(state)
            if req.voter in t.voters and all(r.validator != req.voter for r in t.reports)])

    def stats(state: KVReader, req: q.QueryExecutorStatsRequest
              ) -> q.QueryExecutorStatsResponse:
        address_arg(req.address, "address")
        return q.QueryExecutorStatsResponse(stats=keeper.stats(state, req.address))

    def commitment(state: KVReader, req: q.QuerySeedCommitmentRequest
                   ) -> q.QuerySeedCommitmentResponse:
        address_arg(req.address, "address")
        found = keeper.commitment(state, req.epoch, req.address)
        if found is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND,
                             f"no seed committed by {req.address} for epoch {req.epoch}")
        return q.QuerySeedCommitmentResponse(commitment=found)

    def record(state: KVReader, req: q.QueryValidatorRecordRequest
               ) -> q.QueryValidatorRecordResponse:
        address_arg(req.address, "address")
        return q.QueryValidatorRecordResponse(record=keeper.record(state, req.epoch,
                                                                   req.address))

    for name, fn, request, response in [
        ("Epoch", epoch, q.QueryEpochRequest, q.QueryEpochResponse),
        ("ValidationTask", task, q.QueryValidationTaskRequest, q.QueryValidationTaskResponse),
        ("ValidationTasks", tasks, q.QueryValidationTasksRequest,
         q.QueryValidationTasksResponse),
        ("PendingVotes", pending_votes, q.QueryPendingVotesRequest,
         q.QueryPendingVotesResponse),
        ("ExecutorStats", stats, q.QueryExecutorStatsRequest, q.QueryExecutorStatsResponse),
        ("SeedCommitment", commitment, q.QuerySeedCommitmentRequest,
         q.QuerySeedCommitmentResponse),
        ("ValidatorRecord", record, q.QueryValidatorRecordRequest,
         q.QueryValidatorRecordResponse),
    ]:
        queries.register(PATH + name, request, response, fn)
