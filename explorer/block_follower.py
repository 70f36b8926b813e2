"""The explorer's view of the chain head: the latest blocks it saw, and whether the node
answers at all.

The chain serves only its latest block (``GetLatestBlock``), so the explorer keeps the blocks
it saw while following the head: "recent blocks" are those since the explorer started, at
most ``keep`` of them. One follower task polls the node; pages and the status endpoint read
what it last saw instead of asking the node on every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from cosmpy.protos.cosmos.base.tendermint.v1beta1.query_pb2 import GetLatestBlockResponse

from apinode.chain_queries import ChainQueryError
from explorer.chain_reader import ChainReader
from inferchain_pb.inference.v1.epochs_pb2 import Epoch, EpochStage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockRow:
    height: int
    time_ns: int
    hash_hex: str
    app_hash_hex: str
    proposer_hex: str
    txs: int


@dataclass(frozen=True)
class Head:
    """What the follower last learned; ``error`` is set while the node does not answer."""

    chain_id: str = ""
    height: int = 0
    block_time_ns: int = 0
    epoch: Epoch | None = None
    error: str = ""
    seen_at: float = 0.0

    @property
    def up(self) -> bool:
        return not self.error and self.seen_at > 0

    def as_json(self) -> dict:
        epoch = self.epoch
        return {"up": self.up, "error": self.error, "chain_id": self.chain_id,
                "height": self.height, "block_time_ns": self.block_time_ns,
                "epoch": epoch.number if epoch else None,
                "stage": EpochStage.Name(epoch.stage) if epoch else None}


class BlockFollower:
    def __init__(self, reader: ChainReader, poll_s: float, keep: int = 50) -> None:
        self.reader = reader
        self.poll_s = poll_s
        self.head = Head()
        self.blocks: deque[BlockRow] = deque(maxlen=keep)

    async def run(self) -> None:
        """Polls until cancelled; a failure is shown, logged once, and retried."""
        while True:
            try:
                await self.refresh()
            except ChainQueryError as exc:
                if self.head.error != str(exc):
                    log.warning("chain node does not answer: %s", exc)
                self.head = Head(self.head.chain_id, self.head.height, self.head.block_time_ns,
                                 self.head.epoch, str(exc), self.head.seen_at)
            await asyncio.sleep(self.poll_s)

    async def refresh(self) -> None:
        status = await self.reader.status()
        block = await self.reader.latest_block()
        epoch = (await self.reader.queries.epoch()).current
        if self.head.error:
            log.info("chain node answers again at height %d", status.height)
        self.head = Head(status.chain_id, status.height, status.block_time_unix_ns, epoch,
                         "", time.monotonic())
        self._remember(block)

    def _remember(self, reply: GetLatestBlockResponse) -> None:
        header = reply.block.header
        if header.height <= 0 or (self.blocks and self.blocks[0].height >= header.height):
            return
        self.blocks.appendleft(BlockRow(
            height=header.height, time_ns=header.time.seconds * 1_000_000_000 + header.time.nanos,
            hash_hex=reply.block_id.hash.hex(), app_hash_hex=header.app_hash.hex(),
            proposer_hex=header.proposer_address.hex(), txs=len(reply.block.data.txs)))
