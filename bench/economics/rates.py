"""The measured inputs of the economic model, each with the row it comes from.

Detection rates depend on what the registry fixes for the model: its serving dtype sets the
thresholds every validator judges by (docs/verification.md, "Per serving dtype"). Two
registries are tabled, each as caught/n per (cheat, max_tokens) row with the exact
Clopper–Pearson 95 % interval, so that a margin can be checked at the end of the interval
that favours the cheater:

- **fp32** (the default genesis registers the default model so): the "passed alone" column
  of `bench/results/violations-fp32.md`, every cheat row judged under the fp32 thresholds (D
  = 0.00048 nats, Tg = Ts = 0.001, V = 0, P = 0), 8 and 32 tokens;
- **half precision**: the "fail" column of docs/verification.md's "Results", every cheat row
  judged under the one rule that admits bf16 executors (D = 0.15, the same tolerances), 8,
  32 and 128 tokens.

Only single checks are counted: the evidence test across an epoch (docs/design.md §6.6),
which catches int8 under a bf16 registry at f = 1, is left out, in the cheater's favour.
Compute savings are what each cheat spares the executor per inference against honest
generation, taken from how `mlnode/cheats.py` and `bench/detection/tamper.py` build the
cheat and from `bench/results/mlnode-h200.md` (the prefill a forgery adds); they are upper
bounds, since each also pays for what it fakes.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

VERIFICATION = "docs/verification.md, Results"
VIOLATIONS_FP32 = "bench/results/violations-fp32.md"
MLNODE_RESULTS = "bench/results/mlnode-h200.md"
CONFIDENCE = 0.95

# Score over generate time, the dearest measured (docs/verification.md, Cost: 32 tokens on
# 2 CPU cores, 0.180); the H200 figure is 0.042 (mlnode-h200.md, validate 32 tokens).
SCORE_OVER_GENERATE = 0.180
PREFILL_OVER_GENERATE = 0.027  # mlnode-h200.md: validate 128 tokens with rule check
# Accepted nonces per unit of compute of other searches over the reference prover's, which
# screens by depth and in bfloat16 (mlnode/poc/nonces.py): bench/results/poc-gpu.md,
# "Screening", realistic on an H100: the exhaustive search as timed (1/8.67), the best keep
# share of the grid as modelled.
POC_SCREENS = {"every nonce in full": 0.12, "best keep share found": 1.00}


@dataclass(frozen=True)
class Detection:
    """One calibration row: the share of a cheat's checked inferences that fail the check."""

    cheat: str
    max_tokens: int
    caught: int
    n: int
    source_table: str = VERIFICATION

    @property
    def rate(self) -> float:
        return self.caught / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return clopper_pearson(self.caught, self.n, CONFIDENCE)

    @property
    def source(self) -> str:
        return f"{self.source_table}, row `{self.cheat} | {self.max_tokens}`"


@dataclass(frozen=True)
class Cheat:
    """A cheat class: the share of an honest inference's compute it spares, and why."""

    name: str
    saving: float
    why: str


CHEATS = (
    Cheat("skip-layers", 0.5, "every other decoder layer dropped: at most half the forward"),
    Cheat("forge-prefill", 0.5 - PREFILL_OVER_GENERATE,
          "skip-layers tokens, then one prefill of the real model for the logprobs "
          f"({PREFILL_OVER_GENERATE}× generate, {MLNODE_RESULTS})"),
    Cheat("int8", 0.5, "int8 weights halve the bytes a memory-bound decode reads (bf16 → int8): "
          "an upper bound"),
    Cheat("forge-prefill-int8", 0.5 - PREFILL_OVER_GENERATE,
          "int8 tokens, then one prefill of the real model"),
    Cheat("temperature-1.0-recorded-0.7", 0.0, "same model, same work: no saving"),
    Cheat("wrong-seed", 0.0, "same model, same work: no saving"),
    Cheat("token-edit", 0.0, "honest generation plus a re-score: no saving"),
    Cheat("truncated", 0.0, "stops early but is paid only for the tokens it claims"),
    Cheat("fabricated-logprobs", 0.0, "honest tokens; the top-k comes with the forward anyway"),
)

@dataclass(frozen=True)
class Registry:
    """The detection table of one registered serving precision."""

    name: str
    source: str
    lengths: tuple[int, ...]
    caught: dict[tuple[str, int], tuple[int, int]]

    def detection(self, cheat: str, max_tokens: int) -> Detection:
        caught, n = self.caught[(cheat, max_tokens)]
        return Detection(cheat, max_tokens, caught, n, self.source)

    def detections(self) -> list[Detection]:
        return [self.detection(c.name, length) for c in CHEATS for length in self.lengths]


# (cheat, max_tokens) → (caught, n): outputs minus "passed alone" in violations-fp32.md.
FP32 = Registry("fp32", VIOLATIONS_FP32, (8, 32), {
    ("int8", 8): (30, 30), ("int8", 32): (15, 15),
    ("skip-layers", 8): (30, 30), ("skip-layers", 32): (15, 15),
    ("forge-prefill", 8): (30, 30), ("forge-prefill", 32): (15, 15),
    ("forge-prefill-int8", 8): (13, 30), ("forge-prefill-int8", 32): (10, 15),
    ("temperature-1.0-recorded-0.7", 8): (26, 30), ("temperature-1.0-recorded-0.7", 32): (15, 15),
    ("wrong-seed", 8): (29, 30), ("wrong-seed", 32): (15, 15),
    ("token-edit", 8): (30, 30), ("token-edit", 32): (15, 15),
    ("truncated", 8): (30, 30), ("truncated", 32): (15, 15),
    ("fabricated-logprobs", 8): (30, 30), ("fabricated-logprobs", 32): (15, 15),
})
# (cheat, max_tokens) → (caught, n): the "fail" column of docs/verification.md's Results.
HALF_PRECISION = Registry("half precision", VERIFICATION, (8, 32, 128), {
    ("int8", 8): (0, 30), ("int8", 32): (0, 15), ("int8", 128): (0, 6),
    ("skip-layers", 8): (30, 30), ("skip-layers", 32): (15, 15), ("skip-layers", 128): (6, 6),
    ("forge-prefill", 8): (30, 30), ("forge-prefill", 32): (15, 15),
    ("forge-prefill", 128): (6, 6),
    ("forge-prefill-int8", 8): (0, 30), ("forge-prefill-int8", 32): (0, 15),
    ("forge-prefill-int8", 128): (2, 6),
    ("temperature-1.0-recorded-0.7", 8): (6, 30), ("temperature-1.0-recorded-0.7", 32): (13, 15),
    ("temperature-1.0-recorded-0.7", 128): (5, 6),
    ("wrong-seed", 8): (18, 30), ("wrong-seed", 32): (14, 15), ("wrong-seed", 128): (6, 6),
    ("token-edit", 8): (20, 30), ("token-edit", 32): (13, 15), ("token-edit", 128): (4, 6),
    ("truncated", 8): (30, 30), ("truncated", 32): (15, 15), ("truncated", 128): (6, 6),
    ("fabricated-logprobs", 8): (30, 30), ("fabricated-logprobs", 32): (15, 15),
    ("fabricated-logprobs", 128): (6, 6),
})
REGISTRIES = (FP32, HALF_PRECISION)
DEFAULT_REGISTRY = FP32


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Bin(n, p), summed exactly in floating point (n is small here)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a binomial proportion, found by bisection on
    the binomial tails, so no statistics package is needed."""
    tail = (1 - confidence) / 2

    def root(increasing: Callable[[float], float]) -> float:
        low, high = 0.0, 1.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (low, mid) if increasing(mid) > 0 else (mid, high)
        return (low + high) / 2

    lower = 0.0 if k == 0 else root(lambda p: 1 - _binomial_cdf(k - 1, n, p) - tail)
    upper = 1.0 if k == n else root(lambda p: tail - _binomial_cdf(k, n, p))
    return lower, upper
