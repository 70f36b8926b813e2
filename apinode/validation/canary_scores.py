"""This validator's scores of the outputs it failed, kept for a canary claim (docs/design.md
§6.9).

A report commits the hash of the scores it was measured from. Should the inference then be
claimed as a canary, each member whose report failed the shifted artifact opens its scores
(MsgOpenScores) and the chain measures them against the real one, so the claim's fresh vote
closes without its voters re-scoring anything. A passing report never opens its scores (a
member that passed a canary's shifted artifact did not compute it), so only failing reports
keep theirs: held in the outbox beside the seal, in the same transaction, so a restart loses
none, released once the claim lands and dropped once no claim can come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from sqlalchemy.orm import Session

from apinode.chain_queries import ChainQueries
from apinode.outbox import Outbox
from apinode.store import OutboxState
from chain.validation.seals import scores_open_until, scores_openers
from inferchain_pb.inference.v1.validation_pb2 import IN_VOTE, MsgOpenScores, ValidationTask

log = logging.getLogger(__name__)

SCORES_SUFFIX = ":scores"


class CanaryScores:
    """The held MsgOpenScores of this validator's failing reports, by outbox key."""

    def __init__(self, address: str, chain: ChainQueries, outbox: Outbox,
                 key_prefix: str) -> None:
        self.address = address
        self.chain = chain
        self.outbox = outbox
        self.key_prefix = key_prefix
        self._held: dict[str, str] | None = None  # outbox key → inference id

    def hold(self, session: Session, seal_key: str, inference_id: str, scores: bytes) -> None:
        """Keeps the scores of a failing report, in the transaction that queues its seal."""
        key = seal_key + SCORES_SUFFIX
        self.outbox.enqueue(key, MsgOpenScores(creator=self.address, inference_id=inference_id,
                                               scores=scores), session=session, held=True)
        if self._held is not None:
            self._held[key] = inference_id

    async def due(self, height: int, claim_blocks: int, unopened: Collection[str]) -> None:
        """Opens the scores of each claimed canary this validator failed, while the chain
        takes them, and drops those no claim can need any more. The task of a report whose
        seal key is in ``unopened`` (its opening still held) is not asked about: the chain
        takes no claim while a window seal is unopened, and a claim after the opening period
        finds no report of this validator to open scores for, which the next ask tells."""
        if self._held is None:
            entries = await asyncio.to_thread(self.outbox.with_prefix, f"{self.key_prefix}:",
                                              OutboxState.HELD)
            self._held = {e.key: e.message.inference_id for e in entries
                          if e.key.endswith(SCORES_SUFFIX)}
        for key, inference_id in list(self._held.items()):
            if key.removesuffix(SCORES_SUFFIX) in unopened:
                continue
            task = await self.chain.validation_task(inference_id)
            if task is not None and task.canary_key:
                if self._owed(task, height, claim_blocks):
                    del self._held[key]
                    if await asyncio.to_thread(self.outbox.release, key):
                        log.info("validator: %s was claimed as a canary; this node's report "
                                 "failed its shifted artifact, so it opens its scores of the "
                                 "output against the real one (MsgOpenScores queued)",
                                 inference_id)
                    continue
            elif task is not None and not self._unclaimable(task, height, claim_blocks):
                continue
            del self._held[key]
            await asyncio.to_thread(self.outbox.discard, key)

    def _owed(self, task: ValidationTask, height: int, claim_blocks: int) -> bool:
        return task.state == IN_VOTE and self.address in scores_openers(task) and \
            height <= scores_open_until(task, claim_blocks) and \
            all(r.validator != self.address for r in task.reports)

    @staticmethod
    def _unclaimable(task: ValidationTask, height: int, claim_blocks: int) -> bool:
        """No canary claim can come: canaries are off for it, or its claim period is over
        (it runs ``claim_blocks`` past ``closed_height``, never before ``open_until``)."""
        return not task.canary_rate_ppm or \
            height > max(task.closed_height, task.open_until) + claim_blocks
