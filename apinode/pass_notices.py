"""Both sides of a passed draw pick (docs/design.md §3.3; chain/inference/pass_notices.py).

The transfer agent's side (``PassNoticer``): before it passes a pick that left it no signed
refusal (unreachable, silent past its share of the draw window, or failing it lately), it
lands a notice naming the pick and waits out the claim window; only an unclaimed notice lets
its start pass the pick. Notices of many requests within 50 ms share one tx.

The pick's side (``PassClaimer``): every block, this node reads the notices naming it and
claims those it can serve (its ML node answers with the noticed model), so that no agent
passes it while it is alive; the agent then forwards the request to it again. A node whose
ML node is down claims nothing, and is passed.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from apinode.chain_queries import HEIGHT_POLL_S, ChainQueries, ChainQueryError
from apinode.tx_batches import TxBatcher
from apinode.tx_sender import TxRejected, TxSender
from chain.inference.pass_notices import MAX_ENTRIES
from inferchain_pb.inference.v1.inference_pb2 import (
    MsgClaimPasses,
    MsgNoticePasses,
    PassClaim,
    PassNotice,
    PickPass,
)

log = logging.getLogger(__name__)


class PassNoticer:
    """Lands one transfer agent's notices of passed picks."""

    def __init__(self, sender: TxSender) -> None:
        self._batches: TxBatcher[PickPass] = TxBatcher(
            sender, lambda passes: MsgNoticePasses(creator=sender.address, passes=passes),
            MAX_ENTRIES, what="notices of passed picks",
            hint="the requests waiting on them go to no later pick")

    async def notice(self, item: PickPass, claim_blocks: int) -> int:
        """Lands the notice and returns the height of the block that took it once the pick's
        claim window (``claim_blocks`` blocks after it) is over, so that what the chain says
        of the notice is final; BatchRefused or BatchStalled when it cannot."""
        height = await self._batches.land(item)
        await self._batches.wait_for_height(height + claim_blocks)
        return height


class PassClaimer:
    """Claims, for the participant ``sender`` signs for, the requests noticed to it that
    ``serves`` keeps of the open notices it is handed: those its node would run (one whose
    forward reached it is not: its agent asked)."""

    def __init__(self, chain: ChainQueries, sender: TxSender,
                 serves: Callable[[list[PassNotice]], Awaitable[list[PassNotice]]],
                 interval_s: float = HEIGHT_POLL_S) -> None:
        self._chain = chain
        self._sender = sender
        self._serves = serves
        self._interval_s = interval_s
        self._claimed: dict[tuple[str, str, int], int] = {}  # → the notice's last claim height
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        seen = 0
        while not self._stop.is_set():
            try:
                height = await self._chain.latest_height()
                if height != seen:
                    seen = height
                    await self.claim_open(height)
            except ChainQueryError as exc:
                log.warning("pass claims: cannot read the chain (%s); trying again", exc)
            except Exception:  # a bug must not end the node's claims
                log.exception("pass claims: step failed; trying again")
            try:
                await asyncio.wait_for(self._stop.wait(), self._interval_s)
            except TimeoutError:
                pass

    async def claim_open(self, height: int) -> int:
        """Claims the notices still open after block ``height``: how many."""
        claim_blocks = int((await self._chain.params())["pass_claim_blocks"])
        self._claimed = {k: last for k, last in self._claimed.items() if last > height}
        open_notices = [n for n in await self._chain.pass_notices(self._sender.address,
                                                                  height - claim_blocks)
                        if not n.claimed_at and n.height + claim_blocks > height
                        and n.transfer_agent != self._sender.address  # its own pass
                        and (n.transfer_agent, n.inference_id, n.attempt) not in self._claimed]
        if not open_notices:
            return 0
        served = await self._serves(open_notices)
        if len(served) < len(open_notices):
            log.info("not claiming %d of the %d requests transfer agents say they pass: this "
                     "node had their forward or cannot serve their model now",
                     len(open_notices) - len(served), len(open_notices))
        claims = []
        for notice in served:
            claims.append(PassClaim(transfer_agent=notice.transfer_agent,
                                    inference_id=notice.inference_id, attempt=notice.attempt))
            self._claimed[(notice.transfer_agent, notice.inference_id, notice.attempt)] = \
                notice.height + claim_blocks
        for first in range(0, len(claims), MAX_ENTRIES):
            batch = claims[first:first + MAX_ENTRIES]
            try:
                await self._sender.send([MsgClaimPasses(creator=self._sender.address,
                                                        claims=batch)])
            except TxRejected as exc:
                log.warning("the chain refused this node's claim of %d passed requests (code "
                            "%d: %s)", len(batch), exc.code, exc.log)
                continue
            for claim in batch:
                log.warning("transfer agent %s says it passes this node on inference %s "
                            "(attempt %d): claimed, so it forwards the request here again",
                            claim.transfer_agent, claim.inference_id, claim.attempt)
        return len(claims)
