"""What crosses the ML node's boundary, declared once for the engines and the API node's client.

An engine yields these, the gRPC service turns them into protobuf, and the API node's client
(``apinode.mlnode_client``) turns the protobuf back into the same types, so both sides speak of
one ``TokenStep``, one ``Finished`` and so on. Nothing here imports torch: the API node imports
this module on hosts without it.
"""

from dataclasses import dataclass

from mlnode.rule_check import RuleCheck

# The largest gRPC message either side sends or accepts: a Score of a long output with k = 20
# is well over gRPC's default 4 MiB.
MAX_MESSAGE_BYTES = 64 << 20


@dataclass(frozen=True)
class TokenStep:
    """One generated (or scored) position: the token, its raw logprob, the top alternatives
    most likely first, and the text the token adds to the output."""

    token_id: int
    logprob: float
    top_ids: tuple[int, ...]
    top_logprobs: tuple[float, ...]
    text: str = ""


@dataclass(frozen=True)
class Finished:
    """Ends a generation stream: ``reason`` is "stop" (EOS or a stop sequence) or "length"."""

    reason: str
    prompt_tokens: int


@dataclass(frozen=True)
class ScoredPosition:
    """Score's answer for one output position; ``rule`` (where the token sits for the seeded
    sampling rule) is there when the Score asked with sampling params, else None, and so is
    ``eos``: where the engine's EOS token sits at the same position, so a validator can tell
    that the rule picked EOS there and the output should have ended."""

    step: TokenStep
    rule: RuleCheck | None
    eos: RuleCheck | None = None


@dataclass(frozen=True)
class Tokenized:
    """Token ids and the text they encode (the rendered chat template, for chat input)."""

    ids: list[int]
    text: str


@dataclass(frozen=True)
class EngineInfo:
    """What the ML node serves: the executor compares it with the chain's model registry."""

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
class PocModelSpec:
    """The PoC transformer's shape (the chain's epochs params ``poc_hidden`` … ``poc_seq_len``):
    a pre-norm decoder stack whose input is ``seq_len`` vectors of size ``hidden`` per nonce.

    Cost per nonce is about 2 · seq_len · layers · (4·hidden² + 3·hidden·ffn) FLOPs plus the
    attention, so the spec is what sets how much work one nonce proves.
    """

    hidden: int
    layers: int
    heads: int
    ffn: int
    seq_len: int

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "heads", "ffn", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"spec.{name} must be at least 1")
        if self.hidden % self.heads:
            raise ValueError(f"spec.hidden ({self.hidden}) must be a multiple of spec.heads "
                             f"({self.heads})")

    @property
    def parameters(self) -> int:
        """Weights in the stack (no embeddings: inputs are vectors, not tokens)."""
        return self.layers * (4 * self.hidden ** 2 + 3 * self.hidden * self.ffn)


@dataclass(frozen=True)
class PocNonce:
    """A nonce and the distance its output landed at (a claim, when sent to validators)."""

    nonce: int
    distance: float


@dataclass(frozen=True)
class PocProgress:
    """One chunk of a proof-of-compute stream: the nonces it accepted (ascending) and the
    running totals over the whole request."""

    accepted: tuple[PocNonce, ...]
    computed: int
    accepted_total: int


@dataclass(frozen=True)
class PocCheck:
    """One sampled claim re-computed: what was claimed, what came out, and whether it holds."""

    nonce: int
    claimed: float
    recomputed: float
    ok: bool


@dataclass(frozen=True)
class VerifyReport:
    """A verification of claimed nonces: every sampled check, and the nonces claimed twice."""

    checks: list[PocCheck]
    duplicates: list[int]  # nonces claimed more than once: each counts once at most

    @property
    def failed(self) -> int:
        return sum(not c.ok for c in self.checks)

    @property
    def passed(self) -> bool:
        return not self.duplicates and self.failed == 0

    @property
    def max_deviation(self) -> float:
        """Largest |recomputed - claimed| in the sample: how close honest devices agree."""
        return max((abs(c.recomputed - c.claimed) for c in self.checks), default=0.0)
