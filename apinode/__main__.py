"""``python -m apinode serve --home DIR``: run a participant's API node."""

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from apinode.config import ApiNodeConfig
from apinode.node import run
from chain.metrics import MetricsUnavailable


def main() -> None:
    parser = argparse.ArgumentParser(prog="apinode", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API node whose home is DIR")
    serve.add_argument("--home", type=Path, required=True)
    serve.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(ApiNodeConfig.load(args.home.resolve())))
    except MetricsUnavailable as exc:
        sys.exit(f"apinode: {exc}")


main()
