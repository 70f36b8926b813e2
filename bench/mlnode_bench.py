"""ML node benchmark: generation throughput and the cost of validating an inference.

Two figures decide whether the torch engine is fit to serve (docs/design.md §6.3, §9):

- tokens/s at 1 and at 8 concurrent requests, because continuous batching only earns its
  complexity if eight requests together run faster than one at a time;
- score time / generate time for one finished inference, because a validator re-scores
  inferences at a rate of p_min..p_max (§4), so this ratio is what checking costs relative to
  serving. It is measured with the seeded sampling-rule check (what a validator runs) and
  without it, to show what the rule check itself adds.

``--decode compare`` instead runs the same requests through the engine's eager (reference)
decode and its static decode (``mlnode/static_decode.py``) over one loaded model: tokens/s at
1 and 8 concurrent, decode ms/token of one stream against the HBM floor (the bytes of weights
a decode step reads over the memory's peak bandwidth), and whether both decodes produced the
same tokens for the same seeds, over sampling settings that exercise every part of the rule.
On CUDA it also times one stream of static decode with lookahead off (each step launched
only once the previous one's tokens are handed out), the baseline for what lookahead gains.

It drives ``TorchEngine`` in-process through its async interface, the way the gRPC service
does, and prints a markdown table. Run ``python bench/mlnode_bench.py --help``.
"""

import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from device_clock import Clock
from report import bench_parser, parse_bench_args, progress, publish, table
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PreTrainedModel

from chain.inference.params import InferenceParams
from mlnode.chat_tokenizer import ChatTokenizer
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare
from mlnode.rule_check import obeys_rule
from mlnode.sampling import SamplingParams
from mlnode.torch_engine import DECODES, DTYPES, TorchEngine
from mlnode.types import Finished, TokenStep

TOP_K = InferenceParams().top_k  # the artifact's default top-k: what executor and validator compute
CONCURRENCY = 8
SEED_TRIES = 8  # generations tried per validation length before settling for a shorter one
# Datasheet peak memory bandwidth, bytes/s, by the name torch gives the device.
PEAK_BANDWIDTH = {"NVIDIA H200": 4.8e12, "NVIDIA H100 80GB HBM3": 3.35e12}
JSON_SCHEMA = ('{"type": "object", "properties": {"name": {"type": "string"}, '
               '"age": {"type": "integer"}}, "required": ["name", "age"]}')

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
    decode: str = "auto"


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
    parser.add_argument("--decode", choices=(*DECODES, "compare"), default="auto",
                        help="the engine's decode path, or compare eager and static "
                        "(default auto: static on CUDA, eager on the CPU)")
    parser.add_argument("--max-tokens", type=int,
                        help="tokens per throughput request (default 64; 16 with --quick)")
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
    max_tokens = args.max_tokens or (16 if args.quick else 64)
    if max_tokens < 2:
        parser.error("--max-tokens must be at least 2")
    settings = Settings(args.device, args.dtype, args.model, parsed, max_tokens=max_tokens,
                        repeats=1 if args.quick else 3, decode=args.decode)
    return settings, args.out


def build_model(settings: Settings) -> tuple[PreTrainedModel, ChatTokenizer, str, str]:
    """The model under test, its tokenizer, model id and weights hash; the random 8B-shape
    model shows GPU cost at production size.

    The 8B-shape model keeps the default model's vocabulary (and its special-token ids) so
    that the same tokenizer and chat template serve it. Its weights are created directly on
    the device in the target dtype: materialising ~7.5B parameters in fp32 on the CPU first
    would take 30 GB of host memory and minutes of initialisation.
    """
    files = prepare(default_gguf())
    tokenizer = ChatTokenizer.from_folder(files.path)
    if settings.model == "default":
        model = AutoModelForCausalLM.from_pretrained(
            files.path, dtype=DTYPES[settings.dtype]).to(settings.device)
        return model, tokenizer, DEFAULT_MODEL_ID, files.weights_sha256
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
    return model, tokenizer, "random-llama3-8b-shape", "random"


def build_engine(built: tuple[PreTrainedModel, ChatTokenizer, str, str], decode: str,
                 lookahead: bool | None = None) -> TorchEngine:
    model, tokenizer, model_id, sha256 = built
    return TorchEngine(model, tokenizer, model_id=model_id, weights_sha256=sha256,
                       decode=decode, lookahead=lookahead)


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


async def throughput(engine: TorchEngine, clock: Clock, settings: Settings,
                     rates: dict[int, float] | None = None) -> list[Row]:
    """Tokens/s at 1 and at 8 concurrent requests over the same eight (prompt, seed) pairs.

    One concurrent: each of the eight requests alone is one measurement. Eight concurrent:
    all eight submitted at once is one measurement, repeated. The figure is the median rate;
    the rate uses the tokens actually generated, since a request may end early at EOS.
    ``rates``, when given, receives the two medians.
    """
    requests = [(chat_ids(engine, text),
                 SamplingParams(max_tokens=settings.max_tokens, temperature=1.0, seed=seed))
                for seed, text in enumerate(PROMPTS, start=1)]
    rows: list[Row] = []
    rates = {} if rates is None else rates
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
    """One wave at full concurrency, one request alone and one score, so first-call costs
    (allocator, kernel selection, lazy init, graph capture) stay out of the measurements."""
    progress("warming up")
    requests = [(chat_ids(engine, text), SamplingParams(max_tokens=4, seed=i))
                for i, text in enumerate(PROMPTS)]
    outputs = await asyncio.gather(*(generate(engine, ids, p) for ids, p in requests))
    ids, params = requests[0]
    await generate(engine, ids, params)
    await engine.score(ids, outputs[0], TOP_K, params)


async def stream_gaps(engine: TorchEngine, requests: Sequence[tuple[list[int], SamplingParams]]
                      ) -> list[float]:
    """Each request alone: the mean seconds between its first and last streamed token, that
    is one decode step as a client sees it, prefill excluded."""
    gaps = []
    for prompt_ids, params in requests:
        times = []
        async for event in engine.generate(prompt_ids, params, TOP_K):
            if isinstance(event, TokenStep):
                times.append(time.perf_counter())
        if len(times) > 1:
            gaps.append((times[-1] - times[0]) / (len(times) - 1))
    return gaps or [float("nan")]


def rule_requests(engine: TorchEngine, settings: Settings
                  ) -> list[tuple[list[int], SamplingParams]]:
    """One request per part of the rule: plain, greedy, low and high temperature, top-k,
    top-p, both together, penalties, logit biases, a JSON-schema grammar."""
    n = settings.max_tokens
    variants = [
        SamplingParams(max_tokens=n, seed=101),
        SamplingParams(max_tokens=n, temperature=0.0),
        SamplingParams(max_tokens=n, seed=102, temperature=0.6),
        SamplingParams(max_tokens=n, seed=103, temperature=1.4),
        SamplingParams(max_tokens=n, seed=104, top_k=20),
        SamplingParams(max_tokens=n, seed=105, top_p=0.9),
        SamplingParams(max_tokens=n, seed=106, temperature=0.8, top_k=40, top_p=0.95),
        SamplingParams(max_tokens=n, seed=107, presence_penalty=1.0, frequency_penalty=0.7),
        SamplingParams(max_tokens=n, seed=108, logit_bias=((28, 4.0), (30, -50.0), (288, 3.0))),
        SamplingParams(max_tokens=n, seed=109, grammar_kind="json_schema", grammar=JSON_SCHEMA),
    ]
    return [(chat_ids(engine, PROMPTS[i % len(PROMPTS)]), p) for i, p in enumerate(variants)]


def weight_bytes(model: PreTrainedModel) -> int:
    """Bytes a decode step reads from weights: every parameter, except that of an input
    embedding table distinct from the output one only one row per token is read."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if embed is not head:
        total -= embed.numel() * embed.element_size()
    return total


def copy_bandwidth(device: str) -> float:
    """Bytes/s of a device-to-device copy of 4 GiB (read plus written), best of five."""
    source = torch.empty(1 << 31, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(5):
        clock = Clock(device)
        start = clock.now()
        target.copy_(source)
        best = min(best, clock.now() - start)
    return 2 * source.numel() / best


async def compare_decodes(settings: Settings) -> list[Row]:
    """Eager against static decode on one loaded model: speed, and the same tokens."""
    built = build_model(settings)
    clock = Clock(settings.device)
    rows: list[Row] = []
    outputs: dict[str, list[list[int]]] = {}
    figures: dict[str, tuple[float, dict[int, float]]] = {}
    violations: dict[str, int] = {}
    for decode in ("eager", "static"):
        engine = build_engine(built, decode)
        try:
            await warm_up(engine)
            rates: dict[int, float] = {}
            rows += [Row(f"{decode}: {r.measurement}", r.value, r.detail)
                     for r in await throughput(engine, clock, settings, rates)]
            plain = [(chat_ids(engine, text),
                      SamplingParams(max_tokens=settings.max_tokens, seed=seed))
                     for seed, text in enumerate(PROMPTS[:3], start=1)]
            gap = statistics.median(await stream_gaps(engine, plain))
            requests = rule_requests(engine, settings)
            figures[decode] = (gap, rates)
            progress(f"{decode}: the rule's variants, 1 and all concurrent")
            alone = [await generate(engine, ids, p) for ids, p in requests]
            together = await asyncio.gather(*(generate(engine, ids, p) for ids, p in requests))
            outputs[decode] = alone + list(together)
            checked = [(ids, p, o) for (ids, p), o in zip(requests * 2, outputs[decode],
                                                            strict=True)]
            violations[decode] = await rule_violations(engine, checked)
        finally:
            engine.close()
    if settings.device == "cuda":
        rows += await lookahead_rows(built, plain, figures["static"][0])
    same = sum(a == b for a, b in zip(outputs["eager"], outputs["static"], strict=True))
    tokens = sum(len(o) for o in outputs["eager"])
    agree = sum(common_prefix(a, b)
                for a, b in zip(outputs["eager"], outputs["static"], strict=True))
    rows.append(Row("same tokens, static vs eager", f"{same}/{len(outputs['eager'])} outputs",
                    f"{agree}/{tokens} tokens before the first difference; 10 rule variants "
                    f"(greedy, temperatures, top-k, top-p, penalties, biases, JSON schema), "
                    f"each alone and all 10 concurrent, same seeds"))
    for decode, count in violations.items():
        rows.append(Row(f"{decode}: rule violations", str(count),
                        f"its {sum(len(o) for o in outputs[decode])} tokens of the outputs "
                        "above, scored with their sampling settings (a validator's check, "
                        "default tolerance)"))
    floor_rows(rows, settings, built[0], figures)
    return rows


async def lookahead_rows(built: tuple[PreTrainedModel, ChatTokenizer, str, str],
                         plain: Sequence[tuple[list[int], SamplingParams]], gap: float
                         ) -> list[Row]:
    """One stream of static decode with lookahead off, on the same model and requests."""
    engine = build_engine(built, "static", lookahead=False)
    try:
        await warm_up(engine)
        alone = statistics.median(await stream_gaps(engine, plain))
    finally:
        engine.close()
    detail = (f"{alone * 1000:.2f} ms/token without lookahead, {gap * 1000:.2f} ms/token with "
              f"it (median of {len(plain)} requests each)")
    return [Row("static: 1 stream, lookahead off", f"{alone * 1000:.2f} ms/token",
                "each step launched once the previous one's tokens are handed out"),
            Row("static: lookahead gain, 1 stream", f"{alone / gap:.2f}×", detail)]


async def rule_violations(engine: TorchEngine,
                          outputs: Sequence[tuple[list[int], SamplingParams, list[int]]]) -> int:
    """Output tokens a validator's Score finds off the rule."""
    total = 0
    for prompt_ids, params, output in outputs:
        if output:
            scored = await engine.score(prompt_ids, output, 0, params)
            total += sum(not obeys_rule(p.rule, params.greedy) for p in scored)
    return total


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


def floor_rows(rows: list[Row], settings: Settings, model: PreTrainedModel,
               figures: dict[str, tuple[float, dict[int, float]]]) -> None:
    """One stream's decode step against the HBM floor, and 8 concurrent against 1."""
    read = weight_bytes(model)
    bandwidths = [("measured copy", copy_bandwidth(settings.device))] if (
        settings.device == "cuda") else []
    peak = PEAK_BANDWIDTH.get(torch.cuda.get_device_name()) if settings.device == "cuda" else None
    if peak:
        bandwidths.insert(0, ("datasheet peak", peak))
    for name, bandwidth in bandwidths:
        floor = read / bandwidth
        rows.append(Row(f"HBM floor ({name})", f"{floor * 1000:.2f} ms/token",
                        f"{read / 1e9:.2f} GB of weights / {bandwidth / 1e12:.2f} TB/s"))
        for decode, (gap, _) in figures.items():
            rows.append(Row(f"{decode}: 1 stream vs floor ({name})", f"{floor / gap:.0%}",
                            f"{gap * 1000:.2f} ms/token between streamed tokens (median of "
                            f"3 requests of {settings.max_tokens} tokens)"))
    eager_rates, static_rates = figures["eager"][1], figures["static"][1]
    rows.append(Row("static vs eager, 1 concurrent", f"{static_rates[1] / eager_rates[1]:.2f}×",
                    "ratio of the tok/s medians above"))
    rows.append(Row(f"static vs eager, {CONCURRENCY} concurrent",
                    f"{static_rates[CONCURRENCY] / eager_rates[CONCURRENCY]:.2f}×",
                    "ratio of the tok/s medians above"))


async def run(settings: Settings) -> list[Row]:
    if settings.decode == "compare":
        return await compare_decodes(settings)
    engine = build_engine(build_model(settings), settings.decode)
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
        f"- decode: {settings.decode}",
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
