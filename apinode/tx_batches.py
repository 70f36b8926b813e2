"""Messages a transfer agent must land before a request can go on (its API-key commitments,
its notices of passed picks): what many requests ask for within a short window goes out in
one tx, and each caller learns the height of the block that took it.

A tx costs a signature, a simulation and a broadcast, and every caller waits for a block
anyway, so the window (50 ms) costs nothing a caller would notice while sparing the chain one
tx per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

from apinode.tx_sender import TxRejected, TxSender

log = logging.getLogger(__name__)

# How long an item waits for others to share its tx.
BATCH_WINDOW_S = 0.05
# How long a batch waits for its tx to land (and for what its callers wait on after it).
LAND_WAIT_S = 30.0
# How often a batch asks meanwhile: each poll it misses a block by delays its callers, and the
# questions (the tx, the latest height) are cheap for a node.
POLL_S = 0.05

Item = TypeVar("Item")


class BatchRefused(Exception):
    """The chain refused the batch's tx, at once or in its block (code and log are its)."""

    def __init__(self, code: int, log: str) -> None:
        super().__init__(f"code {code}: {log}")
        self.code = code
        self.log = log


class BatchStalled(Exception):
    """The batch's tx (or the block its callers wait for) did not come in time."""


@dataclass
class _Waiting(Generic[Item]):
    item: Item
    height: asyncio.Future[int]


class TxBatcher(Generic[Item]):
    """Lands items in batched txs: ``build`` makes one message of up to ``max_items`` of them,
    which ``sender`` signs; ``settle`` (once per batch, with the height of the block that took
    it) runs before the batch's callers hear that height."""

    def __init__(self, sender: TxSender, build: Callable[[list[Item]], Message],
                 max_items: int, settle: Callable[[int], Awaitable[None]] | None = None, *,
                 what: str, hint: str = "", batch_window_s: float = BATCH_WINDOW_S,
                 wait_s: float = LAND_WAIT_S) -> None:
        self.sender = sender
        self._what = what  # the items, for the operator's log: "API-key requests"
        self._hint = hint  # what the operator may look at when the chain refuses a batch
        self._build = build
        self._max_items = max_items
        self._settle = settle
        self._batch_window_s = batch_window_s
        self.wait_s = wait_s
        self._waiting: list[_Waiting[Item]] = []
        self._sending: set[asyncio.Task] = set()

    async def land(self, item: Item) -> int:
        """The height of the block that took ``item``, once ``settle`` is done with it;
        BatchRefused or BatchStalled otherwise."""
        waiting = _Waiting(item, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        if len(self._waiting) == 1:
            task = asyncio.create_task(self._send_after_window())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return await waiting.height

    async def _send_after_window(self) -> None:
        await asyncio.sleep(self._batch_window_s)
        while self._waiting:
            batch = self._waiting[:self._max_items]
            self._waiting = self._waiting[self._max_items:]
            try:
                height = await self._send([w.item for w in batch])
            except Exception as exc:  # every caller of the batch hears it
                for waiting in batch:
                    if not waiting.height.done():  # its caller may have left
                        waiting.height.set_exception(exc)
                continue
            for waiting in batch:
                if not waiting.height.done():
                    waiting.height.set_result(height)

    async def _send(self, items: list[Item]) -> int:
        try:
            return await self._land(items)
        except BatchRefused as exc:  # logged once for the batch, not once per caller
            log.error("%s: the chain refused a tx of %d %s (code %d: %s)%s",
                      self.sender.address, len(items), self._what, exc.code, exc.log,
                      f"; {self._hint}" if self._hint else "")
            raise

    async def _land(self, items: list[Item]) -> int:
        try:
            tx_hash = await self.sender.send([self._build(items)])
        except TxRejected as exc:
            raise BatchRefused(exc.code, exc.log) from exc
        give_up = time.monotonic() + self.wait_s
        while (landed := await self.sender.landed(tx_hash)) is None:
            if time.monotonic() > give_up or await self.sender.never_lands(tx_hash):
                raise BatchStalled(f"a tx of {len(items)} items did not land within "
                                   f"{self.wait_s:g}s")
            await asyncio.sleep(POLL_S)
        result, height = landed
        if result.code:
            raise BatchRefused(result.code, result.log)
        if self._settle is not None:
            await self._settle(height)
        return height

    async def wait_for_height(self, height: int) -> None:
        """Returns once the chain has committed ``height``; BatchStalled past the wait."""
        give_up = time.monotonic() + self.wait_s
        while await self.sender.chain.latest_height() < height:
            if time.monotonic() > give_up:
                raise BatchStalled(f"the chain did not reach height {height} within "
                                   f"{self.wait_s:g}s")
            await asyncio.sleep(POLL_S)
