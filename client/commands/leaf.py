"""How a command is declared: a parser with the client flags, bound to the function that runs
it with the resolved settings."""

import argparse
from collections.abc import Callable
from typing import Any

from client import output
from client.node import Node
from client.settings import Settings, add_flags

Handler = Callable[[argparse.Namespace, Settings], None]
Fetch = Callable[[argparse.Namespace, Node], Any]


def command(commands: argparse._SubParsersAction, name: str, help: str,
            handler: Handler) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help, description=help)
    add_flags(parser)
    parser.set_defaults(handler=handler)
    return parser


def query(commands: argparse._SubParsersAction, name: str, help: str,
          fetch: Fetch) -> argparse.ArgumentParser:
    """A read-only command: ``fetch`` asks the node, its answer is printed."""
    def run(args: argparse.Namespace, settings: Settings) -> None:
        with Node(settings.node) as node:
            output.show(fetch(args, node), settings.output)

    return command(commands, name, help, run)


def group(parts: argparse._SubParsersAction, name: str, help: str
          ) -> argparse._SubParsersAction:
    parser = parts.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
