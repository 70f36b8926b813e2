"""The PoC transformer's preset shapes, and the target distance each one needs."""

from mlnode.types import PocModelSpec

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
