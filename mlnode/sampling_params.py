"""What a request asks of the seeded sampler, without torch.

Kept apart from the rule itself so that clients of the ML node (the API node) can build and
check sampling parameters without importing torch.
"""

from dataclasses import dataclass

# The longest stop sequence any engine or gateway accepts.
MAX_STOP_LENGTH = 256
# Grammar kinds an ML node builds (mlnode/grammar.py); "" is no grammar.
GRAMMAR_KINDS = ("", "json_schema", "structural_tag")
# The longest grammar text (canonical JSON) any engine, gateway or start accepts.
MAX_GRAMMAR_LENGTH = 32768
# OpenAI's bounds on the logit transform: penalties in [-2, 2], biases in [-100, 100], at most
# 300 biased tokens (the chain holds starts to the same, chain/inference/params.py).
MAX_PENALTY = 2.0
MAX_LOGIT_BIAS = 100.0
MAX_LOGIT_BIAS_ENTRIES = 300


@dataclass(frozen=True)
class SamplingParams:
    """What a request asks of the sampler; validated by ``mlnode.limits``."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 16
    stop: tuple[str, ...] = ()
    seed: int = 0
    # Grammar-constrained decoding: GRAMMAR_KINDS and the grammar's canonical JSON text.
    grammar_kind: str = ""
    grammar: str = ""
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    # (token id, bias) pairs, token ids strictly ascending.
    logit_bias: tuple[tuple[int, float], ...] = ()

    @property
    def transforms(self) -> bool:
        """Whether the rule adjusts the logits before temperature (docs/design.md §4)."""
        return bool(self.presence_penalty or self.frequency_penalty or self.logit_bias)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0
