"""Calibration per serving dtype, and the per-participant evidence test: ``python -m
bench.detection.dtypes [--quick] [--dtypes float16 --device cuda]``.

The registry fixes each model's serving dtype, so executors and validators compute in the same
precision and each dtype gets its own thresholds (docs/design.md §6.3). For every dtype this
runs honest executors (CPU, 8 concurrent, and the bundled H200 records of that dtype) and the
int8 substitute in that dtype, scores each output with a validator in the same dtype, and
measures:

- per inference: D for the dtype (1.5 × the largest honest distance, rounded up) and how many
  int8 outputs it fails alone;
- per participant-epoch: the honest reference of the evidence test (chain/validation/evidence.py:
  μ0, the clip c = D, the bet b), how many checked inferences the int8 substitute needs before
  its wealth crosses 1/α (bootstrapped participant-epochs drawn from its outputs), and how many
  bootstrapped honest participant-epochs cross (the test bounds it by α).

``--device cuda`` runs the executors (honest and int8) and the validator on a GPU instead,
and labels the live honest executors ``honest-cuda-<dtype>``: fp16 is calibrated that way,
since an fp16 validator on the development machines' two cores is far too slow, which is
also why the default (CPU) run covers float32 and bfloat16 only.

Prints the tables as markdown (the "Per dtype" part of docs/verification.md) and saves the
per-pair figures to ``--save-results`` so ``--from-results`` can rebuild the report.
"""

import argparse
import asyncio
import dataclasses
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.detection.__main__ import DEFAULT_GPU_JSON, gpu_records
from bench.detection.report import D_MARGIN, round_up, table
from bench.detection.validate import Result, check_all
from bench.detection.workload import generate_all, make_cases, progress
from chain.validation.evidence import CAP_TIMES_REFERENCE, WEALTH_ONE, bet, crossed
from mlnode.cheats import cheating_engine
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare
from mlnode.torch_engine import TorchEngine

DTYPES = ("float32", "bfloat16", "float16")
# What a run without --dtypes calibrates: fp16 needs a GPU validator (see the docstring).
DEFAULT_DTYPES = ("float32", "bfloat16")
HONEST = {8: 60, 32: 20}
INT8 = {8: 40, 32: 20}
GPU_LIMIT = 60
ALPHA_PPM = 1_000  # α = 0.1% false positives per participant-epoch
REFERENCE_MARGIN = 1.25  # μ0 = this × the largest honest class mean
BETS_PPM = (50_000, 100_000, 200_000, 300_000, 500_000, 700_000, 900_000)
EPOCH_CHECKS = 2_000  # checked inferences in one bootstrapped honest participant-epoch
HONEST_EPOCHS = 2_000
CHEAT_EPOCHS = 2_000


def scaled(counts: dict[int, int], scale: float) -> dict[int, int]:
    return {length: max(2, round(n * scale)) for length, n in counts.items()}


async def run_dtype(files: object, dtype: str, scale: float, gpu: list,
                    device: str = "cpu") -> list[Result]:
    """Executors and validator all on ``device``, as a network serving ``dtype`` there would
    run them; the bundled H200 records of ``dtype`` are scored by the same validator."""
    kind = device.split(":")[0]
    engine = {"model_id": DEFAULT_MODEL_ID, "dtype": dtype, "device": device, "max_batch": 8}
    validator = TorchEngine.from_files(files, **engine)
    executor = TorchEngine.from_files(files, **engine)
    records = []
    for length, n in scaled(HONEST, scale).items():
        records += await generate_all(executor, make_cases(n, length, f"honest-{dtype}"),
                                      f"honest-{kind}-{dtype}", 8)
    executor.close()
    cheat = cheating_engine("int8", files, **engine)
    for length, n in scaled(INT8, scale).items():
        records += await generate_all(cheat, make_cases(n, length, f"int8-{dtype}"),
                                      f"int8-{dtype}", 8)
    cheat.close()
    records += [r for r in gpu if r.scenario == f"honest-gpu-{dtype}"]
    progress(f"scoring {len(records)} records with a {dtype} {kind} validator")
    results = await check_all(validator, records)
    validator.close()
    return results


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The evidence test's reference for one dtype and what it does, in micro-nats/ppm."""

    dtype: str
    threshold_micro: int  # D, per inference
    reference_micro: int  # μ0
    bet_ppm: int
    int8_single: tuple[int, int]  # int8 outputs failed alone / total
    checks_to_cross: tuple[int, int, int]  # int8: median, 99.9th percentile, max
    tokens_to_cross: int  # int8: checked output tokens at the 99.9th percentile
    honest_crossed: dict[str, tuple[int, int]]  # class -> (epochs crossed, epochs)
    honest_means: dict[str, int]


def _wealth_path(distances: Sequence[int], reference: int, cap: int, bet_ppm: int,
                 limit: int) -> int:
    """Checks until the wealth crosses 1/α (``limit + 1`` when it never does)."""
    wealth = WEALTH_ONE
    for i, x in enumerate(distances[:limit], 1):
        wealth = bet(wealth, x, reference, cap, bet_ppm)
        if crossed(wealth, ALPHA_PPM):
            return i
    return limit + 1


def growth(distances: Sequence[int], reference: int, cap: int, bet_ppm: int) -> float:
    """Mean log factor per check: what decides how fast the substitute's wealth grows."""
    clip = min(cap, CAP_TIMES_REFERENCE * reference)
    logs = [math.log(1 + bet_ppm * (min(x, clip) - reference) / (1e6 * reference))
            for x in distances]
    return sum(logs) / len(logs)


def evidence(results: Sequence[Result], dtype: str, rng: random.Random,
             honest_epochs: int, cheat_epochs: int) -> Evidence:
    honest = [r for r in results if r.scenario.startswith("honest") and r.ids_match]
    int8 = [r for r in results if r.scenario.startswith("int8") and r.ids_match]
    micro = {r.scenario: [] for r in honest}
    for r in honest:
        micro[r.scenario].append(round(r.distance * 1e6))
    threshold = round(round_up(max(r.distance for r in honest) * D_MARGIN) * 1e6)
    means = {s: round(sum(v) / len(v)) for s, v in micro.items()}
    reference = math.ceil(max(means.values()) * REFERENCE_MARGIN)
    cheats = [round(r.distance * 1e6) for r in int8]
    best = max(BETS_PPM, key=lambda b: growth(cheats, reference, threshold, b))
    needed, tokens = [], []
    for _ in range(cheat_epochs):
        draw = rng.choices(int8, k=EPOCH_CHECKS)
        n = _wealth_path([round(r.distance * 1e6) for r in draw], reference, threshold, best,
                         EPOCH_CHECKS)
        needed.append(n)
        tokens.append(sum(r.positions for r in draw[:n]))
    needed_sorted, tokens_sorted = sorted(needed), sorted(tokens)
    q = min(len(needed) - 1, math.ceil(0.999 * len(needed)) - 1)
    crossed_by = {}
    for scenario, values in micro.items():
        hits = sum(_wealth_path(rng.choices(values, k=EPOCH_CHECKS), reference, threshold, best,
                                EPOCH_CHECKS) <= EPOCH_CHECKS
                   for _ in range(honest_epochs))
        crossed_by[scenario] = (hits, honest_epochs)
    single = sum(round(r.distance * 1e6) > threshold for r in int8)
    return Evidence(dtype, threshold, reference, best, (single, len(int8)),
                    (needed_sorted[len(needed) // 2], needed_sorted[q], needed_sorted[-1]),
                    tokens_sorted[q], crossed_by, means)


def host(device: str) -> str:
    """Where the figures were computed: the GPU for a cuda run, else the CPU, with torch's
    version (half-precision kernels, hence distances, change with both)."""
    if device.startswith("cuda"):
        where = torch.cuda.get_device_name(torch.device(device))
    else:
        where = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return f"{where}, torch {torch.__version__}"


def markdown(all_results: dict[str, list[Result]], found: list[Evidence], command: str,
             machine: str | None = None) -> str:
    rows = []
    for dtype, results in all_results.items():
        for scenario in dict.fromkeys(r.scenario for r in results):
            group = [r for r in results if r.scenario == scenario and r.ids_match]
            d = sorted(r.distance for r in group)
            rows.append((dtype, scenario, len(group), f"{d[len(d) // 2]:.4f}",
                         f"{sum(d) / len(d):.4f}", f"{d[-1]:.4f}", f"{d[0]:.4f}"))
    figures = table(("registered dtype", "executor", "n", "distance p50", "mean", "max", "min"),
                    rows)
    tests = table(
        ("dtype", "D (nats)", "int8 failed alone", "μ0 (nats)", "b", "int8 checks to cross: "
         "p50 / p99.9 / max", "int8 checked tokens (p99.9)", "honest epochs crossed"),
        [(e.dtype, f"{e.threshold_micro / 1e6:g}", f"{e.int8_single[0]}/{e.int8_single[1]}",
          f"{e.reference_micro / 1e6:g}", f"{e.bet_ppm / 1e6:g}",
          " / ".join(map(str, e.checks_to_cross)), e.tokens_to_cross,
          "; ".join(f"{s}: {c}/{n}" for s, (c, n) in e.honest_crossed.items()))
         for e in found])
    where = f" Machine: {machine}." if machine else ""
    return (f"Command: {command}; α = {ALPHA_PPM / 1e6:g} per participant-epoch, honest "
            f"epochs of {EPOCH_CHECKS:,} checks.{where}\n\n{figures}\n\n{tests}\n")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.detection.dtypes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="scale 0.25, 200 epochs each")
    parser.add_argument("--dtypes", default=",".join(DEFAULT_DTYPES),
                        help=f"comma-separated, of {', '.join(DTYPES)} (float16: with "
                             "--device cuda)")
    parser.add_argument("--device", default="cpu",
                        help="where executors and validator run (cpu, or cuda for float16)")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save-results", type=Path,
                        default=Path(tempfile.gettempdir()) / "dtype-results.json")
    parser.add_argument("--gpu-limit", type=int, default=GPU_LIMIT,
                        help="H200 records per scenario and length scored with the CPU validator")
    parser.add_argument("--from-results", type=Path, nargs="+", default=None,
                        help="report from saved figures (one file per run, e.g. per dtype)")
    args = parser.parse_args(argv)
    unknown = set(args.dtypes.split(",")) - set(DTYPES)
    if unknown:
        parser.error(f"unknown dtype(s) {', '.join(sorted(unknown))}; known: {', '.join(DTYPES)}")
    scale, epochs = (min(args.scale, 0.25), 200) if args.quick else (args.scale, None)
    torch.set_num_threads(1)
    started = time.monotonic()
    if args.from_results is not None:
        runs = [json.loads(path.read_text()) for path in args.from_results]
        all_results = {d: [Result.from_json(r) for r in rs]
                       for saved in runs for d, rs in saved["results"].items()}
        command = "; ".join(f"`python -m bench.detection.dtypes {' '.join(saved['argv'])}` "
                            f"({saved['seconds'] / 60:.0f} min)" for saved in runs)
        # Files saved before the machine was recorded say nothing about it.
        where = "; ".join(dict.fromkeys(saved["machine"] for saved in runs
                                        if saved.get("machine"))) or None
    else:
        files = prepare(default_gguf())
        gpu, _ = gpu_records(DEFAULT_GPU_JSON, args.gpu_limit)
        gpu = [r for r in gpu if r.length in HONEST]
        all_results = {d: asyncio.run(run_dtype(files, d, scale, gpu, args.device))
                       for d in args.dtypes.split(",")}
        seconds = time.monotonic() - started
        where = host(args.device)
        args.save_results.write_text(json.dumps({
            "results": {d: [dataclasses.asdict(r) for r in rs] for d, rs in all_results.items()},
            "seconds": seconds, "argv": argv, "machine": where}))
        command = f"`python -m bench.detection.dtypes {' '.join(argv)}` ({seconds / 60:.0f} min)"
    rng = random.Random(args.seed)
    found = [evidence(rs, d, rng, epochs or HONEST_EPOCHS, epochs or CHEAT_EPOCHS)
             for d, rs in all_results.items()]
    print(markdown(all_results, found, command, where))


if __name__ == "__main__":
    main()
