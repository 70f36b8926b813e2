"""``inferchain tx gov submit-proposal|deposit|vote``, with the messages the gov command line
builds (chain/gov/cli.py): the same proposal file format, the same vote options."""

import argparse
import json
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import Message

from chain.gov import cli as gov_cli
from client.arguments import count
from client.commands.leaf import group
from client.commands.tx.signed import tx_command
from client.errors import CliError
from client.node import Node


def add_parser(modules: argparse._SubParsersAction) -> None:
    commands = group(modules, "gov", "proposals, deposits, votes")
    submit_ = tx_command(commands, "submit-proposal", "submit the proposal of a JSON file "
                         "(docs/gov.md)", submit)
    submit_.add_argument("file", type=Path)
    deposit_ = tx_command(commands, "deposit", "add ninfer to a proposal's deposit", deposit)
    deposit_.add_argument("proposal_id", type=count)
    deposit_.add_argument("amount", type=count, help="ninfer")
    vote_ = tx_command(commands, "vote", "vote on a proposal (again: replaces the vote)", vote)
    vote_.add_argument("proposal_id", type=count)
    vote_.add_argument("option", choices=sorted(gov_cli.OPTIONS))


def submit(args: argparse.Namespace, signer: str, node: Node) -> list[Message]:
    try:
        return [gov_cli.submit_message(args.file, signer)]
    except (OSError, ValueError, TypeError, json_format.ParseError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exc
        raise CliError(f"proposal file {args.file}: {reason}") from None


def deposit(args: argparse.Namespace, signer: str, node: Node) -> list[Message]:
    return [gov_cli.deposit_message(args.proposal_id, args.amount, signer)]


def vote(args: argparse.Namespace, signer: str, node: Node) -> list[Message]:
    return [gov_cli.vote_message(args.proposal_id, args.option, signer)]
