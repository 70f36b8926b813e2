"""Network-wide verification overhead: validation compute over inference compute, at
reputation 0 and at full reputation.

A network of ``--members`` equal-weight participants, each with a secret seed, serves
``--inferences`` real generations of the default model (temperature 0.7, ``--tokens`` each).
For every inference the real sampling rule (chain/validation/sampling.py) decides which
members must check it, at the executor's reputation, and every assigned check is a real
Score of that output (top-20, with the rule facts), as the validator worker runs it. The
overhead is the summed scoring time over the summed generation time, measured in this run.

At full reputation a check is rare (p = 1%), so the decisions are also drawn for
``--decisions`` further inference ids (the rule needs no compute) and the overhead is given as
observed checks per inference × the measured score/generate time ratio.

Run ``python bench/verification_overhead.py --help``.
"""

import asyncio
import os
import secrets
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import transformers
from report import bench_parser, parse_bench_args, progress, publish, section, table

from chain.inference.params import InferenceParams
from chain.scales import PPM
from chain.validation.params import ValidationParams
from chain.validation.sampling import check_probability_ppm, must_check
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare
from mlnode.sampling import SamplingParams
from mlnode.torch_engine import TorchEngine
from mlnode.types import Finished

P_MIN_PPM, P_MAX_PPM = ValidationParams().p_min_ppm, ValidationParams().p_max_ppm
WEIGHT = 100
ARTIFACT_TOP = InferenceParams().top_k
PROMPTS = ("Describe a walk through a market.", "Explain how a bicycle works.",
           "Write a short story about a fox.", "Give advice for a first garden.",
           "Describe the sea at night.", "Tell me about bread.")


@dataclass
class Run:
    """One inference: its generation seconds and its output, to score when assigned."""

    inference_id: str
    executor: int
    prompt: list[int]
    output: list[int]
    sampling: SamplingParams
    seconds: float


def assigned(seeds: Sequence[bytes], inference_id: str, executor: int, reputation: int
             ) -> list[int]:
    """Members (by index) whose seed assigns them this inference."""
    p_ppm = check_probability_ppm(reputation, P_MIN_PPM, P_MAX_PPM)
    others = WEIGHT * (len(seeds) - 1)
    return [m for m, seed in enumerate(seeds)
            if m != executor and must_check(seed, inference_id, p_ppm, WEIGHT, others)]


async def generate(engine: TorchEngine, runs_wanted: int, tokens: int, members: int
                   ) -> list[Run]:
    runs = []
    for i in range(runs_wanted):
        text = PROMPTS[i % len(PROMPTS)]
        prompt = engine.tokenizer.tokenize(engine.tokenizer.render_chat([("user", text)]))
        sampling = SamplingParams(temperature=0.7, max_tokens=tokens, seed=7 + i)
        start = time.perf_counter()
        output = [e.token_id async for e in engine.generate(prompt, sampling, ARTIFACT_TOP)
                  if not isinstance(e, Finished)]
        runs.append(Run(f"inf-{i}", i % members, prompt, output, sampling,
                        time.perf_counter() - start))
    return runs


async def score_seconds(engine: TorchEngine, run: Run) -> float:
    start = time.perf_counter()
    await engine.score(run.prompt, run.output, engine.info.max_top_logprobs, run.sampling)
    return time.perf_counter() - start


async def measure(args) -> list[list[str]]:
    engine = TorchEngine.from_files(prepare(default_gguf()), model_id=DEFAULT_MODEL_ID)
    try:
        progress(f"generating {args.inferences} inferences of {args.tokens} tokens")
        runs = await generate(engine, args.inferences, args.tokens, args.members)
        seeds = [secrets.token_bytes(32) for _ in range(args.members)]
        generate_s = sum(r.seconds for r in runs)
        rows = []
        for label, reputation in (("0 (newcomer)", 0), (f"{PPM:,} (full)", PPM)):
            progress(f"reputation {reputation}: deciding and scoring the assigned checks")
            score_s, checks = 0.0, 0
            for run in runs:
                for _ in assigned(seeds, run.inference_id, run.executor, reputation):
                    score_s += await score_seconds(engine, run)
                    checks += 1
            extra = sum(len(assigned(seeds, f"more-{j}", j % args.members, reputation))
                        for j in range(args.decisions))
            per_inference = (checks + extra) / (len(runs) + args.decisions)
            if checks:
                ratio = score_s / checks / (generate_s / len(runs))
            else:  # no assigned check among the real runs: time one score per run instead
                ratio = statistics.mean([await score_seconds(engine, r) for r in runs]) / (
                    generate_s / len(runs))
            rows.append([label,
                         f"{check_probability_ppm(reputation, P_MIN_PPM, P_MAX_PPM) / PPM:.2f}",
                         f"{per_inference:.4f}", f"{ratio:.3f}×",
                         f"{per_inference * ratio:.4f}×",
                         f"{score_s:.1f} s scoring / {generate_s:.1f} s generating"])
        return rows
    finally:
        engine.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--inferences", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parse_bench_args(parser, "6 inferences of 16 tokens", argv)
    if args.quick:
        args.inferences, args.tokens = 6, 16
    transformers.logging.set_verbosity_error()
    load = os.getloadavg()[0]
    rows = asyncio.run(measure(args))
    publish([
        f"- CPU: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; load "
        f"{load:.2f} before, {os.getloadavg()[0]:.2f} after",
        f"- {args.members} members of equal weight, {args.inferences} real inferences of up "
        f"to {args.tokens} tokens at temperature 0.7, {args.decisions} further decisions",
        f"- torch {torch.__version__}, transformers {transformers.__version__}", "",
        *section("Verification overhead", table(
            ["executor reputation", "p", "checks per inference", "score / generate",
             "overhead", "measured"], rows, text_columns=1),
            "overhead = checks per inference × score time / generation time, both from this "
            "run; at p = 1 every other member checks, so it grows with the members."),
    ], args.out)


if __name__ == "__main__":
    main()
