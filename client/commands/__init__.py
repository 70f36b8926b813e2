"""The client's command groups, registered on the ``inferchain`` command line beside
``node``, ``export`` and ``gov`` (chain/cli.py)."""

import argparse
import sys

from client.commands import config, init, keys, query, status, tx
from client.errors import CliError
from client.settings import resolve

GROUPS = {"init": init, "keys": keys, "query": query, "tx": tx, "status": status, "config": config}


def add_parsers(parts: argparse._SubParsersAction) -> None:
    for group in GROUPS.values():
        group.add_parser(parts)


def run(args: argparse.Namespace) -> None:
    """Runs the chosen command; an expected failure is one ``Error:`` line and exit 1."""
    try:
        args.handler(args, resolve(args))
    except CliError as exc:
        print("Error: " + " ".join(line.strip() for line in str(exc).splitlines()),
              file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        sys.exit(130)
