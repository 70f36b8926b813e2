"""``inferchain query bank balances|supply|params``."""

import argparse

from cosmpy.protos.cosmos.bank.v1beta1 import query_pb2 as bank
from google.protobuf.message import Message

from client.arguments import parse_address, parse_denom
from client.commands.leaf import group, query
from client.commands.query.params import add_params
from client.node import Node

SERVICE = "/cosmos.bank.v1beta1.Query/"


def add_parser(modules: argparse._SubParsersAction) -> None:
    commands = group(modules, "bank", "balances and supply")
    balances = query(commands, "balances", "an address's balances (all denoms, or --denom)",
                     balances_of)
    balances.add_argument("address")
    balances.add_argument("--denom", help="only this denom")
    supply = query(commands, "supply", "the total supply of a denom", supply_of)
    supply.add_argument("denom")
    add_params(commands, "bank")


def balances_of(args: argparse.Namespace, node: Node) -> Message:
    address = parse_address(args.address)
    if args.denom is not None:
        return node.call(SERVICE + "Balance", bank.QueryBalanceRequest(
            address=address, denom=parse_denom(args.denom)), bank.QueryBalanceResponse)
    return node.call(SERVICE + "AllBalances", bank.QueryAllBalancesRequest(address=address),
                     bank.QueryAllBalancesResponse)


def supply_of(args: argparse.Namespace, node: Node) -> Message:
    return node.call(SERVICE + "SupplyOf", bank.QuerySupplyOfRequest(
        denom=parse_denom(args.denom)), bank.QuerySupplyOfResponse)
