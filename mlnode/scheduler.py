"""The torch engine's batching loop: continuous batching on one thread that owns the model.

Each iteration first runs waiting score jobs (each is one forward pass), then admits waiting
generations into the running batch (prefilled together, then merged in), then runs one
decode step for every running generation. A request joins at the next step boundary and
leaves the moment it finishes, so short requests are never held behind long ones.

How the running requests' state is kept and stepped is a ``DecodeBatch``: ``EagerBatch``
(below: a growing transformers cache, each row drawn by the reference ``mlnode.sampling``),
or ``mlnode.static_decode.StaticBatch`` (static cache, batched draw, CUDA graphs).
"""

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mlnode.engine import Load
from mlnode.generation import Generation
from mlnode.torch_runner import KVBatch, TorchRunner

log = logging.getLogger(__name__)


class DecodeBatch(Protocol):
    """The running requests' model state; row i is the scheduler's i-th running request."""

    def admit(self, newcomers: Sequence[Generation]) -> list[bool]:
        """Prefills the newcomers as the rows after the running ones and draws their first
        tokens; True for each one already finished."""

    def step(self, running: Sequence[Generation]) -> list[bool]:
        """Feeds every row its last token and draws the next; True for each finished row."""

    def keep(self, rows: Sequence[int]) -> None:
        """Keeps only ``rows``, in that order."""


class EagerBatch:
    """The reference path: one transformers ``DynamicCache`` extended every step, and each
    row's token drawn by ``Generation.advance``."""

    def __init__(self, runner: TorchRunner) -> None:
        self._runner = runner
        self._kv: KVBatch | None = None

    def admit(self, newcomers: Sequence[Generation]) -> list[bool]:
        logits, batch = self._runner.prefill([g.prompt_ids for g in newcomers])
        self._kv = batch if self._kv is None else self._runner.merge(self._kv, batch)
        return [g.advance(row) for g, row in zip(newcomers, logits, strict=True)]

    def step(self, running: Sequence[Generation]) -> list[bool]:
        assert self._kv is not None
        logits = self._runner.decode(self._kv, [g.output_ids[-1] for g in running])
        return [g.advance(row) for g, row in zip(running, logits, strict=True)]

    def keep(self, rows: Sequence[int]) -> None:
        self._kv = self._runner.select(self._kv, rows) if rows and self._kv is not None else None


@dataclass
class Job:
    """Work that needs the model but is not a generation (scoring): run once, then resolve."""

    run: Callable[[TorchRunner], Any]
    resolve: Callable[[Any, BaseException | None], None]


class Scheduler:
    def __init__(self, runner: TorchRunner, batch: DecodeBatch, max_batch: int,
                 on_step: Callable[[int], None] | None = None) -> None:
        """``on_step`` hears each decode step's batch size (the ML node's metrics)."""
        self._runner = runner
        self._batch = batch
        self._max_batch = max_batch
        self._on_step = on_step
        self._wake = threading.Condition()
        self._waiting: deque[Generation] = deque()
        self._jobs: deque[Job] = deque()
        self._running: list[Generation] = []
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="mlnode-scheduler", daemon=True)
        self._thread.start()

    def submit(self, generation: Generation) -> None:
        with self._wake:
            self._waiting.append(generation)
            self._wake.notify()

    def submit_job(self, job: Job) -> None:
        with self._wake:
            self._jobs.append(job)
            self._wake.notify()

    def load(self) -> Load:
        with self._wake:
            return Load(queued=len(self._waiting) + len(self._jobs), running=len(self._running))

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not (self._closed or self._waiting or self._jobs or self._running):
                    self._wake.wait()
                if self._closed:
                    return
                jobs = list(self._jobs)
                self._jobs.clear()
                room = self._max_batch - len(self._running)
                admitted = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            for job in jobs:
                self._run_job(job)
            try:
                self._admit([g for g in admitted if not g.cancelled.is_set()])
                self._step()
            except Exception as exc:  # a failed forward pass fails the requests in it, not us
                log.exception("batch step failed; failing %d request(s)", len(self._running))
                for generation in self._running:
                    generation.sink(exc)
                self._running = []
                self._batch.keep([])

    def _run_job(self, job: Job) -> None:
        try:
            result = job.run(self._runner)
        except Exception as exc:
            log.exception("scoring job failed")
            job.resolve(None, exc)
        else:
            job.resolve(result, None)

    def _admit(self, newcomers: list[Generation]) -> None:
        if not newcomers:
            return
        self._running.extend(newcomers)
        done = self._batch.admit(newcomers)
        offset = len(self._running) - len(newcomers)
        self._retire({offset + i for i, d in enumerate(done) if d})

    def _step(self) -> None:
        """One decode step for every running generation, after dropping cancelled ones."""
        self._retire({i for i, g in enumerate(self._running) if g.cancelled.is_set()})
        if not self._running:
            return
        if self._on_step is not None:
            self._on_step(len(self._running))
        done = self._batch.step(self._running)
        self._retire({i for i, d in enumerate(done) if d})

    def _retire(self, rows: set[int]) -> None:
        if not rows:
            return
        keep = [i for i in range(len(self._running)) if i not in rows]
        self._running = [self._running[i] for i in keep]
        self._batch.keep(keep)
