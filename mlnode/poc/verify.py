"""A validator's check of a participant's claimed nonces: re-compute a public sample.

The sample is the `sample_size` claims whose sha256(sample_seed ‖ nonce) is smallest. The
sample seed should be public and unknown while the participant computes (a later block's
hash), so the participant cannot know which claims will be checked, and every validator
with the same seed checks the same claims, whatever order the claims arrive in.

A sampled claim passes when the re-computed distance is under target + tolerance and
within tolerance of the claimed distance. The tolerance covers float rounding between the
prover's device and dtype and the validator's (it is measured by ``bench/poc_bench.py``; see
docs/mlnode.md). It is also what a cheater gains: claiming nonces whose true distance lies in
[target, target + tolerance) would pass, so it must stay small beside the spread of distances.
"""

import hashlib
import struct
from collections.abc import Sequence

from mlnode.poc.model import PocModel
from mlnode.poc.nonces import default_batch_size, distances
from mlnode.types import PocCheck, PocNonce, VerifyReport

# Measured (bench/results/poc-gpu.md): fp32 distances differ between an H200 and a CPU by at
# most 3.6e-7; 1e-5 leaves a 28x margin and lets a cheater slip in nonces worth < 0.1 % of
# its weight. bf16 provers land up to 1.9e-3 away and need a tolerance passed explicitly.
DEFAULT_TOLERANCE = 1e-5


def sample_claims(claimed: Sequence[PocNonce], sample_size: int, sample_seed: bytes
                  ) -> list[PocNonce]:
    """The claims a validator re-computes: the `sample_size` smallest by
    sha256(sample_seed ‖ nonce), so the choice depends on the nonces alone, not their order."""
    def rank(claim: PocNonce) -> bytes:
        return hashlib.sha256(sample_seed + struct.pack(">Q", claim.nonce)).digest()

    return sorted(claimed, key=rank)[:sample_size]


def verify(model: PocModel, claimed: Sequence[PocNonce], target_distance: float,
           sample_size: int, sample_seed: bytes, tolerance: float = DEFAULT_TOLERANCE
           ) -> VerifyReport:
    """Re-computes a deterministic sample of the claims on this validator's model."""
    seen: set[int] = set()
    duplicates = sorted({c.nonce for c in claimed if c.nonce in seen or seen.add(c.nonce)})
    sample = sample_claims(claimed, sample_size, sample_seed)
    batch = default_batch_size(model)
    recomputed = [d for start in range(0, len(sample), batch)
                  for d in distances(model, [c.nonce for c in sample[start:start + batch]])]
    checks = [PocCheck(c.nonce, c.distance, r,
                       ok=c.distance < target_distance and r < target_distance + tolerance
                       and abs(r - c.distance) <= tolerance)
              for c, r in zip(sample, recomputed, strict=True)]
    return VerifyReport(checks, duplicates)
