"""The seeded sampling rule for a whole decode batch at once, on the model's device.

``mlnode.sampling`` states the rule for one position and stays the reference (the CPU engine
and every validator run it). This module evaluates the same arithmetic for every row of a
batch in a fixed sequence of tensor operations, with each row's request held in per-slot
tensors instead of Python branches, so that a decode step needs no host round trip per row
and can be recorded in a CUDA graph:

- the grammar mask, then ``logits - presence·[count > 0] - frequency·count + bias`` in
  float32 (a request without a transform has zero penalties and biases, which leave every
  logit as it is);
- greedy rows take the argmax of those logits;
- the others: softmax of logits / temperature (divided as the reference divides on that
  device), top-k (a row without one keeps all tokens),
  top-p over the descending stable order (a row with top_p = 1 keeps all), renormalised;
  a batch in which no row truncates skips the sort and the top-p scan, which then keep
  every token and change no value (a sort over the vocabulary is the draw's largest cost);
  the float64 cumulative sum in id order, normalised to end at 1, and the first token whose
  cumulative probability exceeds u_i.

Elementwise steps are the reference's operations on the same float32 values, and the sums
and cumulative sums that decide top-p and the CDF run on each 1-D row, as the reference runs
them: given the same logits, the batched draw and ``sampling.draw`` compute the same
numbers. What can still differ is the logits themselves (another attention kernel over the
static cache rounds differently), and a token only where u_i lies within that rounding of a
CDF boundary; the GPU bench counts both paths' equal tokens.
"""

from dataclasses import dataclass

import torch

from mlnode.sampling_params import SamplingParams


@dataclass
class RuleRows:
    """Each slot's request as tensors; a decode step reads rows ``[:batch]``."""

    temperature: torch.Tensor  # float32 [slots], 1 for greedy rows (unused there)
    greedy: torch.Tensor  # bool [slots]
    top_k: torch.Tensor  # int64 [slots], the vocabulary size when the request has no top-k
    top_p: torch.Tensor  # float32 [slots]
    nucleus: torch.Tensor  # bool [slots], top_p < 1
    presence: torch.Tensor  # float32 [slots]
    frequency: torch.Tensor  # float32 [slots]
    bias: torch.Tensor  # float32 [slots, vocab]
    counts: torch.Tensor  # float32 [slots, vocab], output tokens so far
    allowed: torch.Tensor  # bool [slots, vocab], the grammar's mask (all True without one)
    u: torch.Tensor  # float64 [slots], u_i of the position being drawn

    @classmethod
    def empty(cls, slots: int, vocab: int, device: torch.device) -> "RuleRows":
        def new(*shape: int, dtype: torch.dtype) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        return cls(new(slots, dtype=torch.float32), new(slots, dtype=torch.bool),
                   new(slots, dtype=torch.int64), new(slots, dtype=torch.float32),
                   new(slots, dtype=torch.bool), new(slots, dtype=torch.float32),
                   new(slots, dtype=torch.float32), new(slots, vocab, dtype=torch.float32),
                   new(slots, vocab, dtype=torch.float32), new(slots, vocab, dtype=torch.bool),
                   new(slots, dtype=torch.float64))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(vars(self).values())

    def set(self, slot: int, params: SamplingParams) -> None:
        """Loads one request into ``slot``, with no output tokens counted yet."""
        vocab = self.bias.shape[1]
        self.temperature[slot] = 1.0 if params.greedy else params.temperature
        self.greedy[slot] = params.greedy
        self.top_k[slot] = params.top_k if 0 < params.top_k < vocab else vocab
        self.top_p[slot] = params.top_p
        self.nucleus[slot] = params.top_p < 1.0
        self.presence[slot] = params.presence_penalty
        self.frequency[slot] = params.frequency_penalty
        self.bias[slot] = 0.0
        if params.logit_bias:
            ids = torch.tensor([t for t, _ in params.logit_bias], device=self.bias.device)
            self.bias[slot, ids] = torch.tensor([b for _, b in params.logit_bias],
                                                dtype=torch.float32, device=self.bias.device)
        self.counts[slot] = 0.0
        self.allowed[slot] = True

    def move(self, source: torch.Tensor, target: torch.Tensor) -> None:
        """Copies slots ``source`` into slots ``target`` (index tensors), every field."""
        for tensor in self.tensors():
            tensor[target] = tensor[source]


def truncates(params: SamplingParams, vocab: int) -> bool:
    """Whether a request's top-k or top-p can drop tokens from its distribution."""
    return 0 < params.top_k < vocab or params.top_p < 1.0


def pick(logits: torch.Tensor, rows: RuleRows, start: int, k: int, truncate: bool = True
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draws a token for each row of ``logits`` ([batch, vocab]), row r being slot
    ``start + r``; returns the tokens, their raw logprobs and the raw top-``k`` ids and
    logprobs, all on the device. ``truncate`` False promises that no row has a top-k or
    top-p (``truncates``), and draws the same tokens without sorting."""
    end = start + logits.shape[0]
    logits = logits.float()
    masked = logits.masked_fill(~rows.allowed[start:end], float("-inf"))
    counts = rows.counts[start:end]
    adjusted = masked - rows.presence[start:end, None] * (counts > 0).float()
    adjusted = adjusted - rows.frequency[start:end, None] * counts
    adjusted = adjusted + rows.bias[start:end]
    best = torch.argmax(adjusted, dim=-1)

    temperature = rows.temperature[start:end, None]
    # The reference divides by a Python float: CUDA turns that into a product with its float32
    # reciprocal, the CPU divides; each device here repeats what the reference does there.
    scaled = adjusted * temperature.reciprocal() if logits.is_cuda else adjusted / temperature
    probs = torch.softmax(scaled, dim=-1)
    if truncate:
        ordered, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        kth = ordered.gather(1, rows.top_k[start:end, None] - 1)
        probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
        ordered = torch.where(ordered >= kth, ordered, torch.zeros_like(ordered))
        cdf = torch.stack([_row_cdf(probs[r], ordered[r], order[r], rows.top_p[start + r],
                                    rows.nucleus[start + r]) for r in range(probs.shape[0])])
    else:
        cdf = torch.stack([_cdf(probs[r]) for r in range(probs.shape[0])])
    drawn = torch.searchsorted(cdf, rows.u[start:end, None], right=True).squeeze(1)
    drawn = drawn.clamp(max=cdf.shape[1] - 1)
    token = torch.where(rows.greedy[start:end], best, drawn)

    logprobs = torch.log_softmax(logits, dim=-1)
    chosen = logprobs.gather(1, token[:, None]).squeeze(1)
    top_values, top_ids = torch.topk(logprobs, k, dim=-1)
    return token, chosen, top_ids, top_values


def _row_cdf(probs: torch.Tensor, ordered: torch.Tensor, order: torch.Tensor,
             top_p: torch.Tensor, nucleus: torch.Tensor) -> torch.Tensor:
    """One row's top-p, renormalisation and CDF, each sum and cumulative sum over the 1-D row
    as the reference takes it: the same kernels, so the same rounding (CUDA scans a 1-D
    tensor with another algorithm than the rows of a 2-D one). Inside a CUDA graph the extra
    launches per row cost little."""
    before = torch.cumsum(ordered, dim=0) - ordered
    keep_sorted = (before < top_p * ordered.sum()) | ~nucleus
    keep = torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)
    return _cdf(torch.where(keep, probs, torch.zeros_like(probs)))


def _cdf(probs: torch.Tensor) -> torch.Tensor:
    """One row's kept probabilities renormalised, and their float64 CDF ending at 1."""
    probs = probs / probs.sum()
    cdf = torch.cumsum(probs.double(), dim=0)
    return cdf / cdf[-1]


def count(rows: RuleRows, start: int, token: torch.Tensor) -> None:
    """Counts each row's new token for the penalties of the positions after it."""
    counts = rows.counts[start:start + token.shape[0]]
    counts.scatter_add_(1, token[:, None], torch.ones_like(token[:, None], dtype=counts.dtype))
