"""``inferchain node start --home DIR``, ``inferchain export --home DIR``, ``inferchain gov …``:
the chain's command line; ``keys``, ``query``, ``tx``, ``status`` and ``config`` are the
client's (client/, docs/cli.md)."""

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from chain import export
from chain.genesis_records import UnexportedState
from chain.gov import cli as gov_cli
from chain.metrics import MetricsUnavailable
from chain.node import NodeFailed, run_node
from chain.store import HeightUnavailable
from client import commands as client_commands


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="inferchain", description=__doc__)
    parts = parser.add_subparsers(dest="part", required=True)
    node = parts.add_parser("node", help="run a chain node").add_subparsers(dest="command",
                                                                              required=True)
    start = node.add_parser("start", help="start the node whose home is DIR")
    start.add_argument("--home", type=Path, required=True)
    start.add_argument("--log-level", default="INFO")
    exporter = parts.add_parser("export", help="write the genesis of a new chain that "
                                "continues this stopped node's chain")
    exporter.add_argument("--home", type=Path, required=True)
    exporter.add_argument("--height", type=int, help="the height to export (default: latest)")
    exporter.add_argument("--output", type=Path, help="the genesis file (default: stdout)")
    gov_cli.add_parser(parts)
    client_commands.add_parsers(parts)
    args = parser.parse_args(argv)
    if args.part in client_commands.GROUPS:
        client_commands.run(args)
        return
    if args.part == "gov":
        gov_cli.run(args)
        return
    if args.part == "export":
        _export(args)
        return
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run_node(args.home.resolve()))
    except (MetricsUnavailable, NodeFailed) as exc:
        sys.exit(f"inferchain node: {exc}")


def _export(args: argparse.Namespace) -> None:
    try:
        genesis = export.export_home(args.home.resolve(), args.height)
    except (export.NodeRunning, UnexportedState, HeightUnavailable, FileNotFoundError,
            ValueError) as exc:
        sys.exit(f"inferchain export: {exc}")
    text = json.dumps(genesis, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    print(f"exported height {int(genesis['initial_height']) - 1} of {genesis['chain_id']}; the "
          f"new chain starts at height {genesis['initial_height']}", file=sys.stderr)
