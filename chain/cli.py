"""``inferchain node start --home DIR``, ``inferchain gov …``: the chain's command line."""

import argparse
import asyncio
import logging
from pathlib import Path

from chain.gov import cli as gov_cli
from chain.node import run_node


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="inferchain", description=__doc__)
    parts = parser.add_subparsers(dest="part", required=True)
    node = parts.add_parser("node", help="run a chain node").add_subparsers(dest="command",
                                                                              required=True)
    start = node.add_parser("start", help="start the node whose home is DIR")
    start.add_argument("--home", type=Path, required=True)
    start.add_argument("--log-level", default="INFO")
    gov_cli.add_parser(parts)
    args = parser.parse_args(argv)
    if args.part == "gov":
        gov_cli.run(args)
        return
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_node(args.home.resolve()))
