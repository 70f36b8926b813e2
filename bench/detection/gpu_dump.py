"""Honest executors on a GPU: generate, record artifacts, dump JSON for the CPU validator.

The calibration must know how far an honest GPU executor (bf16, fp16, fp32 kernels) lands
from the fp32 CPU validator, but the development machines have no GPU. This runs on the
device host with only torch and transformers (no API node, no gRPC), and the records it
writes are scored on CPU by ``python -m bench.detection --gpu-json FILE``::

    python -m bench.detection.gpu_dump --device cuda --out $OUT/gpu.json
"""

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path

import torch

from bench.detection.workload import Record, generate_all, make_cases, progress
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare
from mlnode.torch_engine import TorchEngine


def parse_counts(text: str) -> dict[int, int]:
    """"8:200,32:50" -> {8: 200, 32: 50} (max_tokens: pairs)."""
    return {int(k): int(v) for k, v in (part.split(":") for part in text.split(","))}


async def dump(device: str, dtypes: list[str], counts: dict[int, int],
               concurrency: int) -> list[Record]:
    files = prepare(default_gguf())
    records: list[Record] = []
    for dtype in dtypes:
        engine = TorchEngine.from_files(files, model_id=DEFAULT_MODEL_ID, dtype=dtype,
                                        device=device, max_batch=concurrency)
        try:
            for length, count in counts.items():
                cases = make_cases(count, length, f"gpu-{dtype}")
                records += await generate_all(engine, cases, f"honest-gpu-{dtype}", concurrency)
        finally:
            engine.close()
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.detection.gpu_dump",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="bfloat16,float16,float32")
    parser.add_argument("--counts", default="8:200,32:50,128:20",
                        help="pairs per max_tokens, per dtype")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, required=True)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    started = time.monotonic()
    records = asyncio.run(dump(args.device, args.dtypes.split(","), parse_counts(args.counts),
                               args.concurrency))
    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.node()
    meta = {"device": card, "torch": torch.__version__, "seconds": time.monotonic() - started,
            "command": "python -m bench.detection.gpu_dump " + " ".join(argv)}
    args.out.write_text(json.dumps({"meta": meta, "records": [r.to_json() for r in records]}))
    progress(f"{len(records)} records from {card} in {meta['seconds']:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
