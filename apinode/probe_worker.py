"""The probe worker: requests this participant pays for, as a developer, to every model the
chain holds its members to probe, at random heights of each epoch (docs/design.md §10.4).

Rewards follow weight, scaled by what a member served of its draws (1 when it was drawn for
nothing, §7.5). So a member whose models see no requests is never drawn, owes no checks, and
is paid its whole share without keeping its model loaded once its proof of compute is done.
Probes give every served model draws in every epoch: each is an ordinary request, drawn,
started, paid and checked like any other. A member that does not serve its draw is passed over
(or refuses, a miss), and past the allowance it loses its reward and a reputation step (§6.7);
its model's other servers owe checks of the probes, which they cannot make without the model.

Probing is owed, not left to goodwill: the chain counts each member's probes and judges a
member short of ``probe_quota`` per probed model lazy (chain/inference/probes.py). A probe
counts when its commitment lands, so each goes through this node's OpenAI endpoint with an API
key of the participant's own: its transfer agent commits it naming its model (the chain cannot
count a signed request, whose draw its developer may grind towards an accomplice). Only a
member of the current epoch probes: a participant before its first weight or after it
withdrew owes none and is paid nothing for the upkeep.

When: at least ``per_epoch`` (and at least the chain's quota) per model, at heights drawn
afresh each epoch from this process's own randomness over all but the epoch's last tenth (or
more: the blocks ``LANDING_S`` take at the chain's pace), so no executor can tell a probe's
time from a developer's and each commitment lands in its epoch.
Once a drawn height has passed, the chain's count is the truth: a probe that failed before its
commitment (no funds, the node stopping) is sent again, one whose picks all failed after it is
not (it counted). A node restarted mid-epoch plans what is still missing. What a probe asks
cannot be known ahead either: random numbers in a short question, sampled at temperature 1
under a random seed, so no stock of answers to past probes serves the next one without the
model. The answer is discarded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass

import httpx

from apinode.api_keys import ApiKeys
from apinode.chain_queries import ChainQueries, ChainQueryError
from inferchain_pb.inference.v1.epochs_pb2 import Epoch
from inferchain_pb.inference.v1.query_pb2 import ProbeCount

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
# Blocks between two sends of one model's probes: a probe refused before its commitment (no
# executor at the moment, no funds) is tried again, but not every step.
RETRY_BLOCKS = 3
# Seconds from a probe's drawn height to its commitment's block, at most: a step's wait, the
# request's way through this node's transfer agent and the commitment tx's block, on a busy
# machine. The epoch's last blocks within it get no probe, since one committed after the
# epoch counts in the next.
LANDING_S = 10.0


def probe_heights(epoch: Epoch, after: int, count: int, rng: random.Random,
                  blocks_per_s: float = 0.0) -> list[int]:
    """``count`` heights of ``epoch`` after height ``after``, each uniform over what is left of
    its span for probes (``probe_span``): a node started or restarted mid-epoch still probes
    ``count`` times, and never at a height this process may already have probed at."""
    first = max(epoch.start_height, after + 1)
    last = probe_span(epoch, blocks_per_s)
    if first > last:
        return []
    return sorted(rng.randint(first, last) for _ in range(count))


def probe_span(epoch: Epoch, blocks_per_s: float = 0.0) -> int:
    """The last height a probe is sent at: the epoch's last tenth (at least 3 blocks, and at
    least what ``LANDING_S`` takes at ``blocks_per_s``) is left for its commitment to land,
    since the chain counts a probe in the epoch whose block took it."""
    landing = max(3, epoch.length // 10, math.ceil(blocks_per_s * LANDING_S))
    return epoch.start_height + epoch.length - 1 - min(landing, epoch.length // 2)


def probe_prompt(rng: random.Random) -> str:
    a = rng.randrange(1, 1_000_000)
    return rng.choice(PROMPTS).format(a=a, b=rng.randrange(1, 1_000_000), c=a + 5)


def committed_in(counts: list[ProbeCount], epoch: Epoch) -> Counter[str]:
    """What the chain counted of this participant's probes in ``epoch``, by model."""
    last = epoch.start_height + epoch.length - 1
    made: Counter[str] = Counter()
    for entry in counts:
        if epoch.start_height <= entry.height <= last:
            made[entry.model_id] += entry.count
    return made


@dataclass
class _Plan:
    """One model's probes in one epoch: how many the chain had counted when it was planned,
    and the heights of the rest."""

    counted: int
    heights: list[int]


class ProbeWorker:
    """Sends at least ``per_epoch`` probes of ``max_tokens`` tokens per probed model and epoch
    through the OpenAI endpoint at ``url`` (this node's, whose transfer agent is ``address``),
    with an API key of ``address`` that ``keys`` (this node's) issues when the worker starts."""

    def __init__(self, chain: ChainQueries, url: str, keys: ApiKeys, address: str, *,
                 per_epoch: int, max_tokens: int, interval_s: float = 2.0) -> None:
        self.chain = chain
        self.address = address
        self.url = url
        self.per_epoch = per_epoch
        self.max_tokens = max_tokens
        self.interval_s = interval_s
        self._keys = keys
        self._key = ""
        self._pace: tuple[int, float] | None = None  # the first (height, time) seen
        self._random = random.SystemRandom()
        self._epoch: int | None = None
        self._plans: dict[str, _Plan] = {}
        self._seen_height: int | None = None
        self._probes: dict[str, set[asyncio.Task[None]]] = {}
        self._sent_at: dict[str, int] = {}
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Step every ``interval_s`` until ``stop()``; probes still waiting are cancelled."""
        self._stop.clear()
        # Issued now, not when the first probe is due: a member's first epoch has no time to
        # spare (a key is one database row, a sha256 of it).
        self._key = await asyncio.to_thread(self._keys.issue, self.address)
        log.info("probes: at least %d per probed model and epoch (and the chain's quota), %d "
                 "tokens each, paid by this participant's account through an API key of its "
                 "own", self.per_epoch, self.max_tokens)
        async with httpx.AsyncClient(base_url=self.url, timeout=PROBE_TIMEOUT_S) as client:
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
            waiting = [task for tasks in self._probes.values() for task in tasks]
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
        log.info("probes: worker stopped")

    def stop(self) -> None:
        self._stop.set()

    async def step(self, client: httpx.AsyncClient) -> None:
        height = await self.chain.latest_height()
        now = time.monotonic()
        if self._pace is None:
            self._pace = (height, now)
        pace = (height - self._pace[0]) / max(now - self._pace[1], 1e-9)
        seen = self._seen_height
        if seen is None or height <= seen:
            # The first step only learns where the chain is: probes lie ahead of it.
            self._seen_height = max(height, seen or 0)
            return
        epoch, members = await self.chain.epoch()
        if not any(m.address == self.address and m.weight > 0 for m in members.members):
            self._seen_height, self._epoch = height, None
            self._plans.clear()
            return  # probing is a member's share of the upkeep: a newcomer owes none yet
        if self._epoch != epoch.number:
            # Once an epoch: the models and the quota are fixed at its first block.
            made = committed_in(await self.chain.probes(self.address), epoch)
            target = max(self.per_epoch, members.probe_quota)
            self._plans = {
                model_id: _Plan(made[model_id], probe_heights(
                    epoch, seen, max(0, target - made[model_id]), self._random, pace))
                for model_id in members.probed_model_ids}
            self._epoch = epoch.number
            if members.probed_model_ids:
                log.info("probes: epoch %d, %d per model of %s (the chain's quota %d)",
                         epoch.number, target, ", ".join(members.probed_model_ids),
                         members.probe_quota)
        self._seen_height = height
        for model_id, plan in self._plans.items():
            for _ in range(sum(seen < h <= height for h in plan.heights)):
                self._send(client, model_id, height)
        # A probe refused before its commitment was not counted: once none of the model's is
        # in flight (a slow one may still commit), what the chain counted short of what was
        # due goes again.
        due = {model_id: plan.counted + sum(h <= height for h in plan.heights)
               for model_id, plan in self._plans.items()}
        short = [model_id for model_id in due if due[model_id] and not
                 self._probes.get(model_id) and height <= probe_span(epoch, pace) + 1
                 and height >= self._sent_at.get(model_id, 0) + RETRY_BLOCKS]
        if not short:
            return
        made = committed_in(await self.chain.probes(self.address), epoch)
        for model_id in short:
            for _ in range(due[model_id] - made[model_id]):
                self._send(client, model_id, height)

    def _send(self, client: httpx.AsyncClient, model_id: str, height: int) -> None:
        self._sent_at[model_id] = height
        task = asyncio.create_task(self.probe(client, model_id))
        tasks = self._probes.setdefault(model_id, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def probe(self, client: httpx.AsyncClient, model_id: str) -> None:
        body = {"model": model_id, "max_tokens": self.max_tokens, "temperature": 1.0,
                "seed": self._random.randrange(2**63),
                "messages": [{"role": "user", "content": probe_prompt(self._random)}]}
        try:
            reply = await client.post("/v1/chat/completions", json=body,
                                      headers={"Authorization": f"Bearer {self._key}"})
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
