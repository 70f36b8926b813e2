"""Checks every request against the model's limits before it reaches an engine.

Engines share these checks so that a bad request gets the same INVALID_ARGUMENT message
whichever backend serves it, and never reaches the batch where it could hurt other requests.
"""

import math
from collections.abc import Sequence

from mlnode.engine import InvalidRequest
from mlnode.sampling_params import (
    MAX_LOGIT_BIAS,
    MAX_LOGIT_BIAS_ENTRIES,
    MAX_PENALTY,
    MAX_STOP_LENGTH,
    SamplingParams,
)
from mlnode.types import EngineInfo

MAX_TEMPERATURE = 100.0
MAX_STOP_SEQUENCES = 16


def check_ids(name: str, ids: Sequence[int], info: EngineInfo) -> None:
    if not ids:
        raise InvalidRequest(f"{name} is empty")
    bad = next((t for t in ids if not 0 <= t < info.vocab_size), None)
    if bad is not None:
        raise InvalidRequest(f"{name} holds unknown token id {bad} (vocabulary has "
                             f"{info.vocab_size} tokens)")


def check_top_logprobs(k: int, info: EngineInfo) -> None:
    if not 0 <= k <= info.max_top_logprobs:
        raise InvalidRequest(f"top_logprobs {k} is outside [0, {info.max_top_logprobs}]")


def check_sampling(params: SamplingParams, info: EngineInfo) -> None:
    if not math.isfinite(params.temperature) or not 0 <= params.temperature <= MAX_TEMPERATURE:
        raise InvalidRequest(f"temperature {params.temperature} is outside [0, {MAX_TEMPERATURE}]")
    if not math.isfinite(params.top_p) or not 0 < params.top_p <= 1:
        raise InvalidRequest(f"top_p {params.top_p} is outside (0, 1]")
    if not 0 <= params.top_k <= info.vocab_size:
        raise InvalidRequest(f"top_k {params.top_k} is outside [0, {info.vocab_size}]")
    if params.max_tokens < 1:
        raise InvalidRequest(f"max_tokens {params.max_tokens} must be at least 1")
    if len(params.stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"{len(params.stop)} stop sequences; at most {MAX_STOP_SEQUENCES}")
    if any(not s or len(s) > MAX_STOP_LENGTH for s in params.stop):
        raise InvalidRequest(f"stop sequences must be 1 to {MAX_STOP_LENGTH} characters")
    check_transforms(params, info)


def check_transforms(params: SamplingParams, info: EngineInfo) -> None:
    """The logit transform's bounds (OpenAI's), with every biased id in the vocabulary."""
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(params, name)
        if not math.isfinite(value) or not -MAX_PENALTY <= value <= MAX_PENALTY:
            raise InvalidRequest(f"{name} {value} is outside [-{MAX_PENALTY}, {MAX_PENALTY}]")
    if len(params.logit_bias) > MAX_LOGIT_BIAS_ENTRIES:
        raise InvalidRequest(f"{len(params.logit_bias)} logit biases; at most "
                             f"{MAX_LOGIT_BIAS_ENTRIES}")
    ids = [token for token, _ in params.logit_bias]
    if any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
        raise InvalidRequest("logit_bias token ids must be strictly ascending")
    if ids and ids[-1] >= info.vocab_size:
        raise InvalidRequest(f"logit_bias names unknown token id {ids[-1]} (vocabulary has "
                             f"{info.vocab_size} tokens)")
    if any(not math.isfinite(b) or not -MAX_LOGIT_BIAS <= b <= MAX_LOGIT_BIAS
           for _, b in params.logit_bias):
        raise InvalidRequest(f"logit biases must be in [-{MAX_LOGIT_BIAS}, {MAX_LOGIT_BIAS}]")


def check_generate(
    prompt_ids: Sequence[int], params: SamplingParams, top_logprobs: int, info: EngineInfo
) -> None:
    check_ids("prompt", prompt_ids, info)
    check_sampling(params, info)
    check_top_logprobs(top_logprobs, info)
    total = len(prompt_ids) + params.max_tokens
    if total > info.context_length:
        raise InvalidRequest(f"prompt ({len(prompt_ids)} tokens) plus max_tokens "
                             f"({params.max_tokens}) is {total}, over the context window of "
                             f"{info.context_length}")


def check_score(
    prompt_ids: Sequence[int],
    output_ids: Sequence[int],
    top_logprobs: int,
    params: SamplingParams | None,
    info: EngineInfo,
) -> None:
    check_ids("prompt", prompt_ids, info)
    check_ids("output", output_ids, info)
    check_top_logprobs(top_logprobs, info)
    if params is not None:
        check_sampling(params, info)
    total = len(prompt_ids) + len(output_ids)
    if total > info.context_length:
        raise InvalidRequest(f"prompt plus output is {total} tokens, over the context window "
                             f"of {info.context_length}")
