"""The PoC transformer's shape: a chain param, so every participant and validator agree."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PocModelSpec:
    """A pre-norm decoder stack; the input is `seq_len` vectors of size `hidden` per nonce.

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

    @property
    def flops_per_nonce(self) -> int:
        """Matrix-multiply FLOPs of one nonce's forward pass, attention scores included."""
        attention = 2 * 2 * self.seq_len ** 2 * self.hidden * self.layers
        return 2 * self.seq_len * self.parameters + attention


PRESETS: dict[str, PocModelSpec] = {
    # Local network and tests: thousands of nonces/s on 2 CPU cores.
    "tiny": PocModelSpec(hidden=128, layers=4, heads=4, ffn=344, seq_len=16),
    # Llama-2-7B's decoder stack (hidden 4096, 32 layers, 32 heads, SwiGLU 11008; 6.5 B
    # weights, 26 GB in fp32, 13 GB in bf16): fits one H100/H200 in either dtype.
    "realistic": PocModelSpec(hidden=4096, layers=32, heads=32, ffn=11008, seq_len=128),
}

# Chain-param defaults for each preset's target distance: about 3 % of nonces accepted
# (mlnode/poc/target.py: 2.86 % at hidden 128, 3.0 % at hidden 4096). The rate for a given
# distance falls with the hidden size, so each shape needs its own.
DEFAULT_TARGETS: dict[str, float] = {"tiny": 1.29, "realistic": 1.393}
