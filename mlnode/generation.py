"""One request's generation state: which token comes next, what to stream, when to stop.

The scheduler hands each request its row of logits after every forward pass; everything a
request decides for itself (the seeded draw, its logprobs, stop conditions, text) lives here,
so the batching loop carries no per-request bookkeeping.
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from mlnode.detokenizer import StreamText
from mlnode.engine import Finished, TokenStep
from mlnode.sampling import SamplingParams, draw

Event = TokenStep | Finished | BaseException


def top_logprobs(logprobs: torch.Tensor, k: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The k most likely token ids and their logprobs, most likely first."""
    if k == 0:
        return (), ()
    values, ids = torch.topk(logprobs, k)
    return tuple(ids.tolist()), tuple(values.tolist())


@dataclass
class Generation:
    prompt_ids: Sequence[int]
    params: SamplingParams
    top_k: int
    eos_ids: frozenset[int]
    text: StreamText
    sink: Callable[[Event], None]
    output_ids: list[int] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def advance(self, logits: torch.Tensor) -> bool:
        """Draws the next token from this row's logits, streams it; True when finished."""
        token = draw(logits, self.params, len(self.output_ids))
        logprobs = torch.log_softmax(logits, dim=-1)
        ids, values = top_logprobs(logprobs, self.top_k)
        self.output_ids.append(token)
        finish = None
        if token in self.eos_ids:
            finish, delta = "stop", self.text.flush(self.output_ids[:-1])
        else:
            delta = self.text.push(self.output_ids)
            if self.text.stopped:
                finish = "stop"
            elif len(self.output_ids) >= self.params.max_tokens:
                finish, delta = "length", delta + self.text.flush(self.output_ids)
        self.sink(TokenStep(token, float(logprobs[token]), ids, values, delta))
        if finish:
            self.sink(Finished(finish))
        return finish is not None
