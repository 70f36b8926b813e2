"""Validation work per inference against the network's size: checks per inference and
validation compute over inference compute, at executor reputation 0, 0.5 and 1, for networks
of 4, 16 and 64 members.

The checks come from the chain itself. For each (members, reputation) an honest network of
equal members, each starting at that reputation, runs one epoch on the chain's own handlers
and block steps in process (bench/economics/simulation.py: real signed transactions, seed
commitments, reports, reveals, judging and settlement), every member reporting on exactly the
inferences its secret seed assigns it (chain/validation/sampling.py). Over the epoch's
inferences (canary twins left out) the table counts the reports per inference, the share
checked by anyone, and the expectation ``Σ q_V`` from the chain's own thresholds. The run
also requires that the chain's judgement finds every member's record complete (each check its
seed assigned was done) and that a second node replaying the blocks reaches the same app hash.

The compute: a re-score is one prefill of prompt + output. Its cost relative to generating the
output is measured in this run on real inferences of the default model with the torch engine
(``--inferences`` of ``--tokens`` each: real scoring, sampled, not simulated); validation
compute / inference compute = the expected checks per inference × that ratio.

The baseline, from the same run: the rule without a cap on the checks, where each other member
checks with probability ``1 − (1 − p)^(w/W)``, so a newcomer's inference is re-scored by every
one of the N − 1 others; its expected checks at the same p, and ours over it.

Run ``python bench/verification_overhead.py --help``.
"""

import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import transformers
from report import bench_parser, parse_bench_args, progress, publish, section, table

from bench.economics.simulation import Play, Setup, Simulation
from chain.inference.params import InferenceParams
from chain.scales import PPM
from chain.validation.sampling import TICKET_SPACE, threshold
from inferchain_pb.inference.v1 import query_pb2 as q
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare
from mlnode.sampling import SamplingParams
from mlnode.torch_engine import TorchEngine
from mlnode.types import Finished

ARTIFACT_TOP = InferenceParams().top_k
PROMPTS = ("Describe a walk through a market.", "Explain how a bicycle works.",
           "Write a short story about a fox.", "Give advice for a first garden.",
           "Describe the sea at night.", "Tell me about bread.")
REPUTATIONS = (0, PPM // 2, PPM)


@dataclass(frozen=True)
class Assignment:
    """What one honest epoch on the chain assigned and did."""

    members: int
    reputation_ppm: int
    p_ppm: int
    inferences: int
    reports: int
    checked: int
    expected: float  # Σ q_V over the inferences, from the chain's thresholds
    uncapped: float  # the same inferences' expected checks without the cap

    @property
    def per_inference(self) -> float:
        return self.reports / self.inferences


def run_epoch(members: int, reputation_ppm: int, blocks: int, per_block: int) -> Assignment:
    """One epoch of honest members on the chain; raises if any node or record disagrees."""
    simulation = Simulation(Setup(members=members, epochs=1, epoch_length=blocks,
                                  inferences_per_block=per_block,
                                  reputation_ppm=reputation_ppm), Play())
    simulation.run()
    net = simulation.net
    found = net.query("Epoch", q.QueryEpochRequest(epoch=0)).members
    weights = {m.address: m.weight for m in found.members}
    reports = checked = 0
    expected = uncapped = 0.0
    p_values = set()
    for inference_id in simulation.ours:
        task = net.query("ValidationTask", q.QueryValidationTaskRequest(
            inference_id=inference_id)).task
        p_values.add(task.p_ppm)
        reports += len(task.reports)
        checked += bool(task.reports)
        others = found.total_weight - weights.get(task.executor, 0)
        shares = [w / others for a, w in weights.items() if a != task.executor]
        expected += sum(threshold(task.expected_checks_ppm, w, others)
                        for a, w in weights.items() if a != task.executor) / TICKET_SPACE
        uncapped += sum(1 - (1 - task.p_ppm / PPM) ** share for share in shares)
    for member in simulation.parts:
        record = net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
            address=member.address, epoch=0)).record
        if not record.settled or record.lazy or record.required != record.done:
            raise AssertionError(f"{members} members: the chain judged {member.address} "
                                 f"otherwise than its seed: {record}")
    net.replica()  # a second node replaying every block reaches the same app hash
    p_ppm, = p_values
    return Assignment(members, reputation_ppm, p_ppm, len(simulation.ours), reports, checked,
                      expected, uncapped)


@dataclass
class Run:
    prompt: list[int]
    output: list[int]
    sampling: SamplingParams
    seconds: float


async def score_over_generate(inferences: int, tokens: int) -> tuple[float, float, float]:
    """Re-score time over generation time on real inferences of the default model: the
    ratio, and the seconds of each summed."""
    engine = TorchEngine.from_files(prepare(default_gguf()), model_id=DEFAULT_MODEL_ID)
    try:
        runs = []
        for i in range(inferences):
            text = PROMPTS[i % len(PROMPTS)]
            prompt = engine.tokenizer.tokenize(engine.tokenizer.render_chat([("user", text)]))
            sampling = SamplingParams(temperature=0.7, max_tokens=tokens, seed=7 + i)
            start = time.perf_counter()
            output = [e.token_id async for e in engine.generate(prompt, sampling, ARTIFACT_TOP)
                      if not isinstance(e, Finished)]
            runs.append(Run(prompt, output, sampling, time.perf_counter() - start))
        scores = []
        for run in runs:
            start = time.perf_counter()
            await engine.score(run.prompt, run.output, engine.info.max_top_logprobs,
                               run.sampling)
            scores.append(time.perf_counter() - start)
        generated = sum(r.seconds for r in runs)
        return statistics.mean(scores) / statistics.mean(r.seconds for r in runs), \
            sum(scores), generated
    finally:
        engine.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--members", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--epoch-blocks", type=int, default=60,
                        help="blocks in each simulated epoch (inferences in all but 11)")
    parser.add_argument("--per-block", type=int, default=20,
                        help="inferences per block in each simulated epoch")
    parser.add_argument("--inferences", type=int, default=24,
                        help="real inferences for the score / generate ratio")
    parser.add_argument("--tokens", type=int, default=32)
    args = parse_bench_args(parser, "4 and 16 members, epochs of 20 blocks with 4 "
                                    "inferences a block, 6 real inferences of 16 tokens", argv)
    if args.quick:
        args.members, args.epoch_blocks, args.per_block = [4, 16], 20, 4
        args.inferences, args.tokens = 6, 16
    transformers.logging.set_verbosity_error()
    load = os.getloadavg()[0]
    progress(f"scoring and generating {args.inferences} real inferences")
    ratio, scored_s, generated_s = asyncio.run(score_over_generate(args.inferences,
                                                                   args.tokens))
    rows = []
    for members in args.members:
        for reputation in REPUTATIONS:
            progress(f"{members} members at reputation {reputation / PPM:.1f}: one epoch")
            started = time.perf_counter()
            a = run_epoch(members, reputation, args.epoch_blocks, args.per_block)
            rows.append([str(members), f"{reputation / PPM:.1f}", f"{a.p_ppm / PPM:.3f}",
                         str(a.inferences), f"{a.per_inference:.3f}",
                         f"{a.expected / a.inferences:.3f}",
                         f"{a.checked / a.inferences:.1%}",
                         f"{a.uncapped / a.inferences:.3f}",
                         f"{a.expected / a.uncapped:.2f}×",
                         f"{a.expected / a.inferences * ratio:.4f}×",
                         f"{time.perf_counter() - started:.0f} s"])
    publish([
        f"- CPU: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; load "
        f"{load:.2f} before, {os.getloadavg()[0]:.2f} after",
        f"- score / generate: {ratio:.3f}× ({scored_s:.1f} s scoring, {generated_s:.1f} s "
        f"generating {args.inferences} real inferences of up to {args.tokens} tokens at "
        f"temperature 0.7); torch {torch.__version__}, transformers {transformers.__version__}",
        f"- chain: one epoch of {args.epoch_blocks} blocks per row, {args.per_block} "
        "inferences a block, equal members; every member's record judged complete and a "
        "replica's app hash equal", "",
        *section("Checks per inference and validation compute", table(
            ["members", "reputation", "p", "inferences", "checks per inference",
             "expected", "checked by anyone", "uncapped rule", "ours / uncapped",
             "validation / inference compute", "chain run"], rows, text_columns=0),
            "checks per inference: reports the members made, as their seeds assigned; "
            "expected: Σ q_V from the chain's thresholds; uncapped rule: the expected checks "
            "if each other member checked with probability 1 − (1 − p)^(w/W); validation / "
            "inference compute = expected checks per inference × score / generate."),
    ], args.out)


if __name__ == "__main__":
    main()
