"""The probe worker: requests this participant pays for, as a developer, to every model the
chain draws for, at random heights of each epoch (docs/design.md §10.4).

Rewards follow weight, scaled by what a member served of its draws (1 when it was drawn for
nothing, §7.5). So a member whose models see no requests is never drawn, owes no checks, and
is paid its whole share without keeping its model loaded once its proof of compute is done.
Probes give every served model draws in every epoch: each is an ordinary request, signed with
the participant's account key and sent to its own OpenAI endpoint, so it is drawn, started,
paid and checked like any other. A member that does not serve its draw is passed over (or
refuses, a miss), and past the allowance it loses its reward and a reputation step (§6.7); its
model's other servers owe checks of the probes, which they cannot make without the model.

Only a member of the current epoch probes: a participant before its first weight or after it
withdrew is paid nothing for the upkeep, so it pays none of it.

When: ``per_epoch`` heights per model, drawn afresh each epoch from this process's own
randomness over the epoch's span, so no executor can tell a probe's time from a developer's.
A node restarted mid-epoch draws new heights and sends only those still ahead. The answer is
discarded; a probe that fails (no executor, no funds, the node stopping) is logged, not
repeated: the next epoch draws again. What a probe asks cannot be known ahead either: random
numbers in a short question, sampled at temperature 1 under a random seed, so no stock of
answers to past probes serves the next one without the model.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import suppress

import httpx

from apinode.chain_queries import ChainQueries, ChainQueryError
from apinode.openai_signing import SignedRequests
from inferchain_pb.inference.v1.epochs_pb2 import Epoch

log = logging.getLogger(__name__)

# Short asks with random numbers in them, sampled at temperature 1 under a random seed: a
# member that kept answers to known probes instead of its model would need one per prompt
# and seed, and a probe costs its sender a short answer's fee, nothing more.
PROMPTS = ("What is {a} plus {b}?", "Write one sentence about the number {a}.",
           "Is {a} larger than {b}? Answer briefly.", "Count from {a} to {c}.",
           "Give a word that starts with the same letter as the number {a}.")
# A probe waits for its answer as a developer would: first token and generation on a busy
# CPU executor can take minutes.
PROBE_TIMEOUT_S = 600.0


def probe_heights(epoch: Epoch, after: int, count: int, rng: random.Random) -> list[int]:
    """``count`` heights of ``epoch`` after height ``after``, each uniform over what is left of
    it: a node started or restarted mid-epoch still probes ``count`` times, and never at a
    height this process may already have probed at."""
    first = max(epoch.start_height, after + 1)
    last = epoch.start_height + epoch.length - 1
    if first > last:
        return []
    return sorted(rng.randint(first, last) for _ in range(count))


def probe_prompt(rng: random.Random) -> str:
    a = rng.randrange(1, 1_000_000)
    return rng.choice(PROMPTS).format(a=a, b=rng.randrange(1, 1_000_000), c=a + 5)


class ProbeWorker:
    """Sends ``per_epoch`` probes of ``max_tokens`` tokens per served model and epoch through
    the OpenAI endpoint at ``url`` (this node's), signed with ``account_key`` for the transfer
    agent ``address``."""

    def __init__(self, chain: ChainQueries, url: str, account_key: bytes, address: str,
                 chain_id: str, *, per_epoch: int, max_tokens: int,
                 interval_s: float = 2.0) -> None:
        self.chain = chain
        self.address = address
        self.url = url
        self.per_epoch = per_epoch
        self.max_tokens = max_tokens
        self.interval_s = interval_s
        self._auth = SignedRequests(account_key, address, chain_id)
        self._random = random.SystemRandom()
        self._schedules: dict[tuple[int, str], list[int]] = {}
        self._seen_height: int | None = None
        self._planned_epoch: int | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Step every ``interval_s`` until ``stop()``; probes still waiting are cancelled."""
        self._stop.clear()
        log.info("probes: %d per served model and epoch, %d tokens each, paid by this "
                 "participant's account", self.per_epoch, self.max_tokens)
        async with httpx.AsyncClient(base_url=self.url, auth=self._auth,
                                     timeout=PROBE_TIMEOUT_S) as client:
            while not self._stop.is_set():
                try:
                    await self.step(client)
                except ChainQueryError as exc:
                    log.warning("probes: chain unreachable, trying again in %.1fs: %s",
                                self.interval_s, exc)
                except Exception:  # a bug must not end the node
                    log.exception("probes: step failed; trying again in %.1fs",
                                  self.interval_s)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval_s)
            for probe in self._probes:
                probe.cancel()
            await asyncio.gather(*self._probes, return_exceptions=True)
        log.info("probes: worker stopped")

    def stop(self) -> None:
        self._stop.set()

    async def step(self, client: httpx.AsyncClient) -> None:
        height = await self.chain.latest_height()
        seen = self._seen_height
        if seen is None or height <= seen:
            # The first step only learns where the chain is: probes lie ahead of it.
            self._seen_height = max(height, seen or 0)
            return
        epoch, members = await self.chain.epoch()
        if not any(m.address == self.address and m.weight > 0 for m in members.members):
            self._seen_height, self._planned_epoch = height, None
            self._schedules.clear()
            return  # probing is a member's share of the upkeep: a newcomer earns nothing yet
        if self._planned_epoch != epoch.number:
            # Once an epoch: who can be drawn for a model is fixed at its first block.
            for model in await self.chain.served_models():
                self._schedules[epoch.number, model.id] = probe_heights(
                    epoch, seen, self.per_epoch, self._random)
            self._planned_epoch = epoch.number
        self._seen_height = height  # from here on nothing can fail before the probes go
        # The last epoch's schedules too: its final heights may fall in this step.
        for (_, model_id), heights in self._schedules.items():
            for _ in range(sum(seen < h <= height for h in heights)):
                task = asyncio.create_task(self.probe(client, model_id))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)
        self._schedules = {k: v for k, v in self._schedules.items() if k[0] == epoch.number}

    async def probe(self, client: httpx.AsyncClient, model_id: str) -> None:
        body = {"model": model_id, "max_tokens": self.max_tokens, "temperature": 1.0,
                "seed": self._random.randrange(2**63),
                "messages": [{"role": "user", "content": probe_prompt(self._random)}]}
        try:
            reply = await client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            log.warning("probes: a probe of %s got no answer: %s", model_id, exc)
            return
        if reply.status_code == 200:
            log.info("probes: %s answered a probe (inference %s)", model_id,
                     reply.json().get("inference_id"))
            return
        try:
            error = reply.json()["error"]
            reason = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            reason = reply.text[:200]
        level = logging.INFO if reply.status_code == 503 else logging.WARNING
        log.log(level, "probes: a probe of %s was refused (%d %s)%s", model_id,
                reply.status_code, reason,
                "; this participant's account cannot pay for probes"
                if reply.status_code == 402 else "")
