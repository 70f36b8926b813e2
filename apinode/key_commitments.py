"""The transfer agent's commitments of API-key requests (docs/design.md §3.3).

No developer signs an API-key request, so the chain takes its start only under a commitment
this agent put on chain first: the draw reads the random value of the block after the one that
took the commitment, and the commitment locks a forfeit from the agent, returned when the
start lands (chain/inference/key_commitments.py). The requests that come in within 50 ms of
each other go out in one ``MsgCommitKeyRequests`` (apinode/tx_batches.py); each caller gets its
draw height once that block exists. The price is latency: an API-key request waits for the
commitment's block and the next one before its executor is known, about two blocks more than
a signed request (bench/gateway_bench.py measures it).
"""

from __future__ import annotations

import logging

from apinode import openai_errors as errors
from apinode.tx_batches import BatchRefused, BatchStalled, TxBatcher
from apinode.tx_sender import TxSender
from chain.inference.key_commitments import MAX_REQUESTS
from inferchain_pb.inference.v1.inference_pb2 import KeyRequest, MsgCommitKeyRequests

log = logging.getLogger(__name__)


class KeyRequestCommitter:
    """Commits API-key requests for one transfer agent, whose ``sender`` signs the txs."""

    def __init__(self, sender: TxSender) -> None:
        self._address = sender.address
        self._batches: TxBatcher[KeyRequest] = TxBatcher(
            sender, lambda requests: MsgCommitKeyRequests(creator=sender.address,
                                                          requests=requests),
            MAX_REQUESTS, self._draw_block, what="API-key requests to commit",
            hint="they are answered 503 until it takes them (does the agent hold the "
                 "forfeits?)")

    async def draw_height(self, inference_id: str, max_escrow: int,
                          probe_model_id: str = "") -> int:
        """Commits the request, to escrow at most ``max_escrow`` (a probe of
        ``probe_model_id`` when that is set: this agent's own request, which the chain counts
        towards its probe quota), and returns the height its draw is at (the block after the
        commitment's) once that block exists. Raises the OpenAI error to answer with when the
        commitment cannot be made (503)."""
        try:
            height = await self._batches.land(KeyRequest(
                inference_id=inference_id, max_escrow=max_escrow,
                probe_model_id=probe_model_id))
        except BatchRefused as exc:
            raise errors.commitment_refused(exc.log) from exc
        except BatchStalled as exc:
            raise errors.chain_stalled(self._batches.wait_s) from exc
        return height + 1

    async def _draw_block(self, height: int) -> None:
        """The block after the commitment's, whose value the batch's draws read: one wait for
        the batch, not one a request."""
        await self._batches.wait_for_height(height + 1)
        log.info("transfer agent %s: committed API-key requests at height %d", self._address,
                 height)
