"""This participant's canaries (docs/design.md §6.9): planting them as executor, claiming them.

Which of its inferences are canaries follows from its own epoch seed (the one its validator
worker committed for the epoch of the inference's draw), so the executor knows at admission
and nobody else can know before the seed is revealed. On a canary it delivers the honest
output and records the artifact shifted; once the checks are over (the window closed, or a
vote opened on a failing report) it claims the canary, which puts the real artifact on record
for a vote. A canary it does not claim in time costs it the epoch's rewards, as a missed check
would.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from apinode.chain_queries import ChainQueries
from apinode.outbox import Outbox
from apinode.validation.seeds import SeedStore
from chain.inference import artifact
from chain.validation import canary
from chain.validation.seals import window_openings_over
from inferchain_pb.inference.v1.inference_pb2 import Model, MsgStartInference
from inferchain_pb.inference.v1.validation_pb2 import (
    FAILED,
    OPEN,
    MsgClaimCanary,
    ValidationTask,
)

log = logging.getLogger(__name__)

CLAIM_KEY = "canary_claim"


class Planted(NamedTuple):
    """A canary this node plants: its key and the shift's size in quanta."""

    key: bytes
    quanta: int

    def apply(self, encoded: bytes) -> bytes:
        return canary.shift(encoded, self.key, self.quanta)


async def planted_shift(chain: ChainQueries, seeds: SeedStore, start: MsgStartInference,
                        model: Model) -> Planted | None:
    """How this node's finish of ``start`` shifts its artifact: None unless the inference is
    one of its canaries at the chain's current rate."""
    params, epoch = await asyncio.gather(chain.params("validation"), chain.epoch())
    rate, length = int(params.get("canary_rate_ppm", 0)), epoch.current.length
    if not rate:
        return None
    seed = await asyncio.to_thread(seeds.get, max(start.draw_height - 1, 0) // length)
    if seed is None:
        return None
    key = canary.key(seed, start.inference_id)
    return Planted(key, canary.model_quanta(model, model.top_k)) \
        if canary.is_canary(key, rate) else None


class CanaryClaims:
    """Follows this node's canaries from their finish to their claim."""

    def __init__(self, address: str, chain: ChainQueries, seeds: SeedStore,
                 outbox: Outbox) -> None:
        self.address = address
        self.chain = chain
        self.seeds = seeds
        self.outbox = outbox
        self._pending: dict[str, bytes] = {}  # inference id → canary key

    async def watch(self, task: ValidationTask) -> None:
        """Remembers ``task`` if it is one of this node's canaries, not claimed yet."""
        if task.executor != self.address or task.canary_key or not task.canary_rate_ppm:
            return
        seed = await asyncio.to_thread(self.seeds.get, task.draw_epoch)
        if seed is None:
            return
        key = canary.key(seed, task.inference_id)
        if canary.is_canary(key, task.canary_rate_ppm):
            self._pending[task.inference_id] = key

    async def claim_due(self, height: int, claim_blocks: int) -> None:
        """Queues the claim of each watched canary whose checks are over."""
        for inference_id, key in list(self._pending.items()):
            task = await self.chain.validation_task(inference_id)
            if task is None or task.canary_key:
                del self._pending[inference_id]
                continue
            if task.state == OPEN or (height <= task.open_until and
                                      not window_openings_over(task)):
                continue  # its reports are still sealed or being opened
            del self._pending[inference_id]
            if task.state == FAILED or height > task.closed_height + claim_blocks:
                log.error("canary %s was not claimed in time (task state %d, claimable until "
                          "height %d): the epoch's rewards are lost", inference_id, task.state,
                          task.closed_height + claim_blocks)
                continue
            if not await self._moved(task, key):
                continue
            message = MsgClaimCanary(creator=self.address, inference_id=inference_id, key=key)
            if await asyncio.to_thread(self.outbox.enqueue, f"{CLAIM_KEY}:{inference_id}",
                                       message):
                log.info("canary %s: its checks are over (%d reports), MsgClaimCanary queued",
                         inference_id, len(task.reports))

    async def _moved(self, task: ValidationTask, key: bytes) -> bool:
        """Whether the shift moved anything in the recorded artifact: the chain takes no
        claim of a canary it could not shift, nor counts it as one."""
        inference, model = await asyncio.gather(self.chain.inference(task.inference_id),
                                                self.chain.model(task.model_id))
        if inference is None or model is None:
            return False
        k, _ = artifact.token_ids(inference.artifact)
        return canary.moves(inference.artifact, key, canary.model_quanta(model, k))
