"""A Llama decode step in few kernels, for the static path on CUDA.

Inside a CUDA graph the weights' memory traffic is not what sets an 8B model's step time:
transformers' Llama layer issues ~45 small kernels per layer (RMSNorm in six pieces, rotary
on q and k apart, repeat of the grouped keys and values, SiLU and product, casts), and each
costs a few microseconds even replayed. This step computes the same layer with ~16:

- q, k and v are one product with the three weights stacked, gate and up another; the stacked
  weights are the model's own storage (each projection's weight becomes a view of its rows),
  so no weight is held twice and the eager path reads the same values;
- RMSNorm is ``torch.nn.functional.rms_norm`` (one kernel on CUDA);
- rotary is applied to q and k together: ``x·cos + roll(x)·sin±`` with the sign of
  ``rotate_half`` folded into the sine once per step;
- attention is one ``scaled_dot_product_attention`` per layer with each key head's group of
  query heads as its query rows (no repeated keys), under an additive mask built once per
  step.

The logits differ from transformers' by rounding (fused products and norms round once where
transformers rounds several times), as they already differ between the two decode paths; the
draw from them is ``batch_rule.pick``, unchanged.
"""

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional

if TYPE_CHECKING:
    from mlnode.static_decode import SlotCache


def supports(model: nn.Module) -> bool:
    """Whether ``model`` is a Llama this step computes exactly as transformers defines it."""
    config = getattr(model, "config", None)
    return (getattr(config, "model_type", None) == "llama"
            and not getattr(config, "attention_bias", False)
            and not getattr(config, "mlp_bias", False)
            and getattr(config, "hidden_act", None) == "silu"
            and getattr(config, "pretraining_tp", 1) == 1)


def _stack(linears: list[nn.Linear]) -> torch.Tensor:
    """One weight holding ``linears``' rows in order; each linear's weight becomes a view of
    it, so the model's memory stays what it was."""
    stacked = torch.cat([linear.weight.detach() for linear in linears], dim=0)
    start = 0
    for linear in linears:
        rows = linear.weight.shape[0]
        linear.weight = nn.Parameter(stacked[start:start + rows], requires_grad=False)
        start += rows
    return stacked


class FusedLlamaDecode:
    """The decode step (one new token per row) of a transformers Llama over a ``SlotCache``."""

    def __init__(self, model: nn.Module) -> None:
        config = model.config
        self._model = model
        self._heads = config.num_attention_heads
        self._kv_heads = config.num_key_value_heads
        layers = model.model.layers
        attention = layers[0].self_attn
        self._head_dim = attention.head_dim
        self._scale = attention.scaling
        self._eps = layers[0].input_layernorm.variance_epsilon
        self._hidden = config.hidden_size
        self._layers = []
        with torch.no_grad():
            for layer in layers:
                attn, mlp = layer.self_attn, layer.mlp
                self._layers.append((
                    layer.input_layernorm.weight,
                    _stack([attn.q_proj, attn.k_proj, attn.v_proj]),
                    attn.o_proj.weight,
                    layer.post_attention_layernorm.weight,
                    _stack([mlp.gate_proj, mlp.up_proj]),
                    mlp.down_proj.weight,
                ))

    def logits(self, tokens: torch.Tensor, positions: torch.Tensor, visible: torch.Tensor,
               cache: "SlotCache") -> torch.Tensor:
        """Each row's next-token logits ``[rows, vocab]``: ``tokens`` and ``positions`` are
        ``[rows, 1]``, ``visible`` ``[rows, 1, 1, columns]`` is True where a row attends."""
        model = self._model.model
        rows, heads, kv_heads, dim = tokens.shape[0], self._heads, self._kv_heads, self._head_dim
        half, qk = dim // 2, (heads + kv_heads)
        hidden = model.embed_tokens(tokens[:, 0])
        cos, sin = model.rotary_emb(hidden, positions)
        cos = cos[:, 0, None, :]
        sign = torch.ones(dim, dtype=sin.dtype, device=sin.device)
        sign[:half] = -1
        sin = (sin[:, 0] * sign)[:, None, :]
        mask = torch.zeros(visible.shape, dtype=hidden.dtype, device=hidden.device)
        mask = mask.masked_fill(~visible, float("-inf"))
        for index, (norm_in, qkv_weight, o_weight, norm_post, gate_up, down) in enumerate(
                self._layers):
            x = functional.rms_norm(hidden, (self._hidden,), norm_in, self._eps)
            qkv = functional.linear(x, qkv_weight)
            both = qkv[:, :qk * dim].view(rows, qk, dim)
            turned = torch.cat((both[..., half:], both[..., :half]), dim=-1)
            both = torch.addcmul(both * cos, turned, sin)
            value = qkv[:, qk * dim:].view(rows, kv_heads, dim)
            keys, values = cache.write(index, both[:, heads:], value)
            query = both[:, :heads].reshape(rows, kv_heads, heads // kv_heads, dim)
            attended = functional.scaled_dot_product_attention(query, keys, values, attn_mask=mask,
                                                      scale=self._scale)
            hidden = hidden + functional.linear(attended.reshape(rows, heads * dim), o_weight)
            x = functional.rms_norm(hidden, (self._hidden,), norm_post, self._eps)
            gate, up = functional.linear(x, gate_up).chunk(2, dim=-1)
            hidden = hidden + functional.linear(functional.silu(gate) * up, down)
        hidden = functional.rms_norm(hidden, (self._hidden,), model.norm.weight,
                                     model.norm.variance_epsilon)
        return functional.linear(hidden, self._model.get_output_embeddings().weight)
