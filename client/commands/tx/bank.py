"""``inferchain tx bank send FROM TO AMOUNT``."""

import argparse

from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from google.protobuf.message import Message

from client.arguments import parse_address, parse_coins_arg
from client.commands.leaf import group
from client.commands.tx.signed import tx_command
from client.node import Node


def add_parser(modules: argparse._SubParsersAction) -> None:
    commands = group(modules, "bank", "send coins")
    send_ = tx_command(commands, "send", "send coins from a key of the keyring to an address",
                       send, from_flag=False)
    send_.add_argument("sender", metavar="FROM", help="key name or address in the keyring")
    send_.add_argument("to", metavar="TO")
    send_.add_argument("amount", metavar="AMOUNT", help="e.g. 1000ninfer")


def send(args: argparse.Namespace, signer: str, node: Node) -> list[Message]:
    coins = parse_coins_arg(args.amount, "amount")
    return [MsgSend(from_address=signer, to_address=parse_address(args.to, "recipient"),
                    amount=[Coin(denom=c.denom, amount=str(c.amount)) for c in coins])]
