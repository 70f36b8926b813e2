"""What makes a model registry entry valid: the one rule for genesis, its template and proposals.

A model reaches the registry three ways (the genesis template a person writes, the genesis
file the chain reads, a governance proposal), and all three hold it to this rule, so no way
in admits a model another would refuse.
"""

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from chain.inference.params import MAX_TOP_K
from inferchain_pb.inference.v1.inference_pb2 import Model

MODEL_ID = re.compile(r"[\w.:/-]{1,128}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MODEL_FIELDS = frozenset(field.name for field in Model.DESCRIPTOR.fields)
# The precisions a model can be registered to be served in (docs/design.md §2).
# Below 1,000,000, so one report of distance 0 never zeroes an executor's evidence wealth.
MAX_BET_PPM = 999_999
SERVING_DTYPES = ("float32", "bfloat16", "float16")
# The calibrated per-inference distance threshold D for each serving dtype, used when a
# genesis entry gives none: 1.5× the largest honest distance with executor and validator in
# that dtype, rounded up (docs/verification.md, "Per serving dtype"). fp32 needs no
# half-precision slack. fp16 keeps 0.019, from CPU executors against an fp32 validator, over
# the 0.017 of H200 executors against an H200 fp16 validator: no executor and validator on
# different hardware were measured in fp16, and every int8 output lies above both.
DEFAULT_THRESHOLDS = {"float32": "0.00048", "bfloat16": "0.15", "float16": "0.019"}
# The evidence test's honest reference per serving dtype, (μ0 in micro-nats, bet in ppm):
# 1.25× the largest honest class mean with executor and validator in that dtype, and the bet
# that makes the int8 substitute's evidence grow fastest (docs/verification.md, "Per serving
# dtype"); fp16's from executors and validator on an H200 (bench/results/dtypes-fp16-h200.md).
DEFAULT_REFERENCES = {"float32": (304, 900_000), "bfloat16": (73_972, 900_000),
                      "float16": (8_183, 900_000)}
# The evidence test's second bet (reference_violations_ppm, violation_bet_ppm) is off by
# default in every dtype: fp32's rule allows no violation, so no passed check carries one to
# bet on, and a half-precision model's bet waits for a validator in its dtype to be measured
# (docs/verification.md, "The fp32 rule"). Governance turns it on for a model
# whose rule allows violations.
# A reference of violations per position above 1 is no reference (every position at most one).
MAX_VIOLATIONS_PPM = 1_000_000
# The seeded-rule check per serving dtype, (rule_tolerance_micro, greedy_tolerance_micro,
# max_rule_violations, rule_violations_per_1024) (docs/verification.md, "Per serving dtype").
# Half precision keeps the calibration that admits every honest bf16 and fp16 executor (CPU
# and H200): its logits' rounding moves sampled tokens' CDF intervals and greedy near-ties.
# No honest fp32 executor (CPU, 8 concurrent and one at a time, and H200) broke the rule at a
# tolerance of 10^-6 in 5,486 positions, so fp32 allows 10^-3 and no violation: a forgery's
# tokens then fail on the rule alone.
RULE_FIELDS = ("rule_tolerance_micro", "greedy_tolerance_micro", "max_rule_violations",
               "rule_violations_per_1024")
DEFAULT_RULES = {"float32": (1_000, 1_000, 0, 0), "bfloat16": (30_000, 100_000, 2, 8),
                 "float16": (30_000, 100_000, 2, 8)}
# Bounds of the rule fields: a probability, 100 nats, every position.
RULE_BOUNDS = {"rule_tolerance_micro": 1_000_000, "greedy_tolerance_micro": 100_000_000,
               "max_rule_violations": 1_024, "rule_violations_per_1024": 1_024}


def model_problems(fields: Mapping[str, object]) -> dict[str, str]:
    """Each invalid field of a registry entry with why, as ``{field: "must be …"}``.

    Only the fields given are checked: genesis fills the ones a template leaves out with
    valid defaults. Values must already have the registry's types (a decimal string for
    ``validation_threshold``, integers for the counts).
    """
    problems = {}
    if "id" in fields and not (isinstance(fields["id"], str)
                               and MODEL_ID.fullmatch(fields["id"])):
        problems["id"] = "must be 1 to 128 letters, digits or . _ : / -"
    if "weights_sha256" in fields and not (isinstance(fields["weights_sha256"], str)
                                           and SHA256_HEX.fullmatch(fields["weights_sha256"])):
        problems["weights_sha256"] = "must be 64 lower-case hex digits"
    for name in ("price_per_token", "context_length"):
        if name in fields and not _is_int_in(fields[name], 1, None):
            problems[name] = "must be an integer of at least 1"
    if "top_k" in fields and not _is_int_in(fields["top_k"], 1, MAX_TOP_K):
        problems["top_k"] = f"must be an integer from 1 to {MAX_TOP_K}"
    if "serving_dtype" in fields and fields["serving_dtype"] not in SERVING_DTYPES:
        problems["serving_dtype"] = f"must be one of {', '.join(SERVING_DTYPES)}"
    if "reference_distance_micro" in fields and not _is_int_in(
            fields["reference_distance_micro"], 0, None):
        problems["reference_distance_micro"] = "must be an integer of at least 0"
    for name in ("evidence_bet_ppm", "violation_bet_ppm"):
        if name in fields and not _is_int_in(fields[name], 0, MAX_BET_PPM):
            problems[name] = f"must be an integer from 0 to {MAX_BET_PPM}"
    if "reference_violations_ppm" in fields and not _is_int_in(
            fields["reference_violations_ppm"], 0, MAX_VIOLATIONS_PPM):
        problems["reference_violations_ppm"] = (f"must be an integer from 0 to "
                                                f"{MAX_VIOLATIONS_PPM}")
    for name, high in RULE_BOUNDS.items():
        if name in fields and not _is_int_in(fields[name], 0, high):
            problems[name] = f"must be an integer from 0 to {high}"
    if "validation_threshold" in fields and not _is_threshold(fields["validation_threshold"]):
        problems["validation_threshold"] = (f"must be a non-negative decimal string, got "
                                            f"{fields['validation_threshold']!r}")
    return problems


def with_default_rule(model: Model) -> Model:
    """``model`` with its dtype's calibrated rule when it states none (all four fields 0):
    a proposal or genesis entry that leaves the rule out gets what its dtype was measured to
    need, not the strictest rule, which would fail every honest half-precision executor."""
    if any(getattr(model, name) for name in RULE_FIELDS) or \
            model.serving_dtype not in DEFAULT_RULES:
        return model
    filled = Model()
    filled.CopyFrom(model)
    for name, value in zip(RULE_FIELDS, DEFAULT_RULES[model.serving_dtype], strict=True):
        setattr(filled, name, value)
    return filled


def model_error(model: Model) -> str | None:
    """The reasons ``model`` may not enter the registry, on one line; None when it may."""
    problems = model_problems({field.name: getattr(model, field.name)
                               for field in Model.DESCRIPTOR.fields})
    return "; ".join(f"{name} {why}" for name, why in problems.items()) or None


def _is_int_in(value: object, low: int, high: int | None) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _is_threshold(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        threshold = Decimal(value)
    except InvalidOperation:
        return False
    return threshold.is_finite() and threshold >= 0
