"""What a developer's funds must still cover at this transfer agent.

The chain escrows an inference's cost when its MsgStartInference lands, but the transfer agent
answers the developer as soon as the executor's first token comes, a block or more earlier.
Checking the developer's balance (or allowance) alone would let one who can pay for one request
send ten at once and be answered ten times: nine starts would then be refused for lack of funds
and nine answered inferences would expire unpaid. So the check subtracts what this agent has
already promised: requests still waiting for a first token, and starts it has queued that no
committed block carries yet. One check runs at a time, so two requests cannot both count the
same coins.

Another transfer agent's promises are not visible here: a developer who spreads requests over
k agents can overdraw by at most k − 1 times its funds, and only until the first starts land.
"""

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from apinode import openai_errors as errors
from apinode.outbox import Outbox
from apinode.store import OutboxState

OWED = (OutboxState.PENDING, OutboxState.SENT)
# What a developer's funds are read as (e.g. "balance"), and how.
Funds = tuple[str, Callable[[], Awaitable[int]]]


class Spending:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._serving: Counter[str] = Counter()
        # Queued starts by developer: outbox key → cost, until a block carries them.
        self._queued: dict[str, dict[str, int]] = {}
        self._checking = asyncio.Lock()

    def promised(self, developer: str) -> int:
        """Coins of ``developer`` this agent has promised and the chain does not show yet."""
        queued = self._queued.get(developer, {})
        for key in list(queued):
            entry = self._outbox.get(key)
            if entry is None or entry.state not in OWED:
                del queued[key]
        if not queued:
            self._queued.pop(developer, None)
        return self._serving[developer] + sum(queued.values())

    @contextlib.asynccontextmanager
    async def hold(self, developer: str, cost: int,
                   funds: Sequence[Funds]) -> AsyncIterator[None]:
        """Holds ``cost`` of the developer's funds while the request is served; refuses it
        unless each of ``funds`` (its balance, and its allowance for this agent when it pays
        through one), read from the chain, covers it on top of what is already promised."""
        async with self._checking:
            promised = self.promised(developer)
            for what, read in funds:
                have = await read()
                if have - promised < cost:
                    raise errors.insufficient_balance(
                        f"This request can cost up to {cost} ninfer; {developer} has {have} "
                        f"ninfer ({what}), of which {promised} is held for its requests in "
                        f"flight at this transfer agent.")
            self._serving[developer] += cost
        try:
            yield
        finally:
            self._serving[developer] -= cost
            if not self._serving[developer]:
                del self._serving[developer]

    def queued(self, developer: str, outbox_key: str, cost: int) -> None:
        """The start of a held request is in the outbox: it stays promised until a committed
        block carries it (the chain's balance then shows the escrow) or it fails."""
        self._queued.setdefault(developer, {})[outbox_key] = cost
