"""ML node benchmark: generation throughput and the cost of validating an inference.

Two figures decide whether the torch engine is fit to serve (docs/design.md §6.3, §9):

- tokens/s at 1 and at 8 concurrent requests, because continuous batching only earns its
  complexity if eight requests together run faster than one at a time;
- score time / generate time for one finished inference, because a validator re-scores
  inferences at a rate of p_min..p_max (§4), so this ratio is what checking costs relative to
  serving. It is measured with the seeded sampling-rule check (what a validator runs) and
  without it, to show what the rule check itself adds.

It drives ``TorchEngine`` in-process through its async interface, the way the gRPC service
does, and prints a markdown table. Run ``python bench/mlnode_bench.py --help``.
"""

import asyncio
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from device_clock import Clock
from report import bench_parser, parse_bench_args, progress, publish, table
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig

from chain.inference.params import InferenceParams
from mlnode.chat_tokenizer import ChatTokenizer
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare
from mlnode.rule_check import obeys_rule
from mlnode.sampling import SamplingParams
from mlnode.torch_engine import DTYPES, TorchEngine
from mlnode.types import Finished

TOP_K = InferenceParams().top_k  # the artifact's default top-k: what executor and validator compute
CONCURRENCY = 8
SEED_TRIES = 8  # generations tried per validation length before settling for a shorter one

# Open-ended asks, so that a small model at temperature 1 usually runs to max_tokens.
PROMPTS = (
    "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in great detail how a steam engine works, step by step, for a curious student.",
    "Describe a walk through a busy market in a faraway city, with every sound and smell.",
    "Write a long letter from a sailor to his family describing a year at sea.",
    "Give a thorough history of bread making, from ancient times to modern bakeries.",
    "Tell a long fairy tale about a fox, a crow and a stolen golden key.",
    "Describe, at length, how to plan and plant a vegetable garden through the seasons.",
    "Write a detailed travel diary of a train journey across a continent.",
)


@dataclass(frozen=True)
class Settings:
    """What one run measures; ``--quick`` shrinks lengths and repetitions, nothing else."""

    device: str
    dtype: str
    model: str
    lengths: tuple[int, ...]
    max_tokens: int
    repeats: int


@dataclass(frozen=True)
class Row:
    """One line of the report: the figure and what it was measured over."""

    measurement: str
    value: str
    detail: str


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, Path | None]:
    parser = bench_parser(__doc__)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument("--model", choices=("default", "llama3-8b-shape"), default="default")
    parser.add_argument("--lengths", help="validation output lengths, comma-separated "
                        "(default 32,128,512; 8,16 with --quick)")
    args = parse_bench_args(parser, "smoke run: short outputs, one repetition", argv)
    if args.model == "llama3-8b-shape" and args.device != "cuda":
        parser.error("--model llama3-8b-shape is ~7.5B random parameters and meant for the GPU "
                     "only; pass --device cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    lengths = args.lengths or ("8,16" if args.quick else "32,128,512")
    try:
        parsed = tuple(int(n) for n in lengths.split(","))
    except ValueError:
        parser.error(f"--lengths {lengths!r} is not a comma-separated list of integers")
    if any(n < 1 for n in parsed):
        parser.error("--lengths must all be at least 1")
    settings = Settings(args.device, args.dtype, args.model, parsed,
                        max_tokens=16 if args.quick else 64, repeats=1 if args.quick else 3)
    return settings, args.out


def build_engine(settings: Settings) -> TorchEngine:
    """The engine under test; the random 8B-shape model shows GPU cost at production size.

    The 8B-shape model keeps the default model's vocabulary (and its special-token ids) so
    that the same tokenizer and chat template serve it. Its weights are created directly on
    the device in the target dtype: materialising ~7.5B parameters in fp32 on the CPU first
    would take 30 GB of host memory and minutes of initialisation.
    """
    files = prepare(default_gguf())
    if settings.model == "default":
        return TorchEngine.from_files(files, model_id=DEFAULT_MODEL_ID, dtype=settings.dtype,
                                      device=settings.device)
    tokenizer = ChatTokenizer.from_folder(files.path)
    base = AutoConfig.from_pretrained(files.path)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=4096, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, intermediate_size=14336,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=base.bos_token_id, eos_token_id=base.eos_token_id,
        pad_token_id=base.pad_token_id)
    with torch.device(settings.device):
        model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[settings.dtype])
    return TorchEngine(model, tokenizer, model_id="random-llama3-8b-shape",
                       weights_sha256="random")


async def generate(engine: TorchEngine, prompt_ids: list[int], params: SamplingParams
                   ) -> list[int]:
    """Runs one request to its end, keeping top-k logprobs as an executor must."""
    output = []
    async for event in engine.generate(prompt_ids, params, TOP_K):
        if not isinstance(event, Finished):
            output.append(event.token_id)
    return output


async def wave(engine: TorchEngine, clock: Clock,
               requests: Sequence[tuple[list[int], SamplingParams]]) -> tuple[list[int], float]:
    """Submits the requests together; returns each one's token count and the total seconds."""
    start = clock.now()
    outputs = await asyncio.gather(*(generate(engine, ids, p) for ids, p in requests))
    return [len(o) for o in outputs], clock.now() - start


async def throughput(engine: TorchEngine, clock: Clock, settings: Settings) -> list[Row]:
    """Tokens/s at 1 and at 8 concurrent requests over the same eight (prompt, seed) pairs.

    One concurrent: each of the eight requests alone is one measurement. Eight concurrent:
    all eight submitted at once is one measurement, repeated. The figure is the median rate;
    the rate uses the tokens actually generated, since a request may end early at EOS.
    """
    requests = [(chat_ids(engine, text),
                 SamplingParams(max_tokens=settings.max_tokens, temperature=1.0, seed=seed))
                for seed, text in enumerate(PROMPTS, start=1)]
    rows: list[Row] = []
    rates: dict[int, float] = {}
    for concurrency, waves in ((1, [[r] for r in requests]),
                               (CONCURRENCY, [requests] * settings.repeats)):
        progress(f"generate: {len(waves)} wave(s) of {concurrency} concurrent")
        results = [await wave(engine, clock, w) for w in waves]
        rates[concurrency] = statistics.median(sum(n) / s for n, s in results)
        counts = [c for n, _ in results for c in n]
        full = sum(c == settings.max_tokens for c in counts)
        rows.append(Row(
            f"generate, {concurrency} concurrent",
            f"{rates[concurrency]:.1f} tok/s",
            f"median of {len(waves)} wave(s) of {concurrency}; {sum(counts)} tokens in "
            f"{len(counts)} requests ({full} reached max_tokens={settings.max_tokens})"))
    rows.append(Row(f"{CONCURRENCY} vs 1 concurrent", f"{rates[CONCURRENCY] / rates[1]:.2f}×",
                    "ratio of the two medians above, same run"))
    return rows


async def exact_generation(engine: TorchEngine, clock: Clock, prompt_ids: list[int], n: int
                           ) -> tuple[list[int], SamplingParams, float]:
    """A real generation of n tokens, trying seeds until one does not stop early at EOS.

    Returns the output, its params and the generation's seconds; if every seed stops early,
    the longest output, so that the report shows the length actually measured.
    """
    best: tuple[list[int], SamplingParams, float] | None = None
    for seed in range(SEED_TRIES):
        params = SamplingParams(max_tokens=n, temperature=1.0, seed=seed)
        start = clock.now()
        output = await generate(engine, prompt_ids, params)
        seconds = clock.now() - start
        if best is None or len(output) > len(best[0]):
            best = (output, params, seconds)
        if len(output) == n:
            break
    assert best is not None
    return best


async def validation_cost(engine: TorchEngine, clock: Clock, settings: Settings,
                          n: int) -> list[Row]:
    """Score time over generate time for one inference of n tokens, with and without rule.

    The generate time is the median of the accepted seed's generation and its repeats (same
    seed, so the same n tokens); the score time is the median of repeated scores.
    """
    prompt_ids = chat_ids(engine, PROMPTS[0])
    progress(f"validate: generating {n} tokens")
    output, params, first = await exact_generation(engine, clock, prompt_ids, n)
    generate_times = [first]
    for _ in range(settings.repeats - 1):
        start = clock.now()
        await generate(engine, prompt_ids, params)
        generate_times.append(clock.now() - start)
    generate_s = statistics.median(generate_times)
    progress(f"validate: scoring {len(output)} tokens")
    rows: list[Row] = []
    for label, sampling in (("with rule check", params), ("no rule check", None)):
        times = []
        for _ in range(settings.repeats):
            start = clock.now()
            scored = await engine.score(prompt_ids, output, TOP_K, sampling)
            times.append(clock.now() - start)
        score_s = statistics.median(times)
        detail = (f"score {score_s * 1000:.0f} ms / generate {generate_s * 1000:.0f} ms; "
                  f"{len(output)} of {n} tokens (seed {params.seed})")
        if sampling is not None:
            # An honest generation should pass; a non-zero count means executor and validator
            # arithmetic disagree (bf16 rounding does this), which matters beside the cost.
            violations = sum(not obeys_rule(p.rule, sampling.greedy) for p in scored)
            detail += f"; {violations} rule violations"
        rows.append(Row(f"validate {n} tokens, {label}", f"{score_s / generate_s:.3f}×",
                        detail))
    return rows


def chat_ids(engine: TorchEngine, text: str) -> list[int]:
    return engine.tokenizer.tokenize(engine.tokenizer.render_chat([("user", text)]))


async def warm_up(engine: TorchEngine) -> None:
    """One wave at full concurrency and one score, so first-call costs (allocator, kernel
    selection, lazy init) stay out of the measurements."""
    progress("warming up")
    requests = [(chat_ids(engine, text), SamplingParams(max_tokens=4, seed=i))
                for i, text in enumerate(PROMPTS)]
    outputs = await asyncio.gather(*(generate(engine, ids, p) for ids, p in requests))
    ids, params = requests[0]
    await engine.score(ids, outputs[0], TOP_K, params)


async def run(settings: Settings) -> list[Row]:
    engine = build_engine(settings)
    try:
        clock = Clock(settings.device)
        await warm_up(engine)
        rows = await throughput(engine, clock, settings)
        for n in settings.lengths:
            rows += await validation_cost(engine, clock, settings, n)
        return rows
    finally:
        engine.close()


def report(settings: Settings, rows: Sequence[Row]) -> list[str]:
    if settings.device == "cuda":
        device = torch.cuda.get_device_name()
    else:
        # The load average shows whether other processes shared the cores during the run.
        device = (f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
                  f"load average {os.getloadavg()[0]:.2f} at the end)")
    model = DEFAULT_MODEL_ID if settings.model == "default" else "random-llama3-8b-shape"
    return [
        f"- device: {device}",
        f"- dtype: {settings.dtype}",
        f"- model: {model}",
        f"- torch {torch.__version__}, transformers {transformers.__version__}",
        "",
        *table(["measurement", "value", "detail"],
               ([r.measurement, r.value, r.detail] for r in rows), text_columns=3),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    settings, out = parse_args(argv)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    publish(report(settings, asyncio.run(run(settings))), out)


if __name__ == "__main__":
    main()
