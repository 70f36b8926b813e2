"""The engine interface every model backend implements (DESIGN.md §5).

The gRPC service and the benchmarks talk to engines only through this interface, so the
default ``torch`` engine and the production ``vllm`` engine are interchangeable.
"""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from mlnode.chat_tokenizer import ChatTokenizer
from mlnode.rule_check import RuleCheck
from mlnode.sampling import SamplingParams


class InvalidRequest(ValueError):
    """A request the engine refuses; the message names the offending field."""


@dataclass(frozen=True)
class TokenStep:
    """One output position: the token, its raw logprob and the top-k alternatives."""

    token_id: int
    logprob: float
    top_ids: tuple[int, ...]
    top_logprobs: tuple[float, ...]
    text: str = ""


@dataclass(frozen=True)
class Finished:
    """Ends a generation stream; ``reason`` is "stop" or "length"."""

    reason: str


@dataclass(frozen=True)
class ScoredPosition:
    """Score's answer for one output position, with the sampling-rule facts when asked."""

    step: TokenStep
    rule: RuleCheck | None


@dataclass(frozen=True)
class EngineInfo:
    model_id: str
    weights_sha256: str
    dtype: str
    device: str
    engine: str
    context_length: int
    vocab_size: int
    max_top_logprobs: int
    eos_token_id: int


@dataclass(frozen=True)
class Load:
    """How busy the engine is, for health checks and routing."""

    queued: int
    running: int


class Engine(Protocol):
    info: EngineInfo
    tokenizer: ChatTokenizer

    def generate(
        self, prompt_ids: Sequence[int], sampling: SamplingParams, top_logprobs: int
    ) -> AsyncIterator[TokenStep | Finished]:
        """Streams one TokenStep per output token, then one Finished."""

    async def score(
        self,
        prompt_ids: Sequence[int],
        output_ids: Sequence[int],
        top_logprobs: int,
        sampling: SamplingParams | None,
    ) -> list[ScoredPosition]:
        """Teacher-forced: every output position's logprob and top-k from one forward pass."""

    def load(self) -> Load: ...

    def close(self) -> None: ...
