"""``inferchain query gov …``: proposals, their votes, deposits and tally, the upgrade plan;
read with the gov command line's own reader (chain/gov/cli.py)."""

import argparse
from typing import Any

from google.protobuf.message import Message

from client.arguments import count
from client.commands.leaf import group, query
from client.commands.query.params import add_params
from client.node import Node
from inferchain_pb.inference.v1 import query_pb2 as q

STATUSES = ["deposit_period", "voting_period", "passed", "rejected", "failed"]


def add_parser(modules: argparse._SubParsersAction) -> None:
    commands = group(modules, "gov", "proposals, votes, deposits, the upgrade plan")
    query(commands, "proposals", "every proposal, or those of --status",
          proposals).add_argument("--status", choices=STATUSES)
    query(commands, "proposal", "one proposal with its votes and tally",
          proposal).add_argument("proposal_id", type=count)
    query(commands, "deposits", "a proposal's deposits",
          deposits).add_argument("proposal_id", type=count)
    query(commands, "tally", "a proposal's tally so far",
          tally).add_argument("proposal_id", type=count)
    query(commands, "upgrade-plan", "the last software upgrade governance approved",
          upgrade_plan)
    add_params(commands, "gov")


def proposals(args: argparse.Namespace, node: Node) -> Any:
    with node.rpc_errors():
        return node.gov().proposals(args.status)


def proposal(args: argparse.Namespace, node: Node) -> Any:
    with node.rpc_errors():
        return node.gov().proposal(args.proposal_id)


def deposits(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("ProposalDeposits", q.QueryProposalDepositsRequest(
        proposal_id=args.proposal_id), q.QueryProposalDepositsResponse)


def tally(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("ProposalTally", q.QueryProposalTallyRequest(
        proposal_id=args.proposal_id), q.QueryProposalTallyResponse).tally


def upgrade_plan(args: argparse.Namespace, node: Node) -> Any:
    with node.rpc_errors():
        return node.gov().upgrade_plan()
