"""The transfer agent's commitments of API-key requests (docs/design.md §3.3).

No developer signs an API-key request, so the chain takes its start only under a commitment
this agent put on chain first: the draw reads the random value of the block after the one that
took the commitment, and the commitment locks a forfeit from the agent, returned when the
start lands (chain/inference/key_commitments.py). The requests that come in within
``batch_window_s`` of each other go out in one ``MsgCommitKeyRequests``; each caller gets its
draw height once that block exists. The price is latency: an API-key request waits for the
commitment's block and the next one before its executor is known, about two blocks more than
a signed request (bench/gateway_bench.py measures it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from apinode import openai_errors as errors
from apinode.tx_sender import TxRejected, TxSender
from chain.inference.key_commitments import MAX_REQUESTS
from inferchain_pb.inference.v1.inference_pb2 import KeyRequest, MsgCommitKeyRequests

log = logging.getLogger(__name__)

# How long a request waits for others to share its commitment's tx: a tx a request costs
# the agent a signature, a simulation and a broadcast, and a block takes far longer.
BATCH_WINDOW_S = 0.05
# How long a request waits for its commitment to land and the next block to exist.
COMMIT_WAIT_S = 30.0
# How often a batch asks meanwhile: each poll it misses a block by delays its requests' first
# tokens, and the questions (the commitment's tx, the latest height) are cheap for a node.
POLL_S = 0.05


@dataclass
class _Waiting:
    inference_id: str
    max_escrow: int
    draw_height: asyncio.Future[int]


class KeyRequestCommitter:
    """Commits API-key requests for one transfer agent, whose ``sender`` signs the txs."""

    def __init__(self, sender: TxSender, *, batch_window_s: float = BATCH_WINDOW_S,
                 wait_s: float = COMMIT_WAIT_S) -> None:
        self._sender = sender
        self._batch_window_s = batch_window_s
        self._wait_s = wait_s
        self._waiting: list[_Waiting] = []
        self._sending: set[asyncio.Task] = set()

    async def draw_height(self, inference_id: str, max_escrow: int) -> int:
        """Commits the request, to escrow at most ``max_escrow``, and returns the height its
        draw is at (the block after the commitment's) once that block exists. Raises the
        OpenAI error to answer with when the commitment cannot be made (503)."""
        waiting = _Waiting(inference_id, max_escrow, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        if len(self._waiting) == 1:
            task = asyncio.create_task(self._send_after_window())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return await waiting.draw_height

    async def _send_after_window(self) -> None:
        await asyncio.sleep(self._batch_window_s)
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_REQUESTS], self._waiting[MAX_REQUESTS:]
            try:
                height = await self._commit(batch)
            except Exception as exc:  # every request of the batch hears it
                for waiting in batch:
                    if not waiting.draw_height.done():  # its developer may have left
                        waiting.draw_height.set_exception(exc)
                continue
            for waiting in batch:
                if not waiting.draw_height.done():
                    waiting.draw_height.set_result(height + 1)

    async def _commit(self, batch: list[_Waiting]) -> int:
        """Sends one commitment of the batch; the height of the block that took it, once the
        block after it, whose value the batch's draws read, exists too (one wait for the
        batch, not one a request)."""
        msg = MsgCommitKeyRequests(creator=self._sender.address, requests=[
            KeyRequest(inference_id=w.inference_id, max_escrow=w.max_escrow) for w in batch])
        try:
            tx_hash = await self._sender.send([msg])
        except TxRejected as exc:
            log.error("transfer agent %s: the chain refused to commit %d API-key requests "
                      "(code %d: %s); they are answered 503 until it takes them (does the "
                      "agent hold the forfeits?)", self._sender.address, len(batch), exc.code,
                      exc.log)
            raise errors.commitment_refused(exc.log) from exc
        give_up = time.monotonic() + self._wait_s
        while (landed := await self._sender.landed(tx_hash)) is None:
            if time.monotonic() > give_up or await self._sender.never_lands(tx_hash):
                raise errors.chain_stalled(self._wait_s)
            await asyncio.sleep(POLL_S)
        result, height = landed
        if result.code:
            log.error("transfer agent %s: the commitment of %d API-key requests failed in "
                      "block %d (code %d: %s)", self._sender.address, len(batch), height,
                      result.code, result.log)
            raise errors.commitment_refused(result.log)
        while await self._sender.chain.latest_height() <= height:  # the draw's block
            if time.monotonic() > give_up:
                raise errors.chain_stalled(self._wait_s)
            await asyncio.sleep(POLL_S)
        log.info("transfer agent %s: committed %d API-key requests at height %d",
                 self._sender.address, len(batch), height)
        return height
