"""One epoch's proving: nonces streamed from the ML node, accepted ones queued in batches.

A sprint computes nonces in order from 0 (or from where an earlier run of this node stopped)
to the operator's budget (``poc_max_nonces``; none: until it is stopped), as one
``ProofOfCompute`` stream on the participant's ML node. Accepted nonces wait in memory until
the worker flushes them into the outbox as ``MsgSubmitPoc`` batches of at most
``MAX_BATCH_NONCES``, under the key ``poc:<epoch>:<first nonce>``. Batches never share a
nonce (the chain refuses a whole batch holding a nonce it has seen), so:

- the stream is never rewound: after an ML node failure it goes on from the first nonce whose
  chunk never arrived;
- a restarted node resumes after the highest nonce it ever queued for the epoch, or the chain
  holds (``resume_point``); what the crash lost is at most the nonces computed since the last
  flush, computed again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

from apinode.chain_queries import ChainQueries
from apinode.mlnode_client import MlNodeClient, MlNodeError
from apinode.outbox import Outbox
from inferchain_pb.inference.v1.epochs_pb2 import MsgSubmitPoc
from inferchain_pb.inference.v1.epochs_pb2 import PocNonce as ChainPocNonce
from mlnode.types import PocModelSpec, PocNonce

log = logging.getLogger(__name__)

# Outbox keys: "poc:<epoch>:<first nonce>" per batch, "poc_check:<epoch>:<participant>".
SUBMIT_KEY = "poc"
CHECK_KEY = "poc_check"
# Nonces per MsgSubmitPoc. The chain takes up to 4,096, but the outbox packs up to 32 messages
# into one tx and CometBFT's mempool refuses txs over 1 MiB: 1,024 nonces are ~20 KB encoded.
MAX_BATCH_NONCES = 1024
# Without a budget a stream asks for this many nonces (days of a GPU's work; a stream that ends
# is started again from where it stopped), far from the uint64 end of the nonce space.
STREAM_NONCES = 1 << 40
# The "fabricate" fault claims about as many nonces as an honest run of its budget would find
# (the tiny preset's default target accepts ~2.9 %), or this many without a budget.
FABRICATED_SHARE = 0.03
FABRICATED_WITHOUT_BUDGET = 1000


def batches(count: int) -> str:
    """``1 batch``, ``3 batches``: for log lines."""
    return f"{count} batch" if count == 1 else f"{count} batches"


def submit_key(epoch: int, first_nonce: int) -> str:
    return f"{SUBMIT_KEY}:{epoch}:{first_nonce}"


def submit_prefix(epoch: int) -> str:
    return f"{SUBMIT_KEY}:{epoch}:"


def check_key(epoch: int, participant: str) -> str:
    return f"{CHECK_KEY}:{epoch}:{participant}"


def split(claims: Sequence[PocNonce], size: int = MAX_BATCH_NONCES) -> list[list[PocNonce]]:
    """``claims`` in consecutive batches of at most ``size``, order kept."""
    return [list(claims[i:i + size]) for i in range(0, len(claims), size)]


def submit_message(creator: str, epoch: int, claims: Sequence[PocNonce]) -> MsgSubmitPoc:
    return MsgSubmitPoc(creator=creator, epoch=epoch,
                        nonces=[ChainPocNonce(nonce=c.nonce, distance=c.distance) for c in claims])


@dataclass(frozen=True)
class Queued:
    """What this node has queued (or the chain holds) for one epoch's PoC."""

    next_nonce: int  # the first nonce after every nonce queued or on chain
    nonces: int
    batches: int


def queued(outbox: Outbox, epoch: int) -> Queued:
    """The node's queued batches of ``epoch``, from the outbox (every state counts: a
    committed batch is on chain, a pending one will be)."""
    last, nonces, batches = -1, 0, 0
    for entry in outbox.with_prefix(submit_prefix(epoch)):
        message = MsgSubmitPoc.FromString(entry.payload)
        if message.nonces:
            last = max(last, max(n.nonce for n in message.nonces))
            nonces += len(message.nonces)
            batches += 1
    return Queued(last + 1, nonces, batches)


async def resume_point(outbox: Outbox, chain: ChainQueries, epoch: int,
                       address: str) -> Queued:
    """Where a sprint of ``epoch`` starts: after everything the outbox or the chain holds
    (the chain too, in case the node's database was lost)."""
    local = await asyncio.to_thread(queued, outbox, epoch)
    held = next((s for s in await chain.poc_submissions(epoch) if s.participant == address),
                None)
    if held is None or not held.nonces:
        return local
    return Queued(max(local.next_nonce, held.last_nonce + 1), max(local.nonces, held.nonces),
                  max(local.batches, held.batches))


def fabricated_claims(count: int, target_distance: float,
                      rng: random.Random | None = None) -> list[PocNonce]:
    """Made-up claims for the "fabricate" fault: random nonces, distances just under target."""
    rng = rng or random.SystemRandom()
    nonces = sorted({rng.getrandbits(64) for _ in range(count)})
    return [PocNonce(n, target_distance * (1 - rng.uniform(1e-4, 1e-2))) for n in nonces]


def fabricated_count(max_nonces: int) -> int:
    return max(1, round(max_nonces * FABRICATED_SHARE)) if max_nonces \
        else FABRICATED_WITHOUT_BUDGET


class Sprint:
    """Proves one epoch on the ML node; the worker drives it: ``start``, ``flush``, ``close``.

    ``end_nonce`` is the budget's end (nonces ``[0, end_nonce)``), None for no budget.
    Only ``flush`` and ``close`` write to the outbox, and only the worker's step calls them, so
    cancelling the stream never interrupts a write.
    """

    def __init__(self, *, epoch: int, address: str, seed: bytes, shape: PocModelSpec,
                 target_distance: float, end_nonce: int | None, dtype: str,
                 mlnode: MlNodeClient, outbox: Outbox, resume: Queued,
                 height: int) -> None:
        self.epoch = epoch
        self.address = address
        self.seed = seed
        self.shape = shape
        self.target_distance = target_distance
        self.end_nonce = end_nonce
        self.dtype = dtype
        self.mlnode = mlnode
        self.outbox = outbox
        self.first_nonce = resume.next_nonce
        self.next_nonce = resume.next_nonce  # the first nonce not computed yet
        self.queued_nonces = resume.nonces
        self.batches = resume.batches
        self.pending: list[PocNonce] = []
        self.last_flush_height = height
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def budget_spent(self) -> bool:
        return self.end_nonce is not None and self.next_nonce >= self.end_nonce

    @property
    def accepted(self) -> int:
        """Accepted nonces so far: queued and waiting."""
        return self.queued_nonces + len(self.pending)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Streams from ``next_nonce`` on (again, after a failure) unless done or running."""
        if self.closed or self.budget_spent or self.running:
            return
        count = STREAM_NONCES if self.end_nonce is None else self.end_nonce - self.next_nonce
        self._task = asyncio.create_task(self._compute(self.next_nonce, count),
                                         name=f"poc-sprint-{self.epoch}")

    async def _compute(self, start: int, count: int) -> None:
        try:
            async for progress in self.mlnode.proof_of_compute(
                    self.shape, self.seed, start, count, self.target_distance,
                    dtype=self.dtype):
                self.pending.extend(progress.accepted)
                self.next_nonce = start + progress.computed
        except MlNodeError as exc:
            log.warning("PoC epoch %d: the ML node stopped at nonce %s (%s); going on from "
                        "there", self.epoch, f"{self.next_nonce:,}", exc)
        except Exception:  # the worker starts the stream again on its next step
            log.exception("PoC epoch %d: computing stopped at nonce %s", self.epoch,
                          f"{self.next_nonce:,}")

    async def flush(self, height: int | None = None) -> int:
        """Queues every waiting nonce in batches; returns how many batches were queued."""
        async with self._lock:
            if height is not None:
                self.last_flush_height = height
            count = 0
            while self.pending:
                batch = self.pending[:MAX_BATCH_NONCES]
                message = submit_message(self.address, self.epoch, batch)
                added = await asyncio.to_thread(self.outbox.enqueue,
                                                submit_key(self.epoch, batch[0].nonce), message)
                del self.pending[:len(batch)]
                if added:  # else an earlier run queued this very batch
                    self.queued_nonces += len(batch)
                    self.batches += 1
                    count += 1
            return count

    async def stop_computing(self) -> None:
        """Ends the stream (the ML node stops after the pass in flight)."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def close(self, why: str) -> None:
        """Stops computing, queues what is waiting, and says what the epoch's sprint did."""
        if self.closed:
            return
        await self.stop_computing()
        await self.flush()
        self.closed = True
        resumed = f", resumed at nonce {self.first_nonce:,}" if self.first_nonce else ""
        log.info("PoC epoch %d: %s nonces computed, %s accepted, submitted in %s (%s%s)",
                 self.epoch, f"{self.next_nonce:,}", f"{self.queued_nonces:,}",
                 batches(self.batches), why, resumed)

    async def abandon(self, why: str) -> None:
        """Stops computing and drops what is waiting: the window it was for is closed."""
        if self.closed:
            return
        await self.stop_computing()
        self.closed = True
        log.warning("PoC epoch %d: %s accepted nonces were never submitted (%s); %s were",
                    self.epoch, f"{len(self.pending):,}", why, f"{self.queued_nonces:,}")
        self.pending.clear()
