"""The random-weight transformer whose evaluations are the proof of compute.

A plain pre-norm decoder stack in the Llama layout (RMSNorm, causal multi-head attention,
SwiGLU feed-forward, residual adds) without embeddings or positional encodings: the input is a
sequence of vectors. Every weight is uniform with standard deviation 1/√fan_in, so each
sub-layer's output has about the variance of its input and no layer is negligible (skipping
one moves the output far beyond the verification tolerance). Norms have no learned gain.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

from mlnode.poc.counter_rng import uniform_tensor
from mlnode.poc_seed import derive_key
from mlnode.types import PocModelSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_NORM_EPS = 1e-5


@dataclass
class _Layer:
    qkv: torch.Tensor  # [3·hidden, hidden]
    out: torch.Tensor  # [hidden, hidden]
    gate_up: torch.Tensor  # [2·ffn, hidden]
    down: torch.Tensor  # [hidden, ffn]


def weight(seed: bytes, name: str, shape: tuple[int, int], device: torch.device | str,
           dtype: torch.dtype) -> torch.Tensor:
    """One weight matrix [out, in] from its own stream, generated in float32 on `device`
    (bit-identical everywhere) and then rounded to `dtype` (round-to-nearest-even, also
    identical everywhere)."""
    values = uniform_tensor(derive_key(seed, b"weight", name.encode()), shape,
                            std=1.0 / math.sqrt(shape[1]), device=device)
    return values.to(dtype)


class PocModel:
    """The transformer of one (spec, seed), materialised on one device in one dtype."""

    def __init__(self, spec: PocModelSpec, seed: bytes, device: torch.device | str = "cpu",
                 dtype: str = "float32", *, layers: list[_Layer] | None = None) -> None:
        """Generates the weights from the seed, unless `to` hands over converted `layers`."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.spec, self.seed = spec, seed
        self.device, self.dtype = torch.device(device), DTYPES[dtype]
        h, f = spec.hidden, spec.ffn
        self.layers = layers if layers is not None else [
            _Layer(qkv=weight(seed, f"layers.{i}.qkv", (3 * h, h), self.device, self.dtype),
                   out=weight(seed, f"layers.{i}.out", (h, h), self.device, self.dtype),
                   gate_up=weight(seed, f"layers.{i}.gate_up", (2 * f, h), self.device,
                                  self.dtype),
                   down=weight(seed, f"layers.{i}.down", (h, f), self.device, self.dtype))
            for i in range(spec.layers)]

    def to(self, device: torch.device | str, dtype: str = "float32") -> "PocModel":
        """This model's weights converted to another device and dtype. From a float32 model
        the result equals generating there (the generator is bit-identical everywhere), at
        the cost of a copy instead of the hashing."""
        target = DTYPES[dtype]
        return PocModel(self.spec, self.seed, device, dtype, layers=[
            _Layer(**{n: t.to(device, target) for n, t in vars(w).items()})
            for w in self.layers])

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, seq_len, hidden] inputs to [batch, hidden] unit-length float32 outputs."""
        return direction(self.layers_forward(x.to(self.dtype), 0, len(self.layers)))

    @torch.inference_mode()
    def layers_forward(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Hidden states [batch, seq_len, hidden] in this model's dtype through layers
        `start` to `stop` − 1: a screen runs the first half on every nonce and the rest on
        the nonces it keeps (``nonces.py``)."""
        batch, seq, hidden = x.shape
        heads = self.spec.heads
        for layer in self.layers[start:stop]:
            q, k, v = (_norm(x) @ layer.qkv.T).view(batch, seq, 3, heads, -1).unbind(2)
            attended = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
            x = x + attended.transpose(1, 2).reshape(batch, seq, hidden) @ layer.out.T
            gate, up = (_norm(x) @ layer.gate_up.T).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ layer.down.T
        return x


def direction(x: torch.Tensor) -> torch.Tensor:
    """The output of hidden states [batch, seq_len, hidden]: the mean over positions of the
    normed states, so every position's full computation matters (with the last position
    alone, the last layer would only need one row), normalised to unit length in float32."""
    pooled = _norm(x).float().mean(dim=1)
    return pooled / pooled.norm(dim=-1, keepdim=True)


def _norm(x: torch.Tensor) -> torch.Tensor:
    """RMSNorm without gain, computed in float32 (as Llama does) and returned in x's dtype."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + _NORM_EPS)).to(x.dtype)
