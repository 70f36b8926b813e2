"""The torch engine's fast decode: a static per-slot KV cache, the seeded rule on the device,
and, on CUDA, each step replayed from a CUDA graph.

The eager path (``scheduler.EagerBatch``) grows a transformers ``DynamicCache`` by
concatenation every step and draws each row's token on the host, several device syncs per
row; on a GPU that, not the weights' memory traffic, set the pace. Here:

- every running request owns a slot of one preallocated tensor
  ``[layers, 2, slots, kv_heads, capacity, head_dim]``; a row's token ``i`` sits in column
  ``i``, so the step writes each row's new key and value at its own position, in place, and
  attends over the first ``columns`` columns under a mask of each row's length. ``columns``
  is the smallest power of two (at least 128) past the longest row, so attention reads
  little more than what the rows hold; the capacity doubles, rarely, when a row outgrows it;
- prefill stays the eager runner's (one left-padded batch of the newcomers); each row's
  keys and values are then copied into its slot;
- the token is drawn by ``batch_rule.pick`` for all rows at once; the step's only host
  transfers are the rows' u_i in and one packed tensor of tokens, logprobs and top-k out;
- on CUDA, the step (forward pass and draw) for each (rows, columns) pair is captured once
  in a CUDA graph and replayed: an 8B model's decode step is hundreds of kernel launches,
  which Python cannot issue as fast as the GPU runs them.

Finished rows leave by compaction (the rows after them move down), so rows ``[:n]`` are
always the running requests in the scheduler's order.
"""

import logging
from collections.abc import Sequence

import torch
from transformers import DynamicCache

from mlnode import fused_decode
from mlnode.batch_rule import RuleRows, count, pick
from mlnode.fused_decode import FusedLlamaDecode
from mlnode.generation import Generation
from mlnode.sampling import uniform
from mlnode.torch_runner import TorchRunner

log = logging.getLogger(__name__)

FIRST_CAPACITY = 512
MIN_COLUMNS = 128


def _power_of_two(n: int, floor: int) -> int:
    return max(floor, 1 << (n - 1).bit_length())


class SlotCache:
    """What the model's attention layers see as their cache: ``update`` stores the step's
    key and value at each row's position and returns the rows' first ``columns`` columns."""

    def __init__(self, kv: torch.Tensor, positions: torch.Tensor) -> None:
        self.kv = kv
        self.positions = positions
        self.rows = torch.arange(kv.shape[2], device=kv.device)
        self.batch = 0
        self.columns = 0

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int,
               *args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        return self.write(layer_idx, key[:, :, 0], value[:, :, 0])

    def write(self, layer: int, key: torch.Tensor, value: torch.Tensor,
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stores ``key`` and ``value`` ``[rows, kv_heads, head_dim]`` at each row's position;
        the rows' keys and values over the first ``columns`` columns."""
        rows, positions = self.rows[:self.batch], self.positions[:self.batch]
        keys, values = self.kv[layer, 0], self.kv[layer, 1]
        keys[rows, :, positions] = key
        values[rows, :, positions] = value
        return keys[:self.batch, :, :self.columns], values[:self.batch, :, :self.columns]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.columns


class StaticBatch:
    """The running requests' device state; ``admit``, ``step`` and ``keep`` as the scheduler
    calls them."""

    def __init__(self, runner: TorchRunner, slots: int, top_logprobs: int,
                 graphs: bool | None = None, fused: bool | None = None) -> None:
        """``top_logprobs`` is the most any request may ask for; ``graphs`` defaults to
        whether the model is on CUDA, ``fused`` (``fused_decode``'s step, for a Llama) to
        ``graphs``: the CPU keeps transformers' forward pass."""
        self._runner = runner
        self._slots = slots
        self._top = top_logprobs
        self._device = runner.device
        self._graphs_on = self._device.type == "cuda" if graphs is None else graphs
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor,
                                                  torch.Tensor]] = {}
        self._pool = torch.cuda.graph_pool_handle() if self._graphs_on else None
        fused = self._graphs_on if fused is None else fused
        self._fused = (FusedLlamaDecode(runner.model)
                       if fused and fused_decode.supports(runner.model) else None)
        log.info("static decode: %s forward pass%s",
                 "fused Llama" if self._fused else "transformers'",
                 ", captured in CUDA graphs" if self._graphs_on else "")
        vocab = runner.model.get_output_embeddings().weight.shape[0]
        with torch.inference_mode():
            self._rows = RuleRows.empty(slots, vocab, self._device)
            self._tokens = torch.zeros(slots, dtype=torch.long, device=self._device)
            self._positions = torch.zeros(slots, dtype=torch.long, device=self._device)
        self._u = torch.zeros(slots, dtype=torch.float64,
                              pin_memory=self._device.type == "cuda")
        self._cache: SlotCache | None = None
        self._lengths: list[int] = []

    @property
    def capacity(self) -> int:
        return 0 if self._cache is None else self._cache.kv.shape[4]

    @torch.inference_mode()
    def admit(self, newcomers: Sequence[Generation]) -> list[bool]:
        """Prefills the newcomers, moves their keys and values into the next free slots and
        draws their first tokens; True for each one already finished."""
        logits, batch = self._runner.prefill([g.prompt_ids for g in newcomers])
        start = len(self._lengths)
        self._reserve(batch.cache, max(len(g.prompt_ids) for g in newcomers) + 1)
        assert self._cache is not None
        kv, width = self._cache.kv, batch.mask.shape[1]
        for layer, cached in enumerate(batch.cache.layers):
            for row, generation in enumerate(newcomers):
                slot, length = start + row, len(generation.prompt_ids)
                kv[layer, 0, slot, :, :length] = cached.keys[row, :, width - length:]
                kv[layer, 1, slot, :, :length] = cached.values[row, :, width - length:]
        for row, generation in enumerate(newcomers):
            slot, length = start + row, len(generation.prompt_ids)
            self._rows.set(slot, generation.params)
            self._positions[slot] = length
            self._lengths.append(length)
        self._load_step(newcomers, start)
        token, packed = self._pack(*pick(logits, self._rows, start, self._top))
        self._advance(start, token, step=False)
        return self._record(newcomers, packed)

    @torch.inference_mode()
    def step(self, running: Sequence[Generation]) -> list[bool]:
        """One decode step for rows ``[:len(running)]``; True for each finished row."""
        rows = len(running)
        assert rows == len(self._lengths) and self._cache is not None
        longest = max(self._lengths) + 1
        if longest > self.capacity:
            self._reserve(None, longest)
        columns = min(_power_of_two(longest, MIN_COLUMNS), self.capacity)
        self._load_step(running, 0)
        if self._graphs_on:
            try:
                token, packed = self._replay(rows, columns)
            except RuntimeError:
                # A model whose forward pass cannot be captured (a host sync inside, say)
                # still decodes, launching the same step eagerly.
                log.exception("cannot capture the decode step in a CUDA graph; "
                              "decoding without graphs from now on")
                self._graphs_on = False
                self._graphs.clear()
        if not self._graphs_on:
            token, packed = self._forward(rows, columns)
        self._advance(0, token, step=True)
        self._lengths = [n + 1 for n in self._lengths]
        return self._record(running, packed)

    def keep(self, rows: Sequence[int]) -> None:
        """Keeps only ``rows``, in that order, as rows ``[:len(rows)]``."""
        moved = [(old, new) for new, old in enumerate(rows) if old != new]
        if moved and self._cache is not None:
            with torch.inference_mode():
                source = torch.tensor([old for old, _ in moved], device=self._device)
                target = torch.tensor([new for _, new in moved], device=self._device)
                kv = self._cache.kv
                kv[:, :, target] = kv[:, :, source]
                self._rows.move(source, target)
                for tensor in (self._tokens, self._positions):
                    tensor[target] = tensor[source]
        self._lengths = [self._lengths[i] for i in rows]

    def _reserve(self, like: DynamicCache | None, columns: int) -> None:
        """Makes the slots hold at least ``columns`` columns: allocated at the first prefill
        (shaped like its cache), doubled when a row outgrows them. The graphs captured for
        the old tensor are dropped."""
        if columns <= self.capacity:
            return
        capacity = _power_of_two(columns, FIRST_CAPACITY)
        if self._cache is None:
            assert like is not None
            keys = like.layers[0].keys
            shape = (len(like.layers), 2, self._slots, keys.shape[1], capacity, keys.shape[3])
            kv = torch.zeros(shape, dtype=keys.dtype, device=self._device)
        else:
            old = self._cache.kv
            kv = torch.zeros((*old.shape[:4], capacity, old.shape[5]), dtype=old.dtype,
                             device=self._device)
            kv[:, :, :, :, :old.shape[4]] = old
        log.info("static KV cache: %d slots × %d columns (%.2f GB)", self._slots, capacity,
                 kv.numel() * kv.element_size() / 1e9)
        self._cache = SlotCache(kv, self._positions)
        self._columns = torch.arange(capacity, device=self._device)
        self._graphs.clear()

    def _load_step(self, generations: Sequence[Generation], start: int) -> None:
        """The host's part of a step: each row's u_i, and the grammar mask of rows that have
        one (it depends on the tokens accepted so far)."""
        end = start + len(generations)
        self._u[start:end] = torch.tensor(
            [uniform(g.params.seed, len(g.output_ids)) for g in generations], dtype=torch.float64)
        self._rows.u[start:end].copy_(self._u[start:end], non_blocking=True)
        for row, generation in enumerate(generations):
            if generation.grammar is not None:
                self._rows.allowed[start + row] = generation.grammar.allowed().to(self._device)

    def _forward(self, rows: int, columns: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's device work: the model on each row's last token, then the draw."""
        assert self._cache is not None
        self._cache.batch, self._cache.columns = rows, columns
        positions = self._positions[:rows, None]
        mask = (self._columns[None, :columns] <= positions)[:, None, None, :]
        tokens = self._tokens[:rows, None]
        if self._fused is not None:
            logits = self._fused.logits(tokens, positions, mask, self._cache)
        else:
            logits = self._runner.model(input_ids=tokens, attention_mask=mask,
                                        position_ids=positions, past_key_values=self._cache,
                                        use_cache=True, logits_to_keep=1).logits[:, -1, :]
        return self._pack(*pick(logits, self._rows, 0, self._top))

    def _replay(self, rows: int, columns: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (rows, columns)
        if key not in self._graphs:
            # One eager run on a side stream first (lazy library set-up must not land in the
            # graph); it writes the same keys and values the replay then writes again.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._forward(rows, columns)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                token, packed = self._forward(rows, columns)
            self._graphs[key] = (graph, token, packed)
            log.info("captured the decode step for %d rows × %d columns", rows, columns)
        graph, token, packed = self._graphs[key]
        graph.replay()
        return token, packed

    @staticmethod
    def _pack(token: torch.Tensor, chosen: torch.Tensor, top_ids: torch.Tensor,
              top_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens, and everything the host needs in one float64 tensor (ids are exact
        in float64): one transfer per step."""
        packed = torch.cat([token[:, None].double(), chosen[:, None].double(),
                            top_ids.double(), top_values.double()], dim=1)
        return token, packed

    def _advance(self, start: int, token: torch.Tensor, *, step: bool) -> None:
        """Makes the drawn tokens the next step's inputs, counted for the penalties."""
        end = start + token.shape[0]
        self._tokens[start:end] = token
        if step:
            self._positions[start:end] += 1
        count(self._rows, start, token)

    def _record(self, generations: Sequence[Generation], packed: torch.Tensor) -> list[bool]:
        top = self._top
        done = []
        for generation, values in zip(generations, packed.tolist(), strict=True):
            k = generation.top_k
            ids = tuple(int(i) for i in values[2:2 + k])
            done.append(generation.record(int(values[0]), values[1], ids,
                                          tuple(values[2 + top:2 + top + k])))
        return done
