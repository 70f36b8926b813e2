"""How far below a dtype's rule tolerance honest GPU rounding stays:
``python -m bench.detection.rule_margin [--dtype float32]``.

The registry holds an fp32 model to the sampling rule at a tolerance of 0.001 with no violation
forgiven (chain/inference/model.py), so one honest position past the tolerance invalidates an
honest executor. This scores every bundled H200 record of the dtype (``gpu-h200.json.gz``,
made by ``bench.detection.gpu_dump`` at 32 concurrent requests, 8, 32 and 128 tokens) with a CPU
validator in that dtype, one prefill each as the validator worker does, and prints per output
length the positions and the violations at each tolerance the calibration counts, with the
largest distance: the margin between honest cross-hardware rounding and the registry's rule.
"""

import argparse
import asyncio
import sys
from collections import defaultdict
from collections.abc import Sequence

import torch

from bench.detection.__main__ import DEFAULT_GPU_JSON, gpu_records
from bench.detection.validate import TOLERANCES, Result, check_all
from bench.report import table
from chain.inference.model import DEFAULT_RULES, DEFAULT_THRESHOLDS
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare
from mlnode.torch_engine import TorchEngine

GPU_SCENARIO = {"float32": "honest-gpu-float32", "bfloat16": "honest-gpu-bfloat16",
                "float16": "honest-gpu-float16"}


async def score(dtype: str) -> list[Result]:
    files = prepare(default_gguf())
    validator = TorchEngine.from_files(files, model_id=DEFAULT_MODEL_ID, dtype=dtype,
                                       max_batch=8)
    records, _ = gpu_records(DEFAULT_GPU_JSON, None)
    try:
        return await check_all(validator, [r for r in records
                                           if r.scenario == GPU_SCENARIO[dtype]])
    finally:
        validator.close()


def report(results: Sequence[Result], dtype: str) -> list[str]:
    by_length: dict[int, list[Result]] = defaultdict(list)
    for result in results:
        by_length[result.length].append(result)
    rows = []
    for length, group in sorted(by_length.items()):
        counts = [sum(r.violations[i] for r in group) for i in range(len(TOLERANCES))]
        rows.append([str(length), str(len(group)), f"{sum(r.positions for r in group):,}",
                     str(sum(not r.ids_match for r in group)),
                     f"{max(r.distance for r in group):.5f}", *map(str, counts)])
    sampled, greedy, fixed, per_1024 = DEFAULT_RULES[dtype]
    return [f"Bundled H200 {dtype} records scored by a {dtype} CPU validator; the registry's "
            f"{dtype} rule: tolerance {sampled / 1e6:g} (sampled) and {greedy / 1e6:g} nats "
            f"(greedy), {fixed} + {per_1024} per 1,024 violations forgiven, D = "
            f"{DEFAULT_THRESHOLDS[dtype]} nats.", "",
            *table(["max_tokens", "outputs", "positions", "ids mismatch", "largest distance",
                    *(f"violations at {t:g}" for t in TOLERANCES)], rows, 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection.rule_margin",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=sorted(GPU_SCENARIO), default="float32")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("\n".join(report(asyncio.run(score(args.dtype)), args.dtype)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
