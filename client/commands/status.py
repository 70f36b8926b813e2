"""``inferchain status``: where the node's chain is."""

import argparse
import datetime

from cosmpy.protos.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query

from client import output
from client.commands.leaf import command
from client.node import Node
from client.settings import Settings

NODE_INFO = "/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo"


def add_parser(parts: argparse._SubParsersAction) -> None:
    command(parts, "status", "the node's chain: id, height, latest block time", show_status)


def show_status(args: argparse.Namespace, settings: Settings) -> None:
    """Catching-up is left out: the node's gRPC does not report it, and a guess is worse."""
    with Node(settings.node) as node:
        status = node.status()
        info = node.call(NODE_INFO, tm_query.GetNodeInfoRequest(),
                         tm_query.GetNodeInfoResponse)
        node.check_chain_id(settings.chain_id)
    block_time = datetime.datetime.fromtimestamp(status.block_time_unix_ns / 1e9,
                                                 tz=datetime.UTC)
    output.show({
        "node_info": {"network": info.default_node_info.network,
                      "moniker": info.default_node_info.moniker,
                      "version": info.application_version.version},
        "sync_info": {"latest_block_height": str(status.height),
                      "latest_block_time": block_time.isoformat().replace("+00:00", "Z"),
                      "latest_app_hash": status.app_hash.hex().upper()},
        "modules": list(status.modules)}, settings.output)
