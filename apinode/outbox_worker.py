"""The loop that drains the outbox into chain txs and watches them land.

Each step first confirms what earlier steps sent, then submits what is due, so a tx found
failed (or lost) is retried in the same pass. The chain side is two callables that the API node
provides: ``submit`` packs entries into one Cosmos tx and broadcasts it, ``confirm`` looks a tx
hash up on chain. The worker keeps no state of its own: everything is in the outbox table, so a
new worker on the same database, in a new process, carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field

from apinode.chain_queries import ChainUnavailable
from apinode.outbox import Entry, Outbox
from apinode.store import utc_now

log = logging.getLogger(__name__)

# Due entries packed into one tx: its broadcast, signature and ante are paid once for all of
# them, which is most of what a single-message tx costs a node (bench/pair_network_bench.py
# measures both).
MESSAGES_PER_TX = 32
# A log line names at most this many entries' keys, each cut to KEY_CHARS characters: an
# inference's key keeps 16 hex digits of its id, enough to find it.
KEYS_LOGGED = 8
KEY_CHARS = 33


@dataclass(frozen=True)
class SubmitResult:
    """What ``submit`` broadcast.

    ``rejected`` maps entry ids that the submitter left out of the tx (say, a simulation showed
    that message alone would fail) to the reason; they are retried on their own, so one bad
    message does not sink the whole batch. ``done`` names entries left out because the chain
    already holds their effect (delivery is at least once: a message resent after a crash
    finds its first copy committed); they are marked committed. ``tx_hash`` is None when
    nothing was broadcast.
    """

    tx_hash: str | None
    rejected: Mapping[int, str] = field(default_factory=dict)
    done: frozenset[int] = frozenset()


# Records, before a tx leaves, the entries it carries (by id), its hash and its timeout
# height: a process that dies between a broadcast and its next step leaves the tx findable,
# so the entries are not taken for done on the strength of that tx while it may still be
# dropped.
Record = Callable[[list[int], str, int | None], Awaitable[None]]
# Packs the entries into one tx, calls ``Record`` before each broadcast, and says what it did.
Submit = Callable[[list[Entry], Record], Awaitable[SubmitResult]]
# Given a tx's hash and timeout height (None if unknown): True: committed and succeeded;
# False: failed in a block, or can never land; None: not found (yet).
Confirm = Callable[[str, int | None], Awaitable[bool | None]]


class OutboxWorker:
    """Submits due outbox entries in batches and marks them committed once seen on chain.

    ``confirm_timeout_s`` is how long a sent tx may stay unseen before its entries are submitted
    again. The submitter should give its txs a timeout height that expires sooner, so that a tx
    declared lost can never land afterwards next to its resubmission.
    """

    def __init__(self, outbox: Outbox, submit: Submit, confirm: Confirm, *,
                 interval_s: float = 1.0, batch_size: int = MESSAGES_PER_TX,
                 confirm_timeout_s: float = 60.0) -> None:
        self.outbox = outbox
        self.submit = submit
        self.confirm = confirm
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.confirm_timeout_s = confirm_timeout_s
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Step until ``stop()``; a full batch means more may be due, so step again at once."""
        self._stop.clear()
        log.info("outbox: worker started, %d entries owed to the chain",
                 await asyncio.to_thread(self.outbox.pending_count))
        while not self._stop.is_set():
            try:
                busy = await self.step()
            except Exception:  # the database or chain being down must not end the loop
                log.exception("outbox: step failed; trying again in %.1fs", self.interval_s)
                busy = False
            if not busy:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval_s)
        log.info("outbox: worker stopped")

    def stop(self) -> None:
        self._stop.set()

    async def step(self) -> bool:
        """Confirm sent txs, then submit one batch; True when the batch was full."""
        await self.confirm_sent()
        return await self.submit_due()

    async def confirm_sent(self) -> None:
        """Mark entries committed whose tx is on chain; retry those whose tx failed or is lost."""
        by_tx: dict[str, list[Entry]] = defaultdict(list)
        for entry in await asyncio.to_thread(self.outbox.sent, self.batch_size * 8):
            by_tx[entry.tx_hash or ""].append(entry)
        for tx_hash, entries in by_tx.items():
            try:
                found = await self.confirm(tx_hash, entries[0].timeout_height)
            except Exception as exc:  # unknown is not lost: ask again next step
                log.warning("outbox: could not look up tx %s: %s", tx_hash, exc)
                continue
            if found:
                await asyncio.to_thread(self.outbox.mark_committed, [e.id for e in entries])
                log.info("outbox: tx %s committed (%s)", tx_hash, _describe(entries))
            elif found is False:
                await self._retry(entries, f"tx {tx_hash} failed on chain or can never land")
            elif _age_s(entries[0]) > self.confirm_timeout_s:
                await self._retry(entries, f"tx {tx_hash} not found on chain after "
                                           f"{self.confirm_timeout_s:g}s")

    async def submit_due(self) -> bool:
        """Claim one batch of due entries and broadcast it as one tx."""
        batch = await asyncio.to_thread(self.outbox.claim_batch, self.batch_size)
        if not batch:
            return False
        try:
            result = await self.submit(batch, self._record)
        except ChainUnavailable as exc:
            log.warning("outbox: chain node unreachable (%s); %s wait for it", exc,
                        _describe(batch))
            await asyncio.to_thread(self.outbox.postpone, [e.id for e in batch],
                                    f"chain node unreachable: {exc}", self.interval_s)
            return False
        except Exception as exc:
            await self._retry(batch, f"submit failed: {exc}")
            return False
        if result.done:
            await asyncio.to_thread(self.outbox.mark_committed, sorted(result.done))
            log.info("outbox: already on chain, nothing to send: %s",
                     _describe([e for e in batch if e.id in result.done]))
        sent = [e for e in batch if e.id not in result.rejected and e.id not in result.done]
        if sent and result.tx_hash:
            log.info("outbox: broadcast tx %s (%s)", result.tx_hash, _describe(sent))
        elif sent:
            await self._retry(sent, "submit returned no tx hash")
        for entry in batch:
            if entry.id in result.rejected:
                await self._retry([entry], f"rejected: {result.rejected[entry.id]}")
        return len(batch) == self.batch_size

    async def _record(self, ids: list[int], tx_hash: str, timeout_height: int | None) -> None:
        await asyncio.to_thread(self.outbox.mark_sent, ids, tx_hash, timeout_height)

    async def _retry(self, entries: list[Entry], error: str) -> None:
        log.warning("outbox: will retry %s: %s", _describe(entries), error)
        failed = await asyncio.to_thread(self.outbox.mark_retry, [e.id for e in entries], error)
        for entry in failed:
            log.error("outbox: giving up on %s after %d attempts: %s",
                      entry.key, entry.attempts, error)


def _describe(entries: list[Entry]) -> str:
    """``3 entries: MsgStartInference×2, MsgFinishInference×1; keys finish_inference:9f2c…``
    for log lines: the keys (each cut to KEY_CHARS) let an operator follow one inference's
    message from its queueing to the tx that carried it."""
    kinds = ", ".join(f"{name}×{n}" for name, n in
                      Counter(e.message_name for e in entries).items())
    keys = " ".join(_short(e.key) for e in entries[:KEYS_LOGGED])
    more = f" and {len(entries) - KEYS_LOGGED} more" if len(entries) > KEYS_LOGGED else ""
    return f"{len(entries)} entries: {kinds}; keys {keys}{more}"


def _short(key: str) -> str:
    return key if len(key) <= KEY_CHARS else key[:KEY_CHARS] + "…"


def _age_s(entry: Entry) -> float:
    return (utc_now() - entry.sent_at).total_seconds() if entry.sent_at else float("inf")
