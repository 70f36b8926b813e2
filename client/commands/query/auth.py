"""``inferchain query auth account|params``."""

import argparse

from cosmpy.protos.cosmos.auth.v1beta1.auth_pb2 import BaseAccount

from client.arguments import parse_address
from client.commands.leaf import group, query
from client.commands.query.params import add_params
from client.node import Node


def add_parser(modules: argparse._SubParsersAction) -> None:
    commands = group(modules, "auth", "accounts: numbers, sequences, public keys")
    account = query(commands, "account", "an account's number, sequence and public key",
                    account_of)
    account.add_argument("address")
    add_params(commands, "auth")


def account_of(args: argparse.Namespace, node: Node) -> BaseAccount:
    return node.account(parse_address(args.address))
