"""Calibration of the validator's thresholds: ``python -m bench.detection [--quick]``.

A validator re-scores an executor's output in one fp32 prefill and fails it when the ids do
not match, when the mean logprob distance exceeds D, or when more than V + P × positions //
1024 positions break the seeded sampling rule (docs/design.md §6.3), counted at tolerance Tg
(argmax gap, nats) for a greedy inference and Ts (CDF interval, probability) for a sampled
one. D, Tg, Ts, V and P must let every honest executor pass (fp32, bf16 or fp16, CPU or GPU,
any batch) and catch as many cheats as possible, so they are measured, not guessed: this runs
real inferences with the default model (SmolLM2-135M) in-process, honest and cheating, scores
every one with an honest fp32 CPU validator, computes the Figures the chain uses, chooses D,
Tg, Ts, V and P (``report.choose``), prints the tables and writes the "## Calibration" section
of docs/verification.md. ``--from-results`` rebuilds all of it from the saved per-pair
figures, to change the rule or the report without rerunning the models.

GPU executors cannot run here; their records are produced on the device host by
``bench.detection.gpu_dump`` and read from ``--gpu-json`` (the H200 run is bundled).
"""

import argparse
import asyncio
import dataclasses
import gzip
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch
import transformers

from bench.detection import report, tamper
from bench.detection.validate import TOLERANCES, Result, check_all
from bench.detection.workload import Record, generate_all, make_cases, progress
from mlnode.chat_tokenizer import ChatTokenizer
from mlnode.cheats import ForgedEngine, cheating_engine, fake_int8, load_model
from mlnode.model_store import DEFAULT_MODEL_ID, ModelFiles, default_gguf, prepare
from mlnode.torch_engine import TorchEngine

HERE = Path(__file__).parent
DEFAULT_GPU_JSON = HERE / "gpu-h200.json.gz"
DOC = Path("docs/verification.md")
LENGTHS = (8, 32, 128)
# Pairs per max_tokens at --scale 1: most honest pairs are short so the run fits two cores.
HONEST_BASE = {8: 200, 32: 40, 128: 16}  # fp32, 8 concurrent; also the source of edits
HONEST_OTHER = {8: 120, 32: 30, 128: 10}  # bf16 and fp16 CPU executors
HONEST_SERIAL = {8: 60, 32: 10, 128: 4}  # fp32, one generation at a time
CHEATS = {8: 30, 32: 15, 128: 6}  # per cheat scenario


def scaled(counts: dict[int, int], scale: float) -> dict[int, int]:
    return {length: max(1, round(n * scale)) for length, n in counts.items()
            if length in LENGTHS}


async def cpu_records(files: ModelFiles, validator: TorchEngine, scale: float,
                      rng: random.Random) -> list[Record]:
    """Honest CPU executors, then every cheat, all generated here."""
    records: list[Record] = []
    base: list[Record] = []
    for length, n in scaled(HONEST_BASE, scale).items():
        base += await generate_all(validator, make_cases(n, length, "base"),
                                   "honest-cpu-fp32-c8", 8)
    records += base
    for length, n in scaled(HONEST_SERIAL, scale).items():
        records += await generate_all(validator, make_cases(n, length, "serial"),
                                      "honest-cpu-fp32-c1", 1)
    for dtype, name in (("bfloat16", "bf16"), ("float16", "fp16")):
        engine = TorchEngine.from_files(files, model_id=DEFAULT_MODEL_ID, dtype=dtype)
        for length, n in scaled(HONEST_OTHER, scale).items():
            records += await generate_all(engine, make_cases(n, length, name),
                                          f"honest-cpu-{name}-c8", 8)
        engine.close()

    cheats = scaled(CHEATS, scale)
    for cheat in ("int8", "skip-layers", "forge-prefill"):
        engine = cheating_engine(cheat, files, model_id=DEFAULT_MODEL_ID)
        for length, n in cheats.items():
            records += await generate_all(engine, make_cases(n, length, cheat), cheat, 8)
        engine.close()
    # The subtle forgery: tokens from the int8 model (close to the real one), logprobs from
    # the real model. Its real half is the validator's engine, which must stay open.
    cheap = TorchEngine(fake_int8(load_model(files, "float32", "cpu")),
                        ChatTokenizer.from_folder(files.path), model_id=DEFAULT_MODEL_ID,
                        weights_sha256=files.weights_sha256)
    forged = ForgedEngine(cheap, validator)
    for length, n in cheats.items():
        records += await generate_all(forged, make_cases(n, length, "forge-int8"),
                                      "forge-prefill-int8", 8)
    cheap.close()
    for length, n in cheats.items():
        hot = await generate_all(validator, make_cases(n, length, "hot", (1.0,)), "hot", 8)
        records += [tamper.recorded_as(r, "temperature-1.0-recorded-0.7", temperature=0.7)
                    for r in hot]

    def pick(length: int, min_len: int = 1, sampled: bool = False) -> list[Record]:
        pool = [r for r in base if r.length == length and len(r.output_ids) >= min_len
                and (r.sampling.temperature > 0 or not sampled)]
        return rng.sample(pool, min(cheats[length], len(pool)))

    for length in cheats:
        records += [tamper.recorded_as(r, "wrong-seed", seed=r.sampling.seed + 1)
                    for r in pick(length, sampled=True)]
        records += [await tamper.edit_tokens(r, validator, rng) for r in pick(length, 3)]
        records += [tamper.truncate(r, rng) for r in pick(length, 2)]
        records += [tamper.fabricate_logprobs(r, rng, validator.info.vocab_size)
                    for r in pick(length)]
    return records


def gpu_records(path: Path, limit: int | None) -> tuple[list[Record], dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        data = json.load(f)
    records = [Record.from_json(r) for r in data["records"]]
    if limit is not None:
        kept: dict[tuple[str, int], list[Record]] = defaultdict(list)
        for r in records:
            if len(kept[(r.scenario, r.length)]) < limit:
                kept[(r.scenario, r.length)].append(r)
        records = [r for group in kept.values() for r in group]
    records = [r for r in records if r.length in LENGTHS]
    return records, data["meta"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch threads: {torch.get_num_threads()}, "
            f"torch {torch.__version__}, transformers {transformers.__version__}, "
            f"Python {platform.python_version()}")


def order(results: Sequence[Result]) -> list[Result]:
    """Honest scenarios first, then cheats, each by length, in the order they were run."""
    first: dict[str, int] = {}
    for r in results:
        first.setdefault(r.scenario, len(first))
    return sorted(results, key=lambda r: (not report.is_honest(r.scenario), first[r.scenario],
                                          r.length))


def explain(results: Sequence[Result], rule: report.Rule) -> str:
    """The reasoning behind D, Tg, Ts, V and P, with the numbers that drove them."""
    honest = [r for r in results if report.is_honest(r.scenario)]
    tg, ts, p = rule.greedy_tolerance, rule.sampled_tolerance, rule.per_1024
    far = max((r for r in honest if r.ids_match), key=lambda r: r.distance)
    worst = max(honest, key=lambda r: (r.excess(tg, ts, p), r.positions))
    greedy = max((r.counted(tg, ts) for r in honest if r.temperature == 0), default=0)
    sampled = max((r.counted(tg, ts) for r in honest if r.temperature != 0), default=0)
    exact = max(r.violations[TOLERANCES.index(1e-4)] for r in honest
                if "bf16" in r.scenario or "bfloat16" in r.scenario)
    single = min((c for c in report.search(results)
                  if c.greedy_tolerance == c.sampled_tolerance and c.per_1024 == 0),
                 key=report.rank)
    cheats = [r for r in results if not report.is_honest(r.scenario)]
    missed = []
    for (scenario, length), group in report.groups(results).items():
        if report.is_honest(scenario):
            continue
        fails = sum(map(rule.fails, group))
        if fails < len(group):
            missed.append(f"{scenario} at {length} tokens ({fails}/{len(group)})")
    return "\n".join([
        f"- **D = {rule.distance:g} nats**: {report.D_MARGIN}× the largest honest distance, "
        f"{far.distance:.4f} ({far.scenario}, max_tokens {far.length}), rounded up. Distance "
        "only has to separate honest rounding (bf16/fp16 logits, quantization to 1/1024 nat) "
        "from a different model or invented logprobs; tokens are judged by the rule.",
        f"- **Tg = {tg:g} nats, Ts = {ts:g}, V = {rule.allowed}, P = {p}**: greedy "
        "inferences are judged by the argmax gap (nats), sampled ones by the CDF interval "
        "(probability), so each gets its own tolerance; Tg and Ts were searched over "
        f"{', '.join(f'{t:g}' for t in TOLERANCES)} and P over "
        f"{', '.join(map(str, report.PER_1024))}. For each combination V is the smallest "
        "count that no honest inference exceeds on top of its length allowance P × positions "
        f"// 1024, plus {report.V_MARGIN}, so no honest pair fails under any of them; the "
        "combination kept detects the most (mean over the cheat rows), ties going to the "
        "larger Tg, then the larger Ts, then the smaller P. Under it the worst honest "
        f"inference had {worst.counted(tg, ts)} violation(s) in {worst.positions} positions "
        f"({worst.scenario}, max_tokens {worst.length}, temperature {worst.temperature:g}); "
        f"honest greedy inferences had at most {greedy} argmax gap(s) beyond {tg:g} nats, "
        f"sampled ones at most {sampled} CDF miss(es) beyond {ts:g}.",
        f"- Half-precision executors are what sets the tolerances: honest bf16 had up to "
        f"{exact} violations in one inference at the old default T = 1e-4, because the CDF "
        "in token-id order accumulates the logits' rounding; the per-tolerance table shows "
        "how that falls with the tolerance, and that greedy near-ties need a wider one than "
        "sampled positions.",
        f"- Against one tolerance for both and a fixed V (the previous rule's form), the best "
        f"such rule here is T = {single.greedy_tolerance:g}, V = {single.allowed}: "
        f"{sum(map(single.fails, cheats))} of {len(cheats)} cheat pairs "
        f"({100 * single.detection:.1f}%), against {sum(map(rule.fails, cheats))} "
        f"({100 * rule.detection:.1f}%) now.",
        "- Not fully detected under this rule: " + ("; ".join(missed) or "none") + ".",
        f"- Limits: {_weak_spots(results, rule)}",
    ])


def _weak_spots(results: Sequence[Result], rule: report.Rule) -> str:
    """What the data says no choice of thresholds in this rule can do."""
    def top(scenarios: tuple[str, ...], fn: object) -> float:
        values = [r.distance for r in results if r.scenario in scenarios and r.ids_match]
        return fn(values) if values else 0.0  # type: ignore[operator]

    def caught(scenario: str, length: int) -> str:
        group = [r for r in results if r.scenario == scenario and r.length == length]
        return f"{sum(map(rule.fails, group))}/{len(group)}" if group else "-"

    half = ("honest-cpu-bf16-c8", "honest-gpu-bfloat16")
    int8 = ("int8",)
    short = min(LENGTHS)
    return (f"int8 weights move logprobs about as much as bf16 arithmetic (int8 distance "
            f"median {top(int8, statistics.median):.3f}, max {top(int8, max):.3f} nats; honest "
            f"bf16 median {top(half, statistics.median):.3f}, max {top(half, max):.3f}), so a D "
            "that admits bf16 executors admits int8 ones, and an int8 model's tokens rarely "
            "break the rule: int8 and the int8 forgery pass. Short subtle cheats stay partly "
            f"hidden: at {short} tokens wrong-seed {caught('wrong-seed', short)}, token-edit "
            f"{caught('token-edit', short)}, temperature-1.0-recorded-0.7 "
            f"{caught('temperature-1.0-recorded-0.7', short)} caught, since V = {rule.allowed} "
            "violations must be forgiven in any inference for honest bf16's near-ties, and "
            f"forgeries of {short} tokens often break the rule no more than that.")


def markdown(results: Sequence[Result], rule: report.Rule, command: str,
             gpu_meta: dict | None, host: str) -> str:
    """The Calibration section. ``command`` (with its duration) and ``host`` describe the run
    that produced the figures (with a note when the report was rebuilt from saved figures)."""
    honest = sorted({r.scenario for r in results if report.is_honest(r.scenario)})
    half = [s for s in honest if any(x in s for x in ("bf16", "fp16", "bfloat16", "float16"))]
    n_honest = sum(report.is_honest(r.scenario) for r in results)
    gpu = ("none" if gpu_meta is None else
           f"{gpu_meta['device']} (torch {gpu_meta['torch']}), records made by "
           f"`{gpu_meta['command']}` and scored here")
    return f"""## Calibration

How the validator's thresholds were chosen (docs/design.md §6.3). Every row below is real
inferences of the default model (SmolLM2-135M-Instruct, GGUF Q4_1 dequantized) run
in-process, each scored by an honest fp32 CPU validator (`TorchEngine.score`, top 20, with the
recorded sampling) and judged with `apinode/validation/figures.py` (`ended_properly`,
`measure`). Executor artifacts went through `chain/inference/artifact.py` with k = 5, as on
chain. An inference fails when **its ids do not match, or distance > D, or more than
V + P × positions // 1024 positions break the seeded sampling rule**, judged at tolerance Tg
(argmax gap, nats) for a greedy inference and Ts (CDF interval, probability) for a sampled one.
The rule chosen here is the one that passes every honest executor, fp32, bf16 and fp16 alike:
the half-precision registry's. Each serving dtype's own thresholds, fp32's without that slack,
are in "Per serving dtype" and "The fp32 rule" below.

- Command: {command}
- Machine: {host}
- GPU executors: {gpu}
- Honest pairs: {n_honest}. Prompts: 24 varied chat prompts; temperatures cycle 0, 0.7, 1.0;
  seeds random; max_tokens 8, 32, 128.
- Cheats (`mlnode/cheats.py`, `bench/detection/tamper.py`): `int8` (fake int8 weights),
  `skip-layers` (every other decoder layer dropped), `forge-prefill` (skip-layers tokens,
  real model's logprobs from one prefill), `forge-prefill-int8` (the same with int8 tokens:
  the subtle forgery), `temperature-1.0-recorded-0.7`, `wrong-seed` (seed + 1 recorded),
  `token-edit` (1-2 tokens swapped for a top-5 alternative, artifact re-scored by the real
  model so its logprobs are consistent), `truncated` (cut before EOS/max_tokens, claimed as
  a stop), `fabricated-logprobs` (honest tokens, uniform-guess top-5).

### Chosen thresholds

{report.summary(results, rule)}

{explain(results, rule)}

### Results

Distance in nats; violations at Tg = {rule.greedy_tolerance:g} for greedy inferences and
Ts = {rule.sampled_tolerance:g} for sampled ones; "fail" under {rule.describe()}
(for honest rows it is the false-positive rate). Distance and violations are over pairs whose
ids match.

{report.results_table(order(results), rule)}

### Honest violations per tolerance (half precision)

Violating positions in total / the most in one inference; greedy (temperature 0) positions
are judged by the argmax gap in nats, sampled ones by the CDF interval in probability.

{report.tolerance_table(results, half)}

### Detection at other tolerances

Each cell is V (the smallest count with no honest false positive, plus {report.V_MARGIN}) / the
mean detection over the cheat rows, for each P; one tolerance varies while the other stays
as chosen; the chosen rule is in bold.

{report.alternatives(results, rule)}
"""


def write_section(path: Path, section: str) -> None:
    """Replaces the "## Calibration" section of ``path`` (or appends it), keeping the rest."""
    text = path.read_text() if path.exists() else ""
    start = text.find("## Calibration")
    if start < 0:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
        text = text.replace(section + "## ", section + "\n## ")
    path.write_text(text)


async def calibrate(args: argparse.Namespace) -> tuple[list[Result], dict | None]:
    files = prepare(default_gguf())
    validator = TorchEngine.from_files(files, model_id=DEFAULT_MODEL_ID, max_batch=8)
    rng = random.Random(args.seed)
    records = await cpu_records(files, validator, args.scale, rng)
    meta = None
    if args.gpu_json is not None:
        gpu, meta = gpu_records(args.gpu_json, args.gpu_limit)
        records += gpu
    progress(f"scoring {len(records)} records with the fp32 CPU validator")
    results = await check_all(validator, records)
    validator.close()
    return results, meta


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.detection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a couple of minutes: --scale 0.1 --gpu-limit 10 --lengths 8,32, "
                             "no doc written")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the CPU pair counts (defaults give ~650 CPU honest "
                             "pairs, 30/15/6 per cheat and length)")
    parser.add_argument("--gpu-json", type=Path, default=DEFAULT_GPU_JSON,
                        help="records from bench.detection.gpu_dump (.json or .json.gz)")
    parser.add_argument("--no-gpu", dest="gpu_json", action="store_const", const=None)
    parser.add_argument("--gpu-limit", type=int, default=None,
                        help="at most this many GPU records per scenario and length")
    parser.add_argument("--doc", type=Path, default=None,
                        help=f"where to write the Calibration section (default {DOC}; "
                             "none with --quick)")
    parser.add_argument("--lengths", default=None,
                        help="max_tokens values to run on CPU (default 8,32,128; --quick: 8,32)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine two "
                             "threads ran 10x slower than one, waiting on each other)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save-results", type=Path,
                        default=Path(tempfile.gettempdir()) / "detection-results.json",
                        help="where the per-pair figures are saved, for --from-results")
    parser.add_argument("--from-results", type=Path, default=None,
                        help="report from saved figures instead of running inferences")
    args = parser.parse_args(argv)
    if args.quick:
        args.scale = min(args.scale, 0.1)
        args.gpu_limit = args.gpu_limit or 10
        args.lengths = args.lengths or "8,32"
    global LENGTHS
    LENGTHS = tuple(int(n) for n in (args.lengths or "8,32,128").split(","))
    doc = args.doc or (None if args.quick else DOC)

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    if args.from_results is not None:
        saved = json.loads(args.from_results.read_text())
        results = [Result.from_json(r) for r in saved["results"]]
        meta, seconds = saved["gpu_meta"], saved["seconds"]
        # Files saved before the machine was recorded came from this host's full run.
        host = saved.get("machine") or machine()
        command = (f"`{' '.join(['python -m bench.detection', *saved['argv']])}` "
                   f"({seconds / 60:.0f} min). The report was rebuilt from that run's "
                   f"saved per-pair figures with "
                   f"`{' '.join(['python -m bench.detection', *argv])}` under the rule below "
                   "(Tg/Ts per decoding, V + P × positions // 1024), without rerunning the "
                   "models")
    else:
        results, meta = asyncio.run(calibrate(args))
        seconds = time.monotonic() - started
        host = machine()
        args.save_results.write_text(json.dumps({
            "results": [dataclasses.asdict(r) for r in results], "gpu_meta": meta,
            "seconds": seconds, "argv": argv, "machine": host}))
        command = f"`{' '.join(['python -m bench.detection', *argv])}` ({seconds / 60:.0f} min)"
    rule = report.choose(results)
    section = markdown(results, rule, command, meta, host)
    print(section)
    if doc is not None:
        write_section(doc, section)
        progress(f"wrote the Calibration section of {doc}")


if __name__ == "__main__":
    main()
