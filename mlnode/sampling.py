"""The seeded, replayable sampling rule (docs/design.md §4), shared by executor and validator.

At output position ``i`` the rule first adjusts the logits (``adjust``: OpenAI's presence and
frequency penalties on the output tokens before ``i``, then the logit biases), then draws
``u_i = H(seed, i)`` in [0, 1) and picks the token whose cumulative probability, over tokens
in id order after temperature, top-k and top-p, first exceeds ``u_i``. Because ``u_i`` is
public once the seed is, anyone who recomputes the distribution can check that every sampled
token is the one the rule picks, up to float rounding. Temperature 0 is the argmax of the
adjusted logits. Keeping the rule in one small module is what makes the
executor's and the validator's arithmetic the same.
"""

import hashlib
import struct
from collections.abc import Sequence

import torch

from mlnode.rule_check import RuleCheck
from mlnode.sampling_params import SamplingParams

_U_BITS = 53


def uniform(seed: int, position: int) -> float:
    """u_i = H(seed, i): the top 53 bits of sha256(seed ‖ i) as a double in [0, 1)."""
    digest = hashlib.sha256(struct.pack(">QQ", seed, position)).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - _U_BITS)) / float(1 << _U_BITS)


def adjust(logits: torch.Tensor, params: SamplingParams,
           previous: Sequence[int] = ()) -> torch.Tensor:
    """One position's logits after the request's transform, in float32: OpenAI's
    ``logits[t] -= presence·[count(t) > 0] + frequency·count(t)``, counting ``t`` among the
    ``previous`` output tokens (never the prompt), then ``logits[t] += bias[t]``.

    The one place a request may change the logits before the draw, so executor and
    validator apply the very same arithmetic; a further transform (a constraint mask)
    belongs next to this one.
    """
    adjusted = logits.float()
    if not params.transforms:
        return adjusted
    adjusted = adjusted.clone()
    if previous and (params.presence_penalty or params.frequency_penalty):
        ids = torch.tensor(list(previous), dtype=torch.long, device=adjusted.device)
        counts = torch.bincount(ids, minlength=adjusted.numel())[:adjusted.numel()].float()
        adjusted -= params.presence_penalty * (counts > 0).float()
        adjusted -= params.frequency_penalty * counts
    if params.logit_bias:
        ids = torch.tensor([t for t, _ in params.logit_bias], dtype=torch.long,
                           device=adjusted.device)
        biases = torch.tensor([b for _, b in params.logit_bias], dtype=torch.float32,
                              device=adjusted.device)
        adjusted.index_add_(0, ids, biases)
    return adjusted


def distribution(logits: torch.Tensor, params: SamplingParams,
                 previous: Sequence[int] = ()) -> torch.Tensor:
    """The probabilities the rule samples from, for one position's logits (shape [vocab])
    after ``previous`` output tokens.

    Computed in float32 whatever the model's dtype, so that executor and validator differ
    only by the rounding of the logits themselves.
    """
    scaled = adjust(logits, params, previous) / params.temperature
    probs = torch.softmax(scaled, dim=-1)
    if params.top_k and params.top_k < probs.numel():
        kth = torch.topk(probs, params.top_k).values[-1]
        probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
    if params.top_p < 1.0:
        ordered, order = torch.sort(probs, descending=True, stable=True)
        before = torch.cumsum(ordered, dim=-1) - ordered
        keep_sorted = before < params.top_p * ordered.sum()
        keep = torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)
        probs = torch.where(keep, probs, torch.zeros_like(probs))
    return probs / probs.sum()


def cumulative(probs: torch.Tensor) -> torch.Tensor:
    """Cumulative probability in token-id order, in float64 and normalised to end at 1."""
    cdf = torch.cumsum(probs.double(), dim=-1)
    return cdf / cdf[-1]


def grammar_mask(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """The logits with every token the request's grammar forbids at -inf (mlnode/grammar.py);
    ``allowed`` is None for a request without a grammar. A forbidden token has probability 0
    whatever the transform adds to it, so it is never the rule's pick."""
    if allowed is None:
        return logits
    return logits.masked_fill(~allowed.to(logits.device), float("-inf"))


def draw(logits: torch.Tensor, params: SamplingParams, position: int,
         previous: Sequence[int] = (), allowed: torch.Tensor | None = None) -> int:
    """The token the rule picks at ``position`` from one position's logits, after the
    ``previous`` output tokens (the penalties count them), among the tokens the grammar
    ``allowed``."""
    logits = grammar_mask(logits, allowed)
    if params.greedy:
        return int(torch.argmax(adjust(logits, params, previous)))
    cdf = cumulative(distribution(logits, params, previous))
    u = torch.tensor([uniform(params.seed, position)], dtype=torch.float64, device=cdf.device)
    index = int(torch.searchsorted(cdf, u, right=True))
    return min(index, cdf.numel() - 1)


def locate(logits: torch.Tensor, params: SamplingParams, position: int, token: int,
           previous: Sequence[int] = (), allowed: torch.Tensor | None = None) -> RuleCheck:
    """Facts a validator needs to judge whether ``token`` obeys the rule at ``position``,
    after the ``previous`` output tokens and with the grammar's ``allowed`` tokens: a
    forbidden token gets an empty interval and a gap of -inf, so it never obeys the rule."""
    logits = grammar_mask(logits, allowed)
    adjusted = adjust(logits, params, previous)
    logprobs = torch.log_softmax(adjusted, dim=-1)
    gap = float(logprobs[token] - logprobs.max())
    if params.greedy:
        return RuleCheck(0.0, 0.0, 0.0, gap)
    cdf = cumulative(distribution(logits, params, previous))
    high = float(cdf[token])
    low = float(cdf[token - 1]) if token > 0 else 0.0
    return RuleCheck(low, high, uniform(params.seed, position), gap)
