"""``inferchain query tx HASH``: a committed transaction and its outcome."""

import argparse
import re

from cosmpy.protos.cosmos.tx.v1beta1 import service_pb2 as tx_service

from client.commands.leaf import query
from client.errors import CliError
from client.node import Node
from client.output import as_dict
from client.signing import TX_SERVICE


def add_parser(modules: argparse._SubParsersAction) -> None:
    found = query(modules, "tx", "a committed transaction by hash", tx_by_hash)
    found.add_argument("hash")


def tx_by_hash(args: argparse.Namespace, node: Node) -> dict:
    if re.fullmatch("[0-9A-Fa-f]{64}", args.hash) is None:
        raise CliError(f"tx hash {args.hash!r} is not 64 hex digits")
    reply = node.call(TX_SERVICE + "GetTx", tx_service.GetTxRequest(hash=args.hash.upper()),
                      tx_service.GetTxResponse, not_found=f"no committed tx {args.hash}")
    response = as_dict(reply.tx_response)
    response.pop("tx", None)
    return response
