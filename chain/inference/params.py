"""Inference params: every number of the inference lifecycle, set in genesis."""

from dataclasses import dataclass
from typing import ClassVar

from chain.errors import InvalidRequest
from chain.params import ModuleParams

KEY = b"inference/params"


@dataclass(frozen=True)
class InferenceParams(ModuleParams):
    module = "inference"
    governable: ClassVar[frozenset[str]] = frozenset({
        "expiration_blocks", "top_k", "max_prompt_tokens", "max_output_tokens",
        "default_price_per_token", "max_draw_age_blocks", "max_attempts",
        "request_time_window_s", "genesis_weight"})
    # Blocks a lone Start or Finish waits for its partner before the inference expires.
    expiration_blocks: int = 20
    top_k: int = 5
    max_prompt_tokens: int = 4096
    max_output_tokens: int = 2048
    default_price_per_token: int = 100
    # How old the block whose hash seeds the draw may be, and how deep the fallback goes.
    max_draw_age_blocks: int = 10
    max_attempts: int = 3
    # Seconds a developer's request signature stays valid around the block time.
    request_time_window_s: int = 600
    # Weight each participant has until the epochs module sets weights.
    genesis_weight: int = 100

    def __post_init__(self) -> None:
        self.check_integers()
        if self.max_attempts < 1 or self.expiration_blocks < 1:
            raise InvalidRequest("inference params max_attempts and expiration_blocks must be "
                                 "at least 1")
