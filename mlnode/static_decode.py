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
  which Python cannot issue as fast as the GPU runs them;
- on CUDA, a step also launches the next one before it hands its tokens to the requests
  (lookahead): the next step needs only the drawn tokens, which stay on the device, and each
  row's u_i, known ahead. The host's work per token (detokenizing, stop checks, streaming,
  and the server's threads waiting for the GIL) then runs while the GPU computes, instead of
  between steps with the GPU idle. A row that finishes meanwhile has its extra step thrown
  away. Not when a row has a grammar: its mask needs the token just drawn.

Finished rows leave by compaction (the rows after them move down), so rows ``[:n]`` are
always the running requests in the scheduler's order.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from mlnode import fused_decode
from mlnode.batch_rule import RuleRows, count, pick, truncates
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


@dataclass
class Launch:
    """A step on its way: ``results`` holds its packed rows once ``done`` has fired (on the
    CPU at once, with ``done`` None); ``order[j]`` is the results row of current row ``j``,
    None for a row admitted after the launch."""

    results: torch.Tensor
    done: torch.cuda.Event | None
    order: list[int | None]

    def rows(self) -> list[list[float]]:
        if self.done is not None:
            self.done.synchronize()
        return self.results.tolist()


class StaticBatch:
    """The running requests' device state; ``admit``, ``step`` and ``keep`` as the scheduler
    calls them."""

    def __init__(self, runner: TorchRunner, slots: int, top_logprobs: int,
                 graphs: bool | None = None, fused: bool | None = None,
                 lookahead: bool | None = None) -> None:
        """``top_logprobs`` is the most any request may ask for; ``graphs`` defaults to
        whether the model is on CUDA, ``fused`` (``fused_decode``'s step, for a Llama) and
        ``lookahead`` to ``graphs``: the CPU keeps transformers' forward pass, one step at a
        time (on the CPU a step runs as it is launched, so looking ahead only adds work)."""
        self._runner = runner
        self._slots = slots
        self._top = top_logprobs
        self._device = runner.device
        self._graphs_on = self._device.type == "cuda" if graphs is None else graphs
        self._lookahead = self._graphs_on if lookahead is None else lookahead
        self._pending: Launch | None = None
        self._graphs: dict[tuple[int, int, bool], tuple[torch.cuda.CUDAGraph, torch.Tensor,
                                                        torch.Tensor]] = {}
        self._pool = torch.cuda.graph_pool_handle() if self._graphs_on else None
        fused = self._graphs_on if fused is None else fused
        self._fused = (FusedLlamaDecode(runner.model)
                       if fused and fused_decode.supports(runner.model) else None)
        log.info("static decode: %s forward pass%s",
                 "fused Llama" if self._fused else "transformers'",
                 ", captured in CUDA graphs" if self._graphs_on else "")
        vocab = runner.model.get_output_embeddings().weight.shape[0]
        self._vocab = vocab
        with torch.inference_mode():
            self._rows = RuleRows.empty(slots, vocab, self._device)
            self._tokens = torch.zeros(slots, dtype=torch.long, device=self._device)
            self._positions = torch.zeros(slots, dtype=torch.long, device=self._device)
        # Two host buffers for u_i, used in turn: a launch's copy of one may still wait on
        # the stream while the next launch fills the other.
        self._u = [torch.zeros(slots, dtype=torch.float64,
                               pin_memory=self._device.type == "cuda") for _ in range(2)]
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
        if self._pending is not None:
            self._pending.order += [None] * len(newcomers)
        for row, generation in enumerate(newcomers):
            slot, length = start + row, len(generation.prompt_ids)
            self._rows.set(slot, generation.params)
            self._positions[slot] = length
            self._lengths.append(length)
        self._load_step(newcomers, start, [0] * len(newcomers))
        token, packed = self._pack(*pick(logits, self._rows, start, self._top,
                                         self._truncates(newcomers)))
        self._advance(start, token, step=False)
        return self._record(newcomers, packed.tolist(), list(range(len(newcomers))))

    @torch.inference_mode()
    def step(self, running: Sequence[Generation]) -> list[bool]:
        """One decode step for rows ``[:len(running)]``; True for each finished row. With a
        step launched ahead, its rows get that step's tokens and the rows admitted since
        then none this time (their first token came from the prefill)."""
        assert len(running) == len(self._lengths) and self._cache is not None
        current, self._pending = self._pending, None
        if current is None:
            current = self._launch(running, [0] * len(running))
        if self._lookahead and self._worth_looking_ahead(running, current.order):
            self._pending = self._launch(running, [int(i is not None) for i in current.order])
        return self._record(running, current.rows(), current.order)

    def _worth_looking_ahead(self, running: Sequence[Generation],
                             order: Sequence[int | None]) -> bool:
        """No row has a grammar, and some row may still go on after this step's token."""
        if any(g.grammar is not None for g in running):
            return False
        return any(len(g.output_ids) + (i is not None) < g.params.max_tokens
                   for g, i in zip(running, order, strict=True))

    def _launch(self, running: Sequence[Generation], ahead: Sequence[int]) -> Launch:
        """Enqueues a decode step for every row; ``ahead[j]`` is 1 where row ``j`` has a drawn
        token not yet recorded (the next draw is then one position further)."""
        rows = len(running)
        longest = max(self._lengths) + 1
        if longest > self.capacity:
            self._reserve(None, longest)
        columns = min(_power_of_two(longest, MIN_COLUMNS), self.capacity)
        self._load_step(running, 0, ahead)
        truncate = self._truncates(running)
        if self._graphs_on:
            try:
                token, packed = self._replay(rows, columns, truncate)
            except RuntimeError:
                # A model whose forward pass cannot be captured (a host sync inside, say)
                # still decodes, launching the same step eagerly.
                log.exception("cannot capture the decode step in a CUDA graph; "
                              "decoding without graphs from now on")
                self._graphs_on = False
                self._graphs.clear()
        if not self._graphs_on:
            token, packed = self._forward(rows, columns, truncate)
        self._advance(0, token, step=True)
        self._lengths = [n + 1 for n in self._lengths]
        order: list[int | None] = list(range(rows))
        if self._device.type != "cuda":
            return Launch(packed, None, order)
        # A graph's output is overwritten by its next replay: the results leave for pinned
        # host memory first, in stream order, and the host waits on an event, not the stream.
        results = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True)
        results.copy_(packed, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return Launch(results, done, order)

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
        if self._pending is not None:
            self._pending.order = [self._pending.order[i] for i in rows]
            if not rows:
                self._pending = None

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
            if self._graphs_on:
                # A launched step may still replay a graph about to be destroyed.
                torch.cuda.current_stream().synchronize()
            old = self._cache.kv
            kv = torch.zeros((*old.shape[:4], capacity, old.shape[5]), dtype=old.dtype,
                             device=self._device)
            kv[:, :, :, :, :old.shape[4]] = old
        log.info("static KV cache: %d slots × %d columns (%.2f GB)", self._slots, capacity,
                 kv.numel() * kv.element_size() / 1e9)
        self._cache = SlotCache(kv, self._positions)
        self._columns = torch.arange(capacity, device=self._device)
        self._graphs.clear()
        if self._graphs_on:
            # A pool whose graphs are all gone cannot take another capture (the allocator
            # asserts on it, and the step would fall back to eager for good): a new one.
            self._pool = torch.cuda.graph_pool_handle()

    def _load_step(self, generations: Sequence[Generation], start: int,
                   ahead: Sequence[int]) -> None:
        """The host's part of a step: each row's u_i (``ahead[i]`` positions past its recorded
        output), and the grammar mask of rows that have one (it depends on the tokens
        accepted so far, so a row with a grammar is never stepped ahead)."""
        end = start + len(generations)
        u = self._u[0]
        self._u.reverse()
        u[start:end] = torch.tensor(
            [uniform(g.params.seed, len(g.output_ids) + a)
             for g, a in zip(generations, ahead, strict=True)], dtype=torch.float64)
        self._rows.u[start:end].copy_(u[start:end], non_blocking=True)
        for row, generation in enumerate(generations):
            if generation.grammar is not None:
                self._rows.allowed[start + row] = generation.grammar.allowed().to(self._device)

    def _truncates(self, generations: Sequence[Generation]) -> bool:
        return any(truncates(g.params, self._vocab) for g in generations)

    def _forward(self, rows: int, columns: int, truncate: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
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
        return self._pack(*pick(logits, self._rows, 0, self._top, truncate))

    def _replay(self, rows: int, columns: int, truncate: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (rows, columns, truncate)
        if key not in self._graphs:
            # One eager run on a side stream first (lazy library set-up must not land in the
            # graph); it writes the same keys and values the replay then writes again.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._forward(rows, columns, truncate)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                token, packed = self._forward(rows, columns, truncate)
            self._graphs[key] = (graph, token, packed)
            log.info("captured the decode step for %d rows × %d columns%s", rows, columns,
                     ", top-k/top-p" if truncate else "")
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

    def _record(self, generations: Sequence[Generation], results: list[list[float]],
                order: Sequence[int | None]) -> list[bool]:
        """Hands each row its token from ``results[order[j]]``; a row without one (admitted
        after the step was launched) is not finished."""
        top = self._top
        done = []
        for generation, index in zip(generations, order, strict=True):
            if index is None:
                done.append(False)
                continue
            values, k = results[index], generation.top_k
            ids = tuple(int(i) for i in values[2:2 + k])
            done.append(generation.record(int(values[0]), values[1], ids,
                                          tuple(values[2 + top:2 + top + k])))
        return done
