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
from mlnode.grammar import GrammarState
from mlnode.sampling import SamplingParams, draw
from mlnode.types import Finished, TokenStep

Event = TokenStep | Finished | BaseException


def id_set(value: int | Sequence[int] | None) -> frozenset[int]:
    """EOS ids as configs give them: one id, a list, or none."""
    if value is None:
        return frozenset()
    return frozenset([value]) if isinstance(value, int) else frozenset(value)


def after_token(text: StreamText, output_ids: Sequence[int], eos_ids: frozenset[int],
                max_tokens: int) -> tuple[str, str | None]:
    """The text a new last token adds and, if it ends the output, why ("stop" or "length")."""
    if output_ids[-1] in eos_ids:
        return text.flush(output_ids[:-1]), "stop"
    delta = text.push(output_ids)
    if text.stopped:
        return delta, "stop"
    if len(output_ids) >= max_tokens:
        return delta + text.flush(output_ids), "length"
    return delta, None


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
    grammar: GrammarState | None = None
    output_ids: list[int] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def advance(self, logits: torch.Tensor) -> bool:
        """Draws the next token from this row's logits, among those the grammar allows,
        streams it; True when finished."""
        allowed = self.grammar.allowed() if self.grammar else None
        token = draw(logits, self.params, len(self.output_ids), self.output_ids, allowed)
        logprobs = torch.log_softmax(logits, dim=-1)
        ids, values = top_logprobs(logprobs, self.top_k)
        return self.record(token, float(logprobs[token]), ids, values)

    def record(self, token: int, logprob: float, ids: tuple[int, ...],
               values: tuple[float, ...]) -> bool:
        """Takes ``token``, drawn by the rule elsewhere (on the device, for a whole batch),
        with its raw logprob and this request's top-k; streams it; True when finished."""
        if self.grammar:
            self.grammar.accept(token)
        self.output_ids.append(token)
        delta, finish = after_token(self.text, self.output_ids, self.eos_ids,
                                    self.params.max_tokens)
        self.sink(TokenStep(token, logprob, ids, values, delta))
        if finish:
            self.sink(Finished(finish, len(self.prompt_ids)))
        return finish is not None
