"""Can a validator tell a canary's artifact from an honest one without the model?
``python -m bench.detection.canaries``.

A canary's executor records the artifact shifted (chain/validation/canary.py, docs/design.md
§6.9). Skipping re-scores safely would take telling shifted artifacts apart from honest ones
with no model at hand, from what the artifact itself shows. This takes the bundled H200
outputs of the default model in each serving dtype (``gpu-h200.json.gz``: 270 per dtype, 8,
32 and 128 tokens, top-5), shifts each by the registry threshold's shift, and prints per
dtype: the shift, the distance an honest re-score measures against the shifted artifact
(the smallest over the outputs, in thresholds), and for each feature a reader computes
without the model the AUC between honest and shifted artifacts (0.5: no better than a coin).
Beside them, a naive shift of the same size (every logprob lowered) and the share of honest
artifacts its tell would let a validator pass unchecked.
"""

import argparse
import math
import sys
from collections.abc import Sequence

import numpy as np

from apinode.validation.figures import position_distance
from bench.detection.__main__ import DEFAULT_GPU_JSON, gpu_records
from bench.report import table
from chain.inference import artifact
from chain.inference.artifact import ArtifactStep, dequantize, quantize
from chain.inference.model import DEFAULT_THRESHOLDS
from chain.scales import PPM
from chain.validation import canary
from mlnode.types import ScoredPosition, TokenStep

K = 5
SCENARIOS = {"float32": "honest-gpu-float32", "bfloat16": "honest-gpu-bfloat16",
             "float16": "honest-gpu-float16"}
NEAR_CERTAIN = "share of near-certain top tokens"


def bench_key(index: int) -> bytes:
    """A canary key per artifact, as an executor's seed would give one."""
    return canary.key(b"bench/detection/canaries", str(index))


def threshold_micro(dtype: str) -> int:
    return round(float(DEFAULT_THRESHOLDS[dtype]) * PPM)


def honest_artifacts(dtype: str) -> list[bytes]:
    """The bundled H200 outputs in ``dtype``, encoded as the chain stores them."""
    records, _ = gpu_records(DEFAULT_GPU_JSON, None)
    return [artifact.encode(r.steps, K) for r in records if r.scenario == SCENARIOS[dtype]]


def uniform_shift(data: bytes, quanta: int) -> bytes:
    """The naive canary: every logprob of every position lowered by ``quanta``."""
    k, steps = artifact.decode(data)
    return artifact.encode([
        ArtifactStep(s.token_id, dequantize(quantize(s.logprob) + quanta), s.top_ids,
                     tuple(dequantize(quantize(lp) + quanta) for lp in s.top_logprobs))
        for s in steps], k)


def features(data: bytes, quanta: int) -> dict[str, float]:
    """Per-artifact statistics a validator computes without the model."""
    _, steps = artifact.decode(data)
    tops = [[quantize(lp) for lp in s.top_logprobs] for s in steps]
    gaps = [t[1] - t[0] for t in tops if len(t) >= 2]
    return {
        "lower parity class share": float(np.mean([g % (2 * quanta) < quanta for g in gaps])),
        "mean gap to the second": float(np.mean(gaps)),
        NEAR_CERTAIN: float(np.mean([t[0] < quanta for t in tops])),
        "mean top-k mass": float(np.mean([sum(math.exp(lp) for lp in s.top_logprobs)
                                          for s in steps])),
        "mean sampled logprob": float(np.mean([s.logprob for s in steps])),
    }


def auc(a: Sequence[float], b: Sequence[float]) -> float:
    """P(a value of ``a`` > one of ``b``) + half the ties: 0.5 when nothing tells them apart."""
    x, y = np.array(a)[:, None], np.array(b)[None, :]
    return float((x > y).mean() + 0.5 * (x == y).mean())


def rescore_distance(real: bytes, recorded: bytes) -> float:
    """The distance a validator whose logprobs are ``real``'s measures against ``recorded``
    (apinode/validation/figures.py, as when the ids agree)."""
    _, mine = artifact.decode(real)
    _, theirs = artifact.decode(recorded)
    scored = [ScoredPosition(TokenStep(m.token_id, m.logprob, m.top_ids, m.top_logprobs), None)
              for m in mine]
    return float(np.mean([position_distance(r, s) for r, s in zip(theirs, scored,
                                                                  strict=True)]))


def measure(dtype: str) -> list[list[str]]:
    """One row per feature for ``dtype``."""
    honest = honest_artifacts(dtype)
    threshold = threshold_micro(dtype)
    quanta = canary.shift_quanta(threshold, K)
    shifted = [canary.shift(a, bench_key(i), quanta) for i, a in enumerate(honest)]
    closest = min(rescore_distance(a, s) for a, s in zip(honest, shifted, strict=True))
    mine = [features(a, quanta) for a in honest]
    theirs = [features(s, quanta) for s in shifted]
    naive = [features(uniform_shift(a, quanta), quanta) for a in honest]
    rows = []
    for name in mine[0]:
        rows.append([dtype, name, str(quanta), f"{closest * PPM / threshold:.1f}",
                     f"{auc([f[name] for f in mine], [f[name] for f in theirs]):.3f}",
                     f"{auc([f[name] for f in mine], [f[name] for f in naive]):.3f}"])
    told = np.mean([f[NEAR_CERTAIN] > 0 for f in mine])
    rows.append([dtype, "honest artifacts the naive shift's tell clears", "", "", "0 %",
                 f"{told:.0%}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection.canaries",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args(argv)
    rows = [row for dtype in args.dtype or list(SCENARIOS) for row in measure(dtype)]
    print("\n".join(table(["dtype", "feature", "shift (quanta)",
                           "honest re-score, least (thresholds)", "AUC: canary shift",
                           "AUC: naive shift"], rows, 2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
