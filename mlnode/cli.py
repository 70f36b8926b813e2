"""Command line of the ML node: ``python -m mlnode serve --engine torch --port 50051``.

``--config FILE`` reads the same settings from a TOML file (keys named as the flags, with
``_`` for ``-``: ``engine = "vllm"``, ``max_batch = 32``), as ``inferchain init`` writes one;
a flag on the command line wins over the file.
"""

import argparse
import asyncio
import logging
import tomllib
from pathlib import Path

from prometheus_client import start_http_server

from mlnode.engine import Engine
from mlnode.metrics import MlNodeMetrics
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare

log = logging.getLogger("mlnode")


def build_engine(args: argparse.Namespace, metrics: MlNodeMetrics) -> Engine:
    files = prepare(args.model) if args.model else prepare(default_gguf())
    model_id = args.model_id or DEFAULT_MODEL_ID
    if args.cheat:
        if args.engine != "torch":
            raise SystemExit("--cheat needs --engine torch")
        from mlnode.cheats import cheating_engine

        return cheating_engine(args.cheat, files, model_id=model_id, dtype=args.dtype,
                               device=args.device, max_batch=args.max_batch,
                               on_step=metrics.batch_size.observe)
    if args.engine == "vllm":
        from mlnode.vllm_engine import VllmEngine

        return VllmEngine.from_files(files, model_id=model_id, dtype=args.dtype,
                                     device=args.device, max_batch=args.max_batch)
    from mlnode.torch_engine import TorchEngine

    return TorchEngine.from_files(files, model_id=model_id, dtype=args.dtype,
                                  device=args.device, max_batch=args.max_batch,
                                  on_step=metrics.batch_size.observe)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlnode", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a model over gRPC")
    serve.add_argument("--engine", choices=["torch", "vllm"], default="torch")
    serve.add_argument("--model", type=_path, default=None,
                       help="a .gguf file or a transformers folder (default: SmolLM2-135M)")
    serve.add_argument("--model-id", default=None, help="the id the chain knows the model by")
    serve.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    serve.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    serve.add_argument("--max-batch", type=int, default=16)
    serve.add_argument("--cheat", choices=["int8", "skip-layers", "forge-prefill",
                                           "forge-prefill-int8", "skip-eos", "ignore-grammar",
                                           "ignore-transforms"],
                       default=None,
                       help="serve a cheating model under the honest id (tests and "
                            "calibration only; see mlnode/cheats.py)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=50051)
    serve.add_argument("--metrics-port", type=int, default=0,
                       help="serve Prometheus metrics at http://HOST:PORT/metrics (0: none)")
    serve.add_argument("--log-level", default="INFO")
    serve.add_argument("--config", type=_path, default=None,
                       help="a TOML file of these settings (a flag given here wins)")
    args = parser.parse_args(argv)
    if args.config is not None:
        _apply_config(serve, args.config)
        args = parser.parse_args(argv)
    if not 0 <= args.metrics_port <= 65535:
        parser.error(f"--metrics-port must be a port number from 1 to 65535, or 0 for no "
                     f"metrics; got {args.metrics_port}")

    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from mlnode.server import serve as serve_grpc

    metrics = MlNodeMetrics()
    metrics_server = None
    if args.metrics_port:  # before the model loads: a port in use stops the node at once
        try:
            metrics_server, _ = start_http_server(args.metrics_port, args.host, metrics.registry)
        except OSError as exc:
            parser.error(f"--metrics-port {args.metrics_port}: cannot serve metrics on "
                         f"{args.host}:{args.metrics_port} ({exc.strerror or exc}); choose a "
                         "free port, or 0 for none")
        log.info("metrics at http://%s:%d/metrics", args.host, args.metrics_port)
    try:
        asyncio.run(serve_grpc(build_engine(args, metrics), args.host, args.port, metrics))
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()


def _path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    return path


def _apply_config(serve: argparse.ArgumentParser, path: Path) -> None:
    """Makes the file's settings the defaults, each checked as its flag would be."""
    try:
        settings = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        serve.error(f"--config {path}: {exc}")
    flags = {action.dest: action for action in serve._actions if action.dest != "config"}
    for key, value in settings.items():
        action = flags.get(key)
        if action is None or action.dest == "help":
            serve.error(f"--config {path}: unknown setting {key!r}; known: "
                        f"{', '.join(sorted(k for k in flags if k != 'help'))}")
        if action.choices is not None and value not in action.choices:
            serve.error(f"--config {path}: {key} = {value!r} is not one of "
                        f"{', '.join(map(str, action.choices))}")
        try:
            if action.type is not None and not isinstance(value, str | int):
                raise ValueError(type(value).__name__)
            serve.set_defaults(**{key: action.type(value) if action.type is not None
                                  and isinstance(value, str) else value})
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            serve.error(f"--config {path}: {key} = {value!r} is not a valid value ({exc})")
