"""The engine interface every model backend implements (docs/design.md §9).

The gRPC service and the benchmarks talk to engines only through this interface, so the
default ``torch`` engine and the production ``vllm`` engine are interchangeable.
"""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mlnode.chat_tokenizer import ChatTokenizer
from mlnode.sampling import SamplingParams
from mlnode.types import EngineInfo, Finished, ScoredPosition, TokenStep

if TYPE_CHECKING:
    from mlnode.grammar import Grammars


class InvalidRequest(ValueError):
    """A request the engine refuses; the message names the offending field."""


@dataclass(frozen=True)
class Load:
    """How busy the engine is, for health checks and routing."""

    queued: int
    running: int


class Engine(Protocol):
    info: EngineInfo
    tokenizer: ChatTokenizer
    grammars: "Grammars"

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
