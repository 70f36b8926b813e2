"""Tensor work of the torch engine: prefill, one decode step, full-sequence scoring.

A batch keeps one transformers ``DynamicCache`` and a 2-D attention mask. Prompts of
different lengths are left-padded, and each row's position ids are counted from its own
mask, so a row computes the same function whatever else shares the batch (up to the
rounding of batched matrix products). Batches can be merged (new requests joining running
ones) and shrunk (finished requests leaving), which is what continuous batching needs.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel


@dataclass
class KVBatch:
    cache: DynamicCache
    mask: torch.Tensor  # [rows, length], 1 for real tokens, 0 for left padding

    @property
    def rows(self) -> int:
        return self.mask.shape[0]


def _layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _pad_left(t: torch.Tensor, n: int) -> torch.Tensor:
    """Pads dimension -2 of a [rows, heads, length, dim] tensor (or -1 of a mask) on the left."""
    if n == 0:
        return t
    if t.dim() == 2:
        return torch.nn.functional.pad(t, (n, 0))
    return torch.nn.functional.pad(t, (0, 0, n, 0))


class TorchRunner:
    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, KVBatch]:
        """Runs the prompts as one left-padded batch; returns the last position's logits."""
        length = max(len(p) for p in prompts)
        ids = torch.zeros((len(prompts), length), dtype=torch.long)
        mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, length - len(prompt):] = torch.tensor(prompt)
            mask[row, length - len(prompt):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=self._positions(mask),
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float(), KVBatch(cache, mask)

    @torch.inference_mode()
    def decode(self, batch: KVBatch, tokens: Sequence[int]) -> torch.Tensor:
        """Feeds one token per row and returns the next logits; extends the batch in place."""
        ids = torch.tensor(tokens, dtype=torch.long, device=self.device).unsqueeze(1)
        positions = batch.mask.sum(dim=1, keepdim=True)
        batch.mask = torch.cat([batch.mask, torch.ones_like(positions)], dim=1)
        out = self.model(input_ids=ids, attention_mask=batch.mask, position_ids=positions,
                         past_key_values=batch.cache, use_cache=True)
        return out.logits[:, -1, :].float()

    @torch.inference_mode()
    def score_logits(self, prompt: Sequence[int], output: Sequence[int]) -> torch.Tensor:
        """Teacher-forced logits that predicted each output token: [len(output), vocab]."""
        ids = torch.tensor([[*prompt, *output]], dtype=torch.long, device=self.device)
        out = self.model(input_ids=ids, use_cache=False, logits_to_keep=len(output) + 1)
        return out.logits[0, :-1, :].float()

    @staticmethod
    def select(batch: KVBatch, rows: Sequence[int]) -> KVBatch:
        """Keeps only ``rows``, and drops left-padding columns no remaining row needs."""
        index = torch.tensor(list(rows), dtype=torch.long, device=batch.mask.device)
        mask = batch.mask.index_select(0, index)
        drop = int((mask.cumsum(dim=1) == 0).all(dim=0).sum())
        layers = [(k.index_select(0, index)[:, :, drop:], v.index_select(0, index)[:, :, drop:])
                  for k, v in _layers(batch.cache)]
        return KVBatch(DynamicCache(ddp_cache_data=layers), mask[:, drop:])

    @staticmethod
    def merge(a: KVBatch, b: KVBatch) -> KVBatch:
        """One batch holding a's rows then b's, the shorter one padded on the left."""
        length = max(a.mask.shape[1], b.mask.shape[1])
        pad_a, pad_b = length - a.mask.shape[1], length - b.mask.shape[1]
        layers = [(torch.cat([_pad_left(ka, pad_a), _pad_left(kb, pad_b)]),
                   torch.cat([_pad_left(va, pad_a), _pad_left(vb, pad_b)]))
                  for (ka, va), (kb, vb) in zip(_layers(a.cache), _layers(b.cache), strict=True)]
        mask = torch.cat([_pad_left(a.mask, pad_a), _pad_left(b.mask, pad_b)])
        return KVBatch(DynamicCache(ddp_cache_data=layers), mask)

    @staticmethod
    def _positions(mask: torch.Tensor) -> torch.Tensor:
        return (mask.cumsum(dim=1) - 1).clamp(min=0)
