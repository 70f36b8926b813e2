"""Cross-engine calibration: ``python -m bench.detection.cross_engine [--quick]``.

Participants run vLLM; a validator may run either engine. This measures whether the chain's
verdict rule (the genesis model's distance threshold D, and the validation params Tg, Ts, V,
P; docs/verification.md) lets every honest executor on one engine pass a validator on the
other: honest vLLM executors (fp32 and bf16) judged by the torch fp32 validator, honest torch
executors (fp32 and bf16) judged by the vLLM fp32 validator, beside the baseline the rule was
calibrated on, torch executors judged by the torch validator, measured in the same run (and
vLLM's fp32 executor judged by its own validator).

vLLM lives in its own environment (``make vllm``), so this process (the project's) runs the
torch side and starts ``.venv-vllm/bin/python -m bench.detection.cross_engine vllm-side`` for
the other: it generates the vLLM records and scores the torch records handed to it, and
writes both back as JSON. The table goes to stdout; ``--out`` also writes it as markdown.
"""

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.detection.validate import Result, check_all
from bench.detection.workload import Record, generate_all, make_cases, progress
from chain.inference.model import DEFAULT_RULES, RULE_FIELDS
from chain.scales import PPM
from mlnode.engine import Engine
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare

ROOT = Path(__file__).resolve().parent.parent.parent
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
COUNTS = {8: 24, 32: 12, 128: 4}  # pairs per max_tokens, per executor
QUICK_COUNTS = {8: 6, 32: 3}
CONCURRENCY = 8


def scaled(counts: dict[int, int]) -> str:
    return ",".join(f"{length}:{n}" for length, n in counts.items())


def parse_counts(text: str) -> dict[int, int]:
    return {int(k): int(v) for k, v in (part.split(":") for part in text.split(","))}


async def honest_records(engine: Engine, name: str, counts: dict[int, int],
                         rates: dict[str, float]) -> list[Record]:
    """Honest records of ``engine`` (scenario ``honest-NAME``), 8 generations in flight;
    ``rates[NAME]`` gets the output tokens per second it sustained."""
    records: list[Record] = []
    started = time.perf_counter()
    for length, n in counts.items():
        records += await generate_all(engine, make_cases(n, length, f"cross-{name}"),
                                      f"honest-{name}", CONCURRENCY)
    rates[name] = sum(len(r.output_ids) for r in records) / (time.perf_counter() - started)
    return records


async def judge_and_generate(make_engine: Callable[[str], Engine], name: str,
                             counts: dict[int, int], others: Sequence[Record],
                             rates: dict[str, float]) -> tuple[list[Record], list[Result]]:
    """``name``'s honest fp32 and bf16 records, and its fp32 engine's verdicts on ``others``
    (the fp32 engine is the validator, as on the chain)."""
    records: list[Record] = []
    engine = make_engine("float32")
    try:
        records += await honest_records(engine, f"{name}-fp32", counts, rates)
        results = await check_all(engine, [*records, *others])
    finally:
        engine.close()
    engine = make_engine("bfloat16")
    try:
        records += await honest_records(engine, f"{name}-bf16", counts, rates)
    finally:
        engine.close()
    return records, results


def vllm_side(records_in: Path, counts: dict[int, int], out: Path) -> None:
    """In the vLLM environment: the vLLM records, and the vLLM validator's results on the
    torch records."""
    from mlnode.vllm_engine import VllmEngine

    files = prepare(default_gguf())

    def make(dtype: str) -> VllmEngine:
        return VllmEngine.from_files(files, model_id=DEFAULT_MODEL_ID, dtype=dtype,
                                     device="cpu", max_batch=CONCURRENCY)

    torch_records = [Record.from_json(r) for r in json.loads(records_in.read_text())]
    rates: dict[str, float] = {}
    records, results = asyncio.run(judge_and_generate(make, "vllm", counts, torch_records,
                                                      rates))
    out.write_text(json.dumps({"records": [r.to_json() for r in records],
                               "results": [r.__dict__ for r in results], "rates": rates}))


def chain_rule() -> tuple[float, float, float, int, int]:
    """(D, Tg, Ts, V, P) as the chain holds them by default (the default genesis's model).
    Imported here: genesis needs cosmpy, which the vLLM environment does not have."""
    from genesis.cli import DEFAULT_TEMPLATE
    from genesis.template import load_template

    model = load_template(DEFAULT_TEMPLATE).models[0]
    defaults = dict(zip(RULE_FIELDS, DEFAULT_RULES[model["serving_dtype"]], strict=True))
    rule = {name: int(model.get(name, default)) for name, default in defaults.items()}
    return (float(model["validation_threshold"]), rule["greedy_tolerance_micro"] / PPM,
            rule["rule_tolerance_micro"] / PPM, rule["max_rule_violations"],
            rule["rule_violations_per_1024"])


def table(rows: Sequence[tuple[str, str, list[Result]]], baseline: list[Result]) -> str:
    """One row per (executor, validator, max_tokens): pairs, ids matching, the largest
    distance and its ratio to the same-engine baseline's, the most violations counted at the
    chain's tolerances, and pairs the chain's rule fails (honest: must be 0)."""
    d, tg, ts, v, p = chain_rule()
    base = max(r.distance for r in baseline)
    lines = [f"Chain rule: D = {d:g} nats, Tg = {tg:g} nats, Ts = {ts:g}, V = {v}, P = {p}",
             "",
             "| executor | validator | max_tokens | pairs | ids match | max distance | "
             "vs torch→torch | max violations | fail |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for executor, validator, results in rows:
        for length in sorted({r.length for r in results}):
            group = [r for r in results if r.length == length]
            far = max(r.distance for r in group)
            lines.append(
                f"| {executor} | {validator} | {length} | {len(group)} | "
                f"{sum(r.ids_match for r in group)} | {far:.4f} | {far / base:.2f}× | "
                f"{max(r.counted(tg, ts) for r in group)} | "
                f"{sum(r.fails(d, tg, ts, v, p) for r in group)} |")
    return "\n".join(lines)


def throughput(rates: dict[str, float]) -> str:
    """Output tokens per second of each honest executor at 8 concurrent, against torch fp32
    in the same run (one OpenMP thread each)."""
    base = rates["torch-fp32"]
    lines = ["| executor | tok/s (8 concurrent) | vs torch fp32 |", "|---|---:|---:|"]
    lines += [f"| {name} | {rate:.1f} | {rate / base:.2f}× |" for name, rate in rates.items()]
    return "\n".join(lines)


async def torch_side(counts: dict[int, int], vllm_json: Path, torch_json: Path,
                     rates: dict[str, float]) -> list[tuple[str, str, list[Result]]]:
    import torch

    from mlnode.torch_engine import TorchEngine

    torch.set_num_threads(1)  # as the vLLM engine on CPU: the two compare thread for thread
    files = prepare(default_gguf())

    def make(dtype: str) -> TorchEngine:
        return TorchEngine.from_files(files, model_id=DEFAULT_MODEL_ID, dtype=dtype,
                                      max_batch=CONCURRENCY)

    records, by_torch = await judge_and_generate(make, "torch", counts, [], rates)
    torch_json.write_text(json.dumps([r.to_json() for r in records]))
    progress(f"vLLM side: {VLLM_PYTHON} -m bench.detection.cross_engine vllm-side")
    subprocess.run([str(VLLM_PYTHON), "-m", "bench.detection.cross_engine", "vllm-side",
                    "--records", str(torch_json), "--counts", scaled(counts),
                    "--out", str(vllm_json)], cwd=ROOT, check=True)
    data = json.loads(vllm_json.read_text())
    vllm_records = [Record.from_json(r) for r in data["records"]]
    by_vllm = [Result(**r) for r in data["results"]]
    rates.update(data["rates"])
    validator = make("float32")
    try:
        by_torch += await check_all(validator, [r for r in records if "bf16" in r.scenario])
        of_vllm = await check_all(validator, vllm_records)
    finally:
        validator.close()
    rows = []
    for short in DTYPES:
        rows.append((f"torch {short}", "torch fp32",
                     [r for r in by_torch if r.scenario == f"honest-torch-{short}"]))
    for short in DTYPES:
        rows.append((f"vLLM {short}", "torch fp32",
                     [r for r in of_vllm if r.scenario == f"honest-vllm-{short}"]))
    for short in DTYPES:
        rows.append((f"torch {short}", "vLLM fp32",
                     [r for r in by_vllm if r.scenario == f"honest-torch-{short}"]))
    rows.append(("vLLM fp32", "vLLM fp32",
                 [r for r in by_vllm if r.scenario == "honest-vllm-fp32"]))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.detection.cross_engine",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("side", nargs="?", choices=["vllm-side"],
                        help="(internal) the vLLM environment's half")
    parser.add_argument("--quick", action="store_true", help="a few pairs per length")
    parser.add_argument("--counts", default=None, help="pairs per max_tokens, e.g. 8:24,32:12")
    parser.add_argument("--records", type=Path, help="(vllm-side) the torch records")
    parser.add_argument("--out", type=Path, help="markdown file for the table "
                        "(vllm-side: the JSON it writes back)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    counts = parse_counts(args.counts) if args.counts else (
        QUICK_COUNTS if args.quick else COUNTS)
    if args.side == "vllm-side":
        vllm_side(args.records, counts, args.out)
        return
    if not VLLM_PYTHON.exists():
        raise SystemExit(f"{VLLM_PYTHON} is missing: install it with `make vllm`")
    started = time.monotonic()
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(torch_side(counts, Path(tmp) / "vllm.json",
                                      Path(tmp) / "torch.json", rates))
    text = table(rows, rows[0][2]) + "\n\n" + throughput(rates)
    honest_fails = sum(r.fails(*chain_rule()) for _, _, results in rows for r in results)
    summary = (f"{sum(len(r) for _, _, r in rows)} honest pairs, {honest_fails} failed by the "
               f"chain's rule, in {time.monotonic() - started:.0f} s")
    print(text)
    print(summary)
    if args.out:
        command = "python -m bench.detection.cross_engine " + " ".join(argv)
        args.out.write_text(f"# Cross-engine calibration (CPU)\n\n`{command}`\n\n{text}\n\n"
                            f"{summary}.\n")
    if honest_fails:
        raise SystemExit("an honest executor failed across engines")


if __name__ == "__main__":
    main()
