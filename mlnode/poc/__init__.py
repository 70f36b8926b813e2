"""Proof of compute (docs/design.md §7.2): the ML node's part of the epoch's PoC sprint.

At the start of an epoch each ML node evaluates a transformer with random weights on many
nonces. Weights, inputs and the target direction all derive from ``seed = sha256(epoch block
hash ‖ participant address)`` (``mlnode/poc_seed.py``, outside this package so the API node
uses it without torch), so the work cannot be done before the block exists nor shared
between participants. A nonce counts when the model's normalised output lies within
``target_distance`` of the target (``nonces.py``); validators re-compute a sample of the
claimed nonces (``verify.py``). Everything random comes from an integer counter hash
(``counter_rng.py``) that gives bit-identical float32 weights on CPU and GPU, so the only
CPU-vs-GPU difference left is float rounding in the forward pass.
"""

from mlnode.poc.model import PocModel
from mlnode.poc.nonces import compute, compute_batches
from mlnode.poc.presets import DEFAULT_TARGETS, PRESETS
from mlnode.poc.target import expected_acceptance
from mlnode.poc.verify import sample_claims, verify
from mlnode.poc_seed import poc_seed

__all__ = ["DEFAULT_TARGETS", "PRESETS", "PocModel", "compute", "compute_batches",
           "expected_acceptance", "poc_seed", "sample_claims", "verify"]
