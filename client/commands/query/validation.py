"""``inferchain query validation …``: validation tasks, votes, executor and validator
records, seed commitments."""

import argparse

from google.protobuf.message import Message

from client.arguments import count, parse_address
from client.commands.leaf import group, query
from client.commands.query.params import add_params
from client.node import Node
from inferchain_pb.inference.v1 import query_pb2 as q


def add_parser(modules: argparse._SubParsersAction) -> None:
    commands = group(modules, "validation", "validation tasks, votes, reputation")
    query(commands, "task", "the validation task of an inference",
          task).add_argument("inference_id")
    listed = query(commands, "tasks", "tasks by finish height in a range", tasks)
    listed.add_argument("--from-height", type=count, default=0)
    listed.add_argument("--to-height", type=count, default=0, help="0: the latest")
    listed.add_argument("--limit", type=count, default=100)
    query(commands, "pending-votes", "open votes a voter was drawn for",
          pending_votes).add_argument("voter")
    query(commands, "executor-stats", "an executor's validated and invalidated counts",
          executor_stats).add_argument("address")
    for name, help, fetch in (
            ("seed-commitment", "a validator's seed commitment for an epoch", seed_commitment),
            ("validator-record", "a validator's record for an epoch", validator_record)):
        by_epoch = query(commands, name, help, fetch)
        by_epoch.add_argument("address")
        by_epoch.add_argument("epoch", type=count)
    add_params(commands, "validation")


def task(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("ValidationTask", q.QueryValidationTaskRequest(
        inference_id=args.inference_id), q.QueryValidationTaskResponse).task


def tasks(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("ValidationTasks", q.QueryValidationTasksRequest(
        from_height=args.from_height, to_height=args.to_height, limit=min(args.limit, 1000)),
        q.QueryValidationTasksResponse)


def pending_votes(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("PendingVotes", q.QueryPendingVotesRequest(
        voter=parse_address(args.voter, "voter")), q.QueryPendingVotesResponse)


def executor_stats(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("ExecutorStats", q.QueryExecutorStatsRequest(
        address=parse_address(args.address)), q.QueryExecutorStatsResponse).stats


def seed_commitment(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("SeedCommitment", q.QuerySeedCommitmentRequest(
        address=parse_address(args.address), epoch=args.epoch),
        q.QuerySeedCommitmentResponse).commitment


def validator_record(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("ValidatorRecord", q.QueryValidatorRecordRequest(
        address=parse_address(args.address), epoch=args.epoch),
        q.QueryValidatorRecordResponse).record
