"""``python -m explorer --chain-grpc HOST:PORT --listen HOST:PORT [--mlnode HOST:PORT]``."""

import argparse
import logging

from aiohttp import web

from explorer.server import make_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explorer",
                                     description="the network explorer, a web page")
    parser.add_argument("--chain-grpc", default="127.0.0.1:9090",
                        help="the chain node's Cosmos gRPC address")
    parser.add_argument("--listen", default="127.0.0.1:8109", help="HOST:PORT to serve on")
    parser.add_argument("--mlnode", default=None,
                        help="an ML node's gRPC address, to show token text (optional)")
    parser.add_argument("--poll-s", type=float, default=0.5,
                        help="how often to ask the chain node for its latest block")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen {args.listen!r} is not HOST:PORT")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    web.run_app(make_app(args.chain_grpc, args.mlnode, args.poll_s), host=host,
                port=int(port), print=lambda line: logging.info("%s", line))


if __name__ == "__main__":
    main()
