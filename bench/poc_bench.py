"""Proof-of-compute benchmark: nonces/s, the cost of checking a sample, and the CPU-vs-GPU
distance differences that set the verification tolerance.

Participants need PoC nonces/s on CPU and GPU for the tiny and a realistic transformer, and
the time a validator needs to check a participant's sample. For each preset and dtype this
measures, in one run:

- proving: nonces/s over a timed stretch of nonces, and the accepted share beside the share
  the target implies (mlnode/poc/target.py);
- checking: the time to verify a sample of ``--sample`` claims, and that time over the time
  the prover spent to find as many accepted nonces (the baseline, same run and device);
- on CUDA: whether the GPU's weights equal the CPU's bit for bit, and how far distances
  computed on the GPU (fp32, bf16) land from CPU fp32 ones: the figure the tolerance is
  chosen from. CPU tiny fp32 is also measured as the baseline for a GPU/CPU ratio;
- for the tiny preset, what a prover gains by screening nonces at half depth (a shortcut
  that a residual network allows; docs/mlnode.md discusses it).

Run ``python bench/poc_bench.py --help``.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from device_clock import Clock
from report import bench_parser, parse_bench_args, progress, publish, section, table

from mlnode.poc import DEFAULT_TARGETS, PRESETS, PocModel, expected_acceptance, poc_seed, verify
from mlnode.poc.model import direction, weight
from mlnode.poc.nonces import (
    compute,
    default_batch_size,
    distances,
    nonce_streams,
    reference_screen,
)
from mlnode.types import PocModelSpec

BLOCK_HASH = bytes.fromhex("7f" * 32)
ADDRESS = "gonka1benchparticipant"
SAMPLE_SEED = b"a later block hash"


@dataclass(frozen=True)
class Settings:
    device: str
    presets: tuple[str, ...]
    realistic_layers: int | None
    sample: int
    seconds: float
    cross_nonces: int
    whole_batches: bool  # prove whole batches, as a prover does; else about `seconds` worth


@dataclass(frozen=True)
class Proof:
    """One (preset, dtype) measurement."""

    preset: str
    dtype: str
    build_s: float
    nonces: int
    prove_s: float
    accepted: int
    expected: float
    verify_s: float
    sample: int

    @property
    def rate(self) -> float:
        return self.nonces / self.prove_s

    @property
    def verify_ratio(self) -> float:
        """Checking `sample` claims over proving `sample` accepted nonces."""
        return self.verify_s / (self.sample / (self.rate * self.expected))


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, Path | None]:
    parser = bench_parser(__doc__)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--presets", default="tiny,realistic")
    parser.add_argument("--realistic-layers", type=int, default=None,
                        help="layer count of the realistic preset (default: its own 32 on "
                             "CUDA, 2 on CPU, where 32 layers take minutes per batch)")
    parser.add_argument("--sample", type=int, default=100, help="claims a validator checks")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long each proving measurement runs (about)")
    parser.add_argument("--cross-nonces", type=int, default=8,
                        help="realistic-preset nonces recomputed on the CPU (CUDA only)")
    args = parse_bench_args(parser, "smoke run: 1 s per measurement, not rounded up to a whole "
                            "batch (a realistic one takes minutes on a CPU), sample of 8", argv)
    presets = tuple(args.presets.split(","))
    if unknown := set(presets) - set(PRESETS):
        parser.error(f"unknown presets {sorted(unknown)}; choose from {sorted(PRESETS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    layers = args.realistic_layers or (None if args.device == "cuda" else 2)
    settings = Settings(args.device, presets, layers, 8 if args.quick else args.sample,
                        1.0 if args.quick else args.seconds, args.cross_nonces,
                        whole_batches=not args.quick)
    return settings, args.out


def spec_of(settings: Settings, preset: str) -> PocModelSpec:
    spec = PRESETS[preset]
    if preset == "realistic" and settings.realistic_layers:
        return replace(spec, layers=settings.realistic_layers)
    return spec


def build(spec: PocModelSpec, device: str, dtype: str) -> tuple[PocModel, float]:
    clock = Clock(device)
    start = clock.now()
    model = PocModel(spec, poc_seed(BLOCK_HASH, ADDRESS), device, dtype)
    return model, clock.now() - start


def prove(model: PocModel, preset: str, dtype: str, build_s: float, settings: Settings,
          device: str) -> Proof:
    """Times proving for about `settings.seconds` after a warm-up, then checks a sample.

    The proving pass keeps every nonce's distance (what `compute` computes anyway), so the
    honest claims to check are its first `sample` nonces under a target every nonce meets:
    the sample is full whatever the acceptance, and checking costs the same either way.
    """
    clock = Clock(device)
    batch = default_batch_size(model)
    # On CUDA a full batch, so kernel choice for the measured shape is done; on the CPU a
    # few nonces suffice and a realistic batch takes a minute.
    warm = batch if device == "cuda" else min(batch, 8)
    for _ in range(2 if device == "cuda" else 1):  # the first CUDA call also initialises
        start = clock.now()
        distances(model, range(warm))
    per_nonce = (clock.now() - start) / warm
    batches = max(1, round(settings.seconds / (per_nonce * batch)))
    count = max(batches * batch if settings.whole_batches else round(settings.seconds / per_nonce),
                settings.sample)
    progress(f"{preset} {dtype}: proving {count} nonces, {min(count, batch)} per batch")
    start = clock.now()
    every = compute(model, range(count), 2.0)
    prove_s = clock.now() - start
    target = DEFAULT_TARGETS[preset]
    accepted = sum(c.distance < target for c in every)
    claims = every[:settings.sample]
    if device == "cuda":  # its batch shapes are new ones: choose their kernels untimed
        verify(model, claims, 2.0, settings.sample, SAMPLE_SEED)
    start = clock.now()
    report = verify(model, claims, 2.0, settings.sample, SAMPLE_SEED)
    verify_s = clock.now() - start
    assert report.passed, f"honest claims failed verification: {report}"
    return Proof(preset, dtype, build_s, count, prove_s, accepted,
                 expected_acceptance(target, model.spec.hidden), verify_s, settings.sample)


def weights_equal(gpu: PocModel, spec: PocModelSpec, dtype: str) -> bool:
    """GPU weights against weights generated on the CPU: all of them for small models,
    the first layer's for large ones (generating 6.5 B on the CPU takes minutes)."""
    names = [(f"layers.0.{n}", t.shape) for n, t in vars(gpu.layers[0]).items()]
    if spec.parameters < 50_000_000:
        names = [(f"layers.{i}.{n}", t.shape) for i, layer in enumerate(gpu.layers)
                 for n, t in vars(layer).items()]
    tensors = {f"layers.{i}.{n}": t for i, layer in enumerate(gpu.layers)
               for n, t in vars(layer).items()}
    return all(torch.equal(weight(gpu.seed, name, tuple(shape), "cpu", gpu.dtype),
                           tensors[name].cpu()) for name, shape in names)


def deviation(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    diffs = [abs(x - y) for x, y in zip(a, b, strict=True)]
    return max(diffs), sum(diffs) / len(diffs)


KEEP_GRID = tuple(i / 50 for i in range(5, 51))  # shares of a batch a depth screen keeps


@dataclass(frozen=True)
class ScreenSample:
    """One sample of nonces: each one's distance after half the layers and after all of them
    in the screen's dtype, and in float32 (the claim); and what a full pass costs in the
    screen's dtype over float32's, measured on this device."""

    half: list[float]
    full: list[float]
    exact: list[float]
    relative_cost: float


def screen_sample(fp32: PocModel, screen: PocModel, count: int, device: str) -> ScreenSample:
    clock = Clock(device)
    batch = default_batch_size(fp32)
    half, full, exact, spent = [], [], [], {id(fp32): 0.0, id(screen): 0.0}
    middle = len(screen.layers) // 2
    for first in range(0, count, batch):
        chunk = range(first, min(count, first + batch))
        inputs, targets = nonce_streams(screen, chunk)
        start = clock.now()
        states = screen.layers_forward(inputs.to(screen.dtype), 0, middle)
        half += (direction(states) - targets).norm(dim=-1).tolist()
        states = screen.layers_forward(states, middle, len(screen.layers))
        full += (direction(states) - targets).norm(dim=-1).tolist()
        spent[id(screen)] += clock.now() - start
        if screen is fp32:
            exact = full
            continue
        start = clock.now()
        exact += distances(fp32, chunk)
        spent[id(fp32)] += clock.now() - start
    ratio = 1.0 if screen is fp32 else spent[id(screen)] / spent[id(fp32)]
    return ScreenSample(half, full, exact, ratio)


def screen_yield(sample: ScreenSample, target: float, keep: float, margin: float | None
                 ) -> tuple[float, float]:
    """Accepted nonces per unit of compute of a screen keeping `keep` of the nonces by
    half-depth distance, over computing every nonce in float32, and the share of the
    accepted ones it finds. Costs in float32 full passes: the screen's half pass on every
    nonce, its second half on those kept, and (`margin` not None) a float32 pass on those
    kept whose screened distance is under target + margin. Here the screen keeps the share of
    the sample nearest at half depth; the prover keeps the nonces under the distance that
    holds that share under the target law, the same share in expectation."""
    n = len(sample.exact)
    cut = sorted(sample.half)[max(0, min(n, round(keep * n)) - 1)]
    kept = [i for i in range(n) if sample.half[i] <= cut]
    confirmed = kept if margin is None else [i for i in kept
                                             if sample.full[i] < target + margin]
    accepted = sum(d < target for d in sample.exact)
    found = sum(sample.exact[i] < target for i in confirmed)
    cost = sample.relative_cost * (0.5 + 0.5 * len(kept) / n)
    cost += 0 if margin is None else len(confirmed) / n
    return found / cost / accepted, found / accepted


def screening(settings: Settings, preset: str) -> list[list[str]]:
    """What screening yields on this device: every depth-screen keep share in KEEP_GRID,
    with the reference prover's screen (mlnode/poc/nonces.py) among them, and the measured
    accepted nonces/s of the reference prover against computing every nonce in full. Not
    the realistic preset on a CPU: a sample with enough accepted nonces takes hours there, and
    the cut to a few layers leaves no depth to screen."""
    if preset != "tiny" and settings.device != "cuda":
        return []
    spec = spec_of(settings, preset)
    target = DEFAULT_TARGETS[preset]
    fp32, _ = build(spec, settings.device, "float32")
    reference = reference_screen(fp32)
    precision = reference.model is not fp32
    count = default_batch_size(fp32) * (8 if preset == "tiny" else 32)
    progress(f"{preset}: screening sample of {count} nonces")
    compute(fp32, range(default_batch_size(fp32)), target, screen=reference)  # warm-up
    sample = screen_sample(fp32, reference.model, count, settings.device)
    margin = reference.margin if precision else None
    options = [(*screen_yield(sample, target, keep, margin), keep) for keep in KEEP_GRID]
    best_gain, best_recall, best_keep = max(options)
    reference_gain, reference_recall = screen_yield(sample, target, reference.half_depth_keep,
                                                    margin)
    modelled = [("every nonce in full (baseline)", 1.0, 1.0, None),
                ("reference prover", reference_gain, reference_recall,
                 reference.half_depth_keep),
                ("best keep share found", best_gain, best_recall, best_keep)]
    if precision:
        modelled.insert(1, (f"{str(reference.model.dtype).removeprefix('torch.')} screen alone",
                            *screen_yield(sample, target, 1.0, margin), 1.0))
    rows = [[preset, name, "—" if keep is None else f"{keep:.2f}", f"{recall:.0%}",
             f"{gain:.2f}×", f"{gain / reference_gain:.2f}× the reference"]
            for name, gain, recall, keep in modelled]
    measured = min(count, 1024 if preset != "tiny" else count)
    clock = Clock(settings.device)
    start = clock.now()
    every = compute(fp32, range(measured), target)
    exhaustive_s = clock.now() - start
    start = clock.now()
    screened_found = compute(fp32, range(measured), target, screen=reference)
    reference_s = clock.now() - start
    lost = {n.nonce for n in every} - {n.nonce for n in screened_found}
    rows.append([preset, "reference prover, timed", f"{reference.half_depth_keep:.2f}",
                 f"{1 - len(lost) / max(1, len(every)):.0%}",
                 f"{len(screened_found) / reference_s / (len(every) / exhaustive_s):.2f}×",
                 f"{len(screened_found)} accepted in {reference_s:.1f} s against "
                 f"{len(every)} in {exhaustive_s:.1f} s, {measured} nonces"])
    return rows


def run(settings: Settings) -> list[str]:
    proofs: list[Proof] = []
    cross: list[list[str]] = []
    dtypes = ("float32", "bfloat16") if settings.device == "cuda" else ("float32",)
    for preset in settings.presets:
        spec = spec_of(settings, preset)
        reference: list[float] = []
        count = 4096 if preset == "tiny" else settings.cross_nonces
        for dtype in dtypes:
            progress(f"{preset} {dtype}: building {spec.parameters / 1e6:.1f} M weights")
            model, build_s = build(spec, settings.device, dtype)
            proofs.append(prove(model, preset, dtype, build_s, settings, settings.device))
            if settings.device != "cuda":
                continue
            equal = weights_equal(model, spec, dtype)
            if not reference:
                progress(f"{preset}: {count} nonces on the CPU in fp32")
                reference = distances(model.to("cpu"), range(count))
            worst, mean = deviation(distances(model, range(count)), reference)
            cross.append([preset, f"GPU {dtype} vs CPU float32", f"{worst:.2e}", f"{mean:.2e}",
                          str(count), "yes" if equal else "NO"])
            del model
            torch.cuda.empty_cache()
    if settings.device == "cuda" and "tiny" in settings.presets:
        model, build_s = build(PRESETS["tiny"], "cpu", "float32")
        proofs.append(prove(model, "tiny", "float32 (CPU baseline)", build_s, settings, "cpu"))
    lines = [*header(settings), "", *proof_table(proofs)]
    if cross:
        lines += ["", *section("CPU vs GPU", table(
            ["preset", "distances", "max abs diff", "mean abs diff", "nonces",
             "weights bit-identical"], cross, text_columns=2),
            "Distances of the same nonces and seed on the GPU and, in fp32, on the CPU: the "
            "tolerance is chosen from these. Weights: the GPU's, in the row's dtype, against "
            "the same generated on the CPU (every layer for tiny, the first for realistic).")]
    screens = [row for preset in settings.presets for row in screening(settings, preset)]
    lines += ["", *section("Screening: accepted nonces per unit of compute", table(
        ["preset", "prover", "keep", "finds", "yield", "against the reference"], screens,
        text_columns=2),
        "yield: accepted nonces per unit of compute over computing every nonce in full "
        "in float32. keep: the share of each batch that goes on past half depth; finds: the "
        "share of the accepted nonces it finds. Modelled rows cost a sample's passes in "
        "float32 full passes (half depth 0.5, a bfloat16 pass at its measured time); the "
        "timed row runs the reference prover (mlnode/poc/nonces.py) against the exhaustive "
        "search over the same nonces. A prover gains by a shortcut whose yield is above "
        "the reference's; see docs/mlnode.md.")]
    return lines


def header(settings: Settings) -> list[str]:
    if settings.device == "cuda":
        device = torch.cuda.get_device_name()
    else:
        device = (f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
                  f"load average {os.getloadavg()[0]:.2f} at the end)")
    lines = [f"- device: {device}", f"- torch {torch.__version__}"]
    if settings.realistic_layers and "realistic" in settings.presets:
        lines.append(f"- realistic preset cut to {settings.realistic_layers} of its "
                     f"{PRESETS['realistic'].layers} layers (nonces/s scale ~1/layers)")
    return lines


def proof_table(proofs: Sequence[Proof]) -> list[str]:
    rows = [[p.preset, p.dtype, f"{p.rate:,.1f}", f"{p.accepted / p.nonces:.2%}",
             f"{p.expected:.2%}", f"{p.build_s:.2f} s", f"{p.verify_s * 1000:,.0f} ms",
             f"{p.verify_ratio:.3f}×", f"{p.nonces} nonces in {p.prove_s:.1f} s"]
            for p in proofs]
    return section("Proving and checking", table(
        ["preset", "dtype", "nonces/s", "accepted", "expected", "weights", "verify sample",
         "verify / prove", "detail"], rows, text_columns=2),
        f"verify sample: re-computing {proofs[0].sample} claims; verify / prove: that time over "
        "the time this prover took to find as many accepted nonces (same run). weights: "
        "generating the model from the seed, which a validator pays once per participant.")


def main(argv: Sequence[str] | None = None) -> None:
    settings, out = parse_args(argv)
    publish(run(settings), out)


if __name__ == "__main__":
    main()
