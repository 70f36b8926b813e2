"""Command line of the ML node: ``python -m mlnode serve --engine torch --port 50051``."""

import argparse
import asyncio
import logging
from pathlib import Path

from mlnode.engine import Engine
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare

log = logging.getLogger("mlnode")


def build_engine(args: argparse.Namespace) -> Engine:
    files = prepare(args.model) if args.model else prepare(default_gguf())
    model_id = args.model_id or DEFAULT_MODEL_ID
    if args.cheat:
        if args.engine != "torch":
            raise SystemExit("--cheat needs --engine torch")
        from mlnode.cheats import cheating_engine

        return cheating_engine(args.cheat, files, model_id=model_id, dtype=args.dtype,
                               device=args.device, max_batch=args.max_batch)
    if args.engine == "vllm":
        from mlnode.vllm_engine import VllmEngine

        return VllmEngine.from_files(files, model_id=model_id, dtype=args.dtype,
                                     device=args.device, max_batch=args.max_batch)
    from mlnode.torch_engine import TorchEngine

    return TorchEngine.from_files(files, model_id=model_id, dtype=args.dtype,
                                  device=args.device, max_batch=args.max_batch)


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
    serve.add_argument("--cheat", choices=["int8", "skip-layers", "forge-prefill", "skip-eos",
                                           "ignore-transforms"],
                       default=None,
                       help="serve a cheating model under the honest id (tests and "
                            "calibration only; see mlnode/cheats.py)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=50051)
    serve.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from mlnode.server import serve as serve_grpc

    asyncio.run(serve_grpc(build_engine(args), args.host, args.port))


def _path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    return path
