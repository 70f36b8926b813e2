"""``inferchain query MODULE …``: read-only queries of each module, over the node's gRPC."""

import argparse

from client.commands.leaf import group
from client.commands.query import auth, bank, epochs, gov, inference, tx, validation


def add_parser(parts: argparse._SubParsersAction) -> None:
    modules = group(parts, "query", "read chain state from a node")
    for module in (auth, bank, inference, validation, epochs, gov, tx):
        module.add_parser(modules)
