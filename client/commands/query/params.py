"""Every module's ``params`` query: the chain's Params query by module name."""

import argparse

from client.commands.leaf import query
from client.node import Node


def add_params(commands: argparse._SubParsersAction, module: str) -> None:
    def fetch(args: argparse.Namespace, node: Node) -> dict:
        return node.params(module)

    query(commands, "params", f"the {module} module's parameters (governance changes them)",
          fetch)
