"""The validator worker: the API node's side of validation (docs/design.md §6).

Each step:

1. **Seeds.** Make sure a seed is stored and its hash queued for the chain (MsgCommitSeed) for
   the next epoch, at the first step of the current one: the chain takes a commitment only
   before its epoch begins, and the validator owes the checks its seed assigns from the
   epoch's first block (in epoch 0, which no block precedes, the commitment for epoch 0 too:
   the chain takes it until the first inference finishes). A node that starts too late for an
   epoch sits that epoch out. Once an epoch is over, its seed is revealed (MsgClaimRewards)
   while the chain's reveal window is open, so the chain can recompute which checks the seed
   assigned.
2. **Openings.** Release the held openings of reports whose sealing is over (below), then
   the held scores of failing reports whose inferences were claimed as canaries
   (``apinode.validation.canary_scores``), before anything slow: the chain takes either for
   a few blocks only.
3. **Votes.** Tasks in a vote this validator was drawn for (PendingVotes) are re-scored first:
   their deadlines are the shortest.
4. **Tasks.** Follow the chain's feed of finished inferences (ValidationTasks by finish height)
   from where the last step stopped, and keep those the seed assigns (``EpochDuty.assigned``,
   the very rule the chain re-applies after the reveal); never the node's own inferences.
5. **Checks.** Re-score each kept inference on the node's ML node, a few at a time so that
   validation does not starve serving, and seal a node-key-signed MsgValidation with the
   measured figures (``apinode.validation.figures``); the chain judges pass or fail.

A report is sealed first and opened later, so that no validator can copy another's: while a
task takes reports, the chain sees only a hash of each (MsgSealValidation: the signed figures
under a random salt), and the MsgValidation that opens it is taken only once that sealing is
over (the task's deadline passed or every member that checks the model sealed; for a vote,
its deadline passed or every drawn voter sealed).
The check queues the seal and holds the opening in the outbox, in one transaction: a seal
never opened counts as a check not made, so the opening must outlive any crash. Each step
releases the openings whose sealing ended and whose seals are on chain; the heights that
decide it are kept in memory, and a new worker takes them again from its tasks on chain.

Everything sent goes through the outbox under a key per message (``commit_seed:<epoch>``,
``claim_rewards:<epoch>``, ``validation:<inference id>``, ``validation:<inference id>:vote``
for a report's seal, and the seal's key with ``:open`` for its opening), so sending survives
restarts and a message is never queued twice. The worker's own state (where the feed stopped,
checks to retry, when held openings fall due) is only a cache: a new worker rescans the last
validation window and skips whatever the outbox or the task's seals and reports already hold.

A failed query or ML node call is logged and retried on the next step; a check is retried
until its deadline passes. An opening the chain would no longer take (its task is gone, its
time passed, its seal never landed) is logged and left failed in the outbox. Nothing here
ends the node.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, fields
from typing import Any

from nacl.signing import SigningKey

from apinode.chain_queries import ChainQueries, ChainQueryError
from apinode.execute_wire import transform_of
from apinode.fault_switch import fault_switch
from apinode.mlnode_client import MlNodeClient, MlNodeError, MlNodeRefused
from apinode.outbox import Outbox
from apinode.store import OutboxState
from apinode.validation.canaries import CanaryClaims
from apinode.validation.canary_scores import SCORES_SUFFIX, CanaryScores
from apinode.validation.figures import Figures, ended_properly, measure
from apinode.validation.seeds import SeedStore
from chain.inference import artifact, payload
from chain.inference.delivery import Delivered, signed_delivery
from chain.scales import PPM
from chain.validation import logprob_scores
from chain.validation.sampling import CheckShares, seed_hash
from chain.validation.seals import awaits_scores, opening_heights
from chain.validation.verdict import allowed_violations, passes, threshold_micro
from inferchain_pb.inference.v1.epochs_pb2 import Epoch
from inferchain_pb.inference.v1.inference_pb2 import Inference, Model
from inferchain_pb.inference.v1.validation_pb2 import (
    MsgClaimRewards,
    MsgCommitSeed,
    MsgSealValidation,
    MsgValidation,
    ValidationReport,
    ValidationTask,
)
from mlnode.sampling_params import SamplingParams
from mlnode.types import EngineInfo

log = logging.getLogger(__name__)

# Outbox keys: "<prefix>:<epoch>" for seeds, "validation:<inference id>" for a report's seal
# (a ballot's with a suffix), the seal's key and OPEN_SUFFIX for the report that opens it,
# and SCORES_SUFFIX for a failing report's scores (apinode/validation/canary_scores.py).
COMMIT_KEY = "commit_seed"
CLAIM_KEY = "claim_rewards"
VALIDATION_KEY = "validation"
VOTE_SUFFIX = ":vote"
CANARY_VOTE_SUFFIX = ":canary-vote"
OPEN_SUFFIX = ":open"
# Finish heights per ValidationTasks query: the chain caps a query's range (1,000 heights),
# and an empty answer must mean an empty range.
FEED_SPAN_BLOCKS = 500
# Misbehaviours a test can switch on (ApiNodeConfig.validator_fault); "" is honest.
FAULTS = {"", "skip-checks", "always-pass", "lie"}


@dataclass(frozen=True)
class CheckParams:
    """The validation module's params a check follows (the chain's JSON has more)."""

    validation_window_blocks: int
    reveal_window_blocks: int
    canary_claim_blocks: int

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> CheckParams:
        return cls(**{f.name: int(raw[f.name]) for f in fields(cls)})


def reveal_delay(params: CheckParams) -> int:
    """Blocks into an epoch's reveal window before its seed is revealed: until the checks of
    the epoch's last inferences are over (a validation window), at most half the reveal
    window, so the reveal still has time to land."""
    return min(params.validation_window_blocks, params.reveal_window_blocks // 2)


def tolerance(model: Model, greedy: bool) -> float:
    """Rounding allowed on a token: its argmax gap in nats when greedy, its CDF interval when
    sampled (the model's two calibrated tolerances, per serving dtype)."""
    return (model.greedy_tolerance_micro if greedy else model.rule_tolerance_micro) / PPM


@dataclass(frozen=True)
class EpochDuty:
    """What decides this validator's checks in one epoch: its seed and the epoch's members,
    their weights and models (fixed at the epoch's first block)."""

    epoch: int
    seed: bytes
    shares: CheckShares

    def assigned(self, task: ValidationTask, validator: str) -> bool:
        """Whether ``validator`` must check ``task``: the chain's rule, applied in advance.
        Every inference of the epoch counts (the commit preceded them all)."""
        return task.epoch == self.epoch and self.shares.owes(self.seed, task, validator)


@dataclass(frozen=True)
class Check:
    """One inference to re-score: an assigned task, or a vote this validator was drawn for."""

    task: ValidationTask
    vote: bool

    @property
    def key(self) -> str:
        """Outbox key of the MsgSealValidation. A vote gets its own: the chain lists a vote
        only to voters with no seal or report on record, so a seal of this validator that
        never landed (say, it reached the chain after the deadline and failed) must not stop
        its vote."""
        base = f"{VALIDATION_KEY}:{self.task.inference_id}"
        if not self.vote:
            return base
        # A claimed canary's vote is on the real artifact, after the one on the shifted one.
        return base + (CANARY_VOTE_SUFFIX if self.task.canary_key else VOTE_SUFFIX)

    @property
    def opening_key(self) -> str:
        """Outbox key of the MsgValidation that opens the seal."""
        return self.key + OPEN_SUFFIX

    @property
    def deadline(self) -> int:
        """The last height the chain takes this report's seal."""
        return self.task.vote_deadline if self.vote else self.task.deadline


@dataclass(frozen=True)
class HeldOpening:
    """A report's opening, held in the outbox until its seal may be opened: after
    ``deadline`` (the task's, or its vote's, when ``ballot``), or earlier once everyone who
    could still seal has (chain/validation/seals.py); the chain takes it until
    ``open_until``."""

    inference_id: str
    ballot: bool
    deadline: int
    open_until: int

    @classmethod
    def of(cls, task: ValidationTask, ballot: bool) -> HeldOpening:
        if ballot:
            return cls(task.inference_id, True, task.vote_deadline, task.vote_open_until)
        return cls(task.inference_id, False, task.deadline, task.open_until)


def _opening_of(key: str) -> tuple[str, bool]:
    """The inference id of an opening's outbox key (``Check.opening_key``), and whether it
    opens a ballot."""
    sealed = key.removesuffix(OPEN_SUFFIX).removeprefix(f"{VALIDATION_KEY}:")
    for suffix in (VOTE_SUFFIX, CANARY_VOTE_SUFFIX):
        if sealed.endswith(suffix):
            return sealed.removesuffix(suffix), True
    return sealed, False


DutyOf = Callable[[int], Awaitable[EpochDuty | None]]


class ValidatorWorker:
    """Commits and reveals seeds, follows validation tasks and votes, and checks inferences.

    ``concurrency`` bounds the checks running at once on the ML node (each is one prefill
    of prompt and output, next to the node's serving). ``rescan_margin_blocks`` widens the
    first step's rescan beyond the validation window, so tasks a restart interrupted are
    not missed. ``page_size`` is how many tasks one ValidationTasks query asks for.
    """

    def __init__(self, address: str, node_key: SigningKey, chain: ChainQueries,
                 mlnode: MlNodeClient, seeds: SeedStore, outbox: Outbox, *,
                 interval_s: float = 2.0, concurrency: int = 2,
                 rescan_margin_blocks: int = 10, page_size: int = 200,
                 fault: str = "") -> None:
        self.fault = fault_switch("validator", fault, FAULTS, "this validator misbehaves")
        self.address = address
        self.node_key = node_key
        self.chain = chain
        self.mlnode = mlnode
        self.seeds = seeds
        self.outbox = outbox
        self.interval_s = interval_s
        self.concurrency = concurrency
        self.rescan_margin_blocks = rescan_margin_blocks
        self.page_size = page_size
        self._stop = asyncio.Event()
        self._info: EngineInfo | None = None
        # Epochs whose seed is known to be queued for commit or settled for reveal.
        self._commits_queued: set[int] = set()
        self._reveals_done: set[int] = set()
        # Per epoch: the duty, or None when it can never be known (the seed is not ours).
        self._duties: dict[int, EpochDuty | None] = {}
        # The feed resumes at this finish height, skipping the ids already seen there.
        self._cursor: int | None = None
        self._seen_at_cursor: set[str] = set()
        self._retry: dict[str, Check] = {}
        # Openings held in the outbox, by key; filled from the outbox at the first step.
        self._held: dict[str, HeldOpening] = {}
        self._held_loaded = False
        self.canaries = CanaryClaims(address, chain, seeds, outbox)
        self.scores = CanaryScores(address, chain, outbox, VALIDATION_KEY)

    async def run(self) -> None:
        """Step every ``interval_s`` until ``stop()``."""
        self._stop.clear()
        log.info("validator: worker started for %s", self.address)
        while not self._stop.is_set():
            try:
                await self.step()
            except (ChainQueryError, MlNodeError) as exc:
                log.warning("validator: step failed, trying again in %.1fs: %s",
                            self.interval_s, exc)
            except Exception:  # a bug or a database outage must not end the node
                log.exception("validator: step failed; trying again in %.1fs", self.interval_s)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
        log.info("validator: worker stopped")

    def stop(self) -> None:
        """Ends ``run()`` after the checks already running; the others wait for a new worker."""
        self._stop.set()

    async def step(self) -> None:
        """One pass: seeds, openings, then votes, retries and newly assigned tasks, checked
        and sealed."""
        height = await self.chain.latest_height()
        current = (await self.chain.epoch()).current
        params = CheckParams.of(await self.chain.params("validation"))
        await self.commit_seeds(current.number)
        await self.reveal_seeds(current, height, params)
        await self.canaries.claim_due(height, params.canary_claim_blocks)
        await self.open_reports(height)
        await self.scores.due(height, params.canary_claim_blocks,
                              {key.removesuffix(OPEN_SUFFIX) for key in self._held})
        checks = {check.key: check for check in await self.votes(height, params)}
        for key, check in list(self._retry.items()):
            if height > check.deadline:
                del self._retry[key]
                log.warning("validator: gave up on %s: its deadline (height %d) passed",
                            key, check.deadline)
            else:
                checks.setdefault(key, check)
        for check in await self.assigned_tasks(height, current, params):
            checks.setdefault(check.key, check)
        # A vote drawing this validator is its check: one report on the task, not two.
        voting = {check.task.inference_id for check in checks.values() if check.vote}
        checks = {key: check for key, check in checks.items()
                  if check.vote or check.task.inference_id not in voting}
        if self.fault == "skip-checks":
            return
        await self.run_checks(list(checks.values()), params)

    async def commit_seeds(self, current: int) -> None:
        """Store a seed and queue its commit for the next epoch (and, in epoch 0, for epoch 0),
        if not yet: the chain refuses a commitment once its epoch began."""
        for epoch in (0, 1) if current == 0 else (current + 1,):
            if epoch in self._commits_queued:
                continue
            seed = await asyncio.to_thread(self.seeds.seed, epoch)  # stored before queued
            message = MsgCommitSeed(creator=self.address, epoch=epoch, seed_hash=seed_hash(seed))
            if await asyncio.to_thread(self.outbox.enqueue, f"{COMMIT_KEY}:{epoch}", message):
                log.info("validator: seed for epoch %d stored, MsgCommitSeed queued (hash %s…)",
                         epoch, message.seed_hash[:8].hex())
            self._commits_queued.add(epoch)
        self._commits_queued = {e for e in self._commits_queued if e >= current}

    async def reveal_seeds(self, current: Epoch, height: int,
                           params: CheckParams) -> None:
        """Queue MsgClaimRewards for each past epoch whose seed the chain holds unrevealed.

        The chain takes epoch e's reveal up to height start(e + 1) + reveal_window_blocks − 1,
        with start(e) = 1 + e × length; only epochs whose window is still open are looked at.
        The reveal waits ``reveal_delay`` blocks into that window: the seed also says which of
        this node's inferences are canaries, and its last ones' checks are still open when
        the epoch ends (docs/design.md §6.9).
        """
        first_open = max(0, -(-(height - params.reveal_window_blocks) // current.length) - 1)
        self._reveals_done = {e for e in self._reveals_done if e >= first_open}
        for epoch in await asyncio.to_thread(self.seeds.epochs, first_open, current.number - 1):
            if height < 1 + (epoch + 1) * current.length + reveal_delay(params):
                continue
            if epoch not in self._reveals_done:
                await self._reveal(epoch)
                self._reveals_done.add(epoch)

    async def _reveal(self, epoch: int) -> None:
        """Queue the epoch's reveal unless it is queued, revealed, or was never committed."""
        key = f"{CLAIM_KEY}:{epoch}"
        if await asyncio.to_thread(self.outbox.get, key) is not None:
            return
        commitment = await self.chain.seed_commitment(self.address, epoch)
        if commitment is None or commitment.seed:
            return
        seed = await asyncio.to_thread(self.seeds.get, epoch)
        if seed is None or seed_hash(seed) != commitment.seed_hash:
            log.error("validator: cannot reveal epoch %d: the seed committed on chain is not "
                      "in this node's database", epoch)
            return
        message = MsgClaimRewards(creator=self.address, epoch=epoch, seed=seed)
        await asyncio.to_thread(self.outbox.enqueue, key, message)
        log.info("validator: epoch %d is over, MsgClaimRewards queued", epoch)

    async def open_reports(self, height: int) -> None:
        """Releases each held opening whose sealing is over, once its seal is on chain, and
        gives up on those the chain would no longer take.

        The outbox, read locally, says first whether the seal is on chain: until it is, an
        opening would only be refused, so the chain is not asked. Past its deadline an
        opening goes without a query. Before it, the task on chain tells whether it opens
        early (``opening_heights``): a window's once every member that checks the model has
        sealed, a ballot's once every drawn voter has sealed or reported.
        """
        await self._load_held()
        for key, held in list(self._held.items()):
            if height > held.open_until:
                await self._abandon(key, held.inference_id,
                                    f"the chain took its opening until height {held.open_until}")
                continue
            seal = await asyncio.to_thread(self.outbox.get, key.removesuffix(OPEN_SUFFIX))
            if seal is None or seal.state == OutboxState.FAILED:
                await self._abandon(key, held.inference_id, "its seal never reached the chain")
                continue
            if seal.state != OutboxState.COMMITTED:
                continue
            if height <= held.deadline:
                task = await self.chain.validation_task(held.inference_id)
                if task is None:
                    await self._abandon(key, held.inference_id, "its task is gone from the chain")
                    continue
                self._held[key] = HeldOpening.of(task, held.ballot)  # a vote may close early
                sealed = next((s for s in task.seals if s.validator == self.address), None)
                if sealed is None or height < opening_heights(task, sealed)[0]:
                    continue
            del self._held[key]
            if await asyncio.to_thread(self.outbox.release, key):
                log.info("validator: the sealing on %s is over at height %d; its %s opens "
                         "(MsgValidation queued)", held.inference_id, height,
                         "ballot" if held.ballot else "report")

    async def _load_held(self) -> None:
        """Times the openings a previous worker left held, by their tasks on chain. Where the
        chain holds the seal, its height tells a window's from a ballot's: a report sealed
        after the window counts as this drawn voter's ballot (``_vote_owed``)."""
        if self._held_loaded:
            return
        for entry in await asyncio.to_thread(self.outbox.with_prefix, f"{VALIDATION_KEY}:",
                                             OutboxState.HELD):
            if entry.key in self._held or entry.key.endswith(SCORES_SUFFIX):
                continue
            inference_id, ballot = _opening_of(entry.key)
            task = await self.chain.validation_task(inference_id)
            if task is None:
                await self._abandon(entry.key, inference_id, "its task is gone from the chain")
                continue
            sealed = next((s for s in task.seals if s.validator == self.address), None)
            if sealed is not None:
                ballot = sealed.height > task.deadline
            self._held[entry.key] = HeldOpening.of(task, ballot)
        self._held_loaded = True

    async def _abandon(self, key: str, inference_id: str, why: str) -> None:
        """Gives up on a held opening. It stays in the outbox as failed, not deleted: an
        operator sees it there with its reason, its key stays taken, and a restart does not
        ask the chain about it again."""
        self._held.pop(key, None)
        await asyncio.to_thread(self.outbox.abandon, key, f"never opened: {why}")
        log.warning("validator: the report sealed on %s cannot be opened: %s; the chain counts "
                    "it as a check not made", inference_id, why)

    async def votes(self, height: int, params: CheckParams) -> list[Check]:
        """Votes this validator was drawn for, not yet sealed and still open. A claimed
        canary's vote waits while its checkers' scores may still settle it (a checker among
        its voters has its scores for its ballot, and is listed no more once they landed)."""
        checks = [Check(task, vote=True) for task in await self.chain.pending_votes(self.address)
                  if task.executor != self.address and height <= task.vote_deadline
                  and not awaits_scores(task, height, params.canary_claim_blocks)]
        return [check for check in checks if not await self._vote_owed(check)]

    async def _vote_owed(self, vote: Check) -> bool:
        """Whether the outbox already owes the chain this vote: its ballot sealed, or this
        validator's report on the task sealed and still on its way (a drawn voter's report
        counts as its ballot, and the chain lists the vote until the seal lands). A seal that
        failed leaves the vote to be made."""
        if await asyncio.to_thread(self.outbox.get, vote.key) is not None:
            return True
        report = Check(vote.task, vote=False)
        seal = await asyncio.to_thread(self.outbox.get, report.key)
        if seal is None or seal.state not in (OutboxState.PENDING, OutboxState.SENT):
            return False
        # Past the window the chain takes that seal only as this drawn voter's ballot: it
        # opens when the vote's sealing ends, not the window's.
        if report.opening_key in self._held:
            self._held[report.opening_key] = HeldOpening.of(vote.task, ballot=True)
        return True

    async def assigned_tasks(self, height: int, current: Epoch,
                             params: CheckParams) -> list[Check]:
        """The tasks finished since the last step (up to ``height``) that the seed assigns.

        The feed is read in spans of finish heights (the chain answers at most 1,000 heights
        per query) and paged: the next page starts at the last height seen (tasks at one
        height may straddle pages), skipping the ids already seen there; a page of nothing
        but seen ids at one height asks for a larger page, in case that height holds more
        tasks than a page. The position only moves once everything up to ``height`` was read
        and decided, so a failed query rereads from the same place.
        """
        oldest = max(1, height - params.validation_window_blocks - self.rescan_margin_blocks)
        oldest_epoch = (oldest - 1) // current.length
        self._duties = {e: d for e, d in self._duties.items() if e >= oldest_epoch}
        duty_of = self._duty_lookup()
        start = self._cursor if self._cursor is not None else oldest
        seen = self._seen_at_cursor
        limit = self.page_size
        found = []
        while start <= height:
            end = min(height, start + FEED_SPAN_BLOCKS - 1)
            tasks = await self.chain.validation_tasks(start, end, limit)
            if not tasks:
                start, seen = end + 1, set()
                continue
            new = [task for task in tasks if task.inference_id not in seen]
            for task in new:
                if await self._must_check(task, height, duty_of):
                    found.append(Check(task, vote=False))
            last = tasks[-1].finish_height
            if new:
                at_last = {t.inference_id for t in tasks if t.finish_height == last}
                start, seen = last, (seen if last == start else set()) | at_last
            elif len(tasks) >= limit:
                limit *= 2
            else:  # every task at ``start`` is seen
                start, seen = start + 1, set()
        self._cursor, self._seen_at_cursor = start, seen
        return found

    async def _must_check(self, task: ValidationTask, height: int, duty_of: DutyOf) -> bool:
        """Assigned, still within its window, and not sealed or reported on by this validator;
        once a vote opened, only its drawn voters report (the vote is the check). This
        node's own inferences are never its to check, but may be its canaries to claim."""
        if task.executor == self.address:
            await self.canaries.watch(task)
            return False
        if (height > task.deadline
                or (task.voters and self.address not in task.voters)
                or any(r.validator == self.address for r in (*task.seals, *task.reports))):
            return False
        duty = await duty_of(task.epoch)
        return duty is not None and duty.assigned(task, self.address)

    def _duty_lookup(self) -> DutyOf:
        """``EpochDuty`` by epoch for one step. "No commitment" is remembered for the step
        only, so a commit the queried node had not seen yet is found on the next."""
        this_step: dict[int, EpochDuty | None] = {}

        async def duty_of(epoch: int) -> EpochDuty | None:
            if epoch in self._duties:
                return self._duties[epoch]
            if epoch not in this_step:
                this_step[epoch] = await self._load_duty(epoch)
            return this_step[epoch]

        return duty_of

    async def _load_duty(self, epoch: int) -> EpochDuty | None:
        """The epoch's duty from the chain and the seed store; cached once it is final."""
        commitment = await self.chain.seed_commitment(self.address, epoch)
        if commitment is None:
            return None
        seed = await asyncio.to_thread(self.seeds.get, epoch)
        if seed is None or seed_hash(seed) != commitment.seed_hash:
            log.error("validator: the seed committed for epoch %d is not in this node's "
                      "database; its checks in that epoch cannot be done", epoch)
            self._duties[epoch] = None
            return None
        duty = EpochDuty(epoch, seed, CheckShares((await self.chain.epoch(epoch)).members))
        self._duties[epoch] = duty
        return duty

    async def run_checks(self, checks: list[Check], params: CheckParams) -> None:
        """Checks ``concurrency`` at a time; a failed one is kept to retry on the next step."""
        running = asyncio.Semaphore(self.concurrency)

        async def one(check: Check) -> None:
            async with running:
                if self._stop.is_set():
                    return
                try:
                    await self.check(check, params)
                except Exception as exc:  # retried next step, until the deadline
                    log.warning("validator: could not check %s, retrying until height %d: %s",
                                check.key, check.deadline, exc)
                    self._retry[check.key] = check
                else:
                    self._retry.pop(check.key, None)

        await asyncio.gather(*(one(check) for check in checks))

    async def check(self, check: Check, params: CheckParams) -> None:
        """Re-score one inference, seal the signed figures and hold their opening."""
        inference_id = check.task.inference_id
        if await asyncio.to_thread(self.outbox.get, check.key) is not None:
            return
        inference = await self.chain.inference(inference_id)
        if inference is None:
            log.warning("validator: inference %s of a validation task is not on chain",
                        inference_id)
            return
        info = await self.mlnode_info()
        if inference.model_id != info.model_id:
            log.warning("validator: cannot check %s: it ran %s, this node's ML node serves %s",
                        inference_id, inference.model_id, info.model_id)
            return
        model = await self.chain.model(inference.model_id)
        if model is None:
            log.warning("validator: cannot check %s: its model %s is not in the registry",
                        inference_id, inference.model_id)
            return
        if info.dtype != model.serving_dtype:
            log.warning("validator: cannot check %s: %s is scored in its registered %s, this "
                        "node's ML node computes in %s", inference_id, model.id,
                        model.serving_dtype, info.dtype)
            return
        if self.fault == "always-pass":
            figures = Figures(True, 0.0, 0, len(inference.output_ids))
        else:
            figures = await self.measure(inference, info, model)
        if self.fault == "lie":
            figures = _opposite(figures, model)
        scores = figures.scores if not self.fault else b""
        opening = MsgValidation(
            creator=self.address, inference_id=inference_id,
            output_hash=inference.output_hash, distance_micro=figures.distance_micro,
            rule_violations=figures.rule_violations, ids_match=figures.ids_match,
            positions=figures.positions, salt=os.urandom(payload.SALT_BYTES),
            scores_sha256=logprob_scores.digest(scores) if scores else b"")
        signed = payload.validation_payload(
            opening.inference_id, opening.output_hash, opening.distance_micro,
            opening.rule_violations, opening.ids_match, opening.positions, opening.creator,
            opening.scores_sha256)
        opening.validator_signature = self.node_key.sign(signed).signature
        seal = MsgSealValidation(creator=self.address, inference_id=inference_id,
                                 seal=payload.validation_seal(opening.salt, signed))
        kept = scores if scores and not _passes(opening, model) else b""
        if not await asyncio.to_thread(self._seal, check, seal, opening, kept):
            return
        self._held[check.opening_key] = HeldOpening.of(check.task, check.vote)
        if figures.ids_match:
            found = (f"distance {figures.distance:.6f} nats (model threshold "
                     f"{model.validation_threshold}), "
                     f"{figures.rule_violations} of {figures.positions} positions break the "
                     f"sampling rule")
        else:
            found = (f"the output ({figures.positions} ids) does not match its artifact or "
                     f"does not end as the request allows")
        opens = (f"opens after height {check.deadline}, or once every voter has sealed"
                 if check.vote else f"opens after height {check.deadline}, or once every "
                 f"member that checks the model has sealed")
        log.info("validator: %s %s (executor %s): %s; sealed its %s (MsgSealValidation "
                 "queued), %s", "voted on" if check.vote else "checked", inference_id,
                 inference.executor, found, "ballot" if check.vote else "report", opens)

    def _seal(self, check: Check, seal: MsgSealValidation, opening: MsgValidation,
              scores: bytes) -> bool:
        """Queues the seal and holds its opening, and a failing report's ``scores`` for a
        canary claim, in one transaction: a seal whose opening were lost would count as a
        check not made. False if the seal was queued before."""
        with self.outbox.db.session() as session:
            if not self.outbox.enqueue(check.key, seal, session=session):
                return False
            self.outbox.enqueue(check.opening_key, opening, session=session, held=True)
            if scores:
                self.scores.hold(session, check.key, opening.inference_id, scores)
            return True

    async def measure(self, inference: Inference, info: EngineInfo, model: Model) -> Figures:
        """The figures for one inference, from a teacher-forced Score of its output under the
        sampling the transfer agent signed (so the ML node also locates every token in the
        seeded rule).

        An artifact that does not decode, or output ids the ML node refuses to score (an
        unknown token, over the context), cannot match the output: that is reported as
        ``ids_match`` false, for a vote among other validators to confirm.
        """
        output_ids = list(inference.output_ids)
        mismatch = Figures(False, 0.0, 0, len(output_ids))
        try:
            _, recorded = artifact.decode(inference.artifact)
        except artifact.ArtifactError as exc:
            log.warning("validator: the artifact of %s does not decode: %s", inference.id, exc)
            return mismatch
        if not output_ids:
            return mismatch
        sampling = SamplingParams(temperature=inference.temperature, top_p=inference.top_p,
                                  top_k=0, max_tokens=inference.max_tokens,
                                  stop=tuple(inference.stop), seed=inference.seed,
                                  **transform_of(inference))
        try:
            scored = await self.mlnode.score(inference.prompt_ids, output_ids,
                                             info.max_top_logprobs, sampling)
            pieces = await self.mlnode.detokenize(output_ids)
        except MlNodeRefused as exc:
            log.warning("validator: the ML node refuses to score %s: %s", inference.id, exc)
            return mismatch
        agent = await self.chain.participant(inference.transfer_agent)
        prefix = agent is not None and signed_delivery(
            agent, inference.executor, inference.id, inference.output_hash,
            inference.delivery_signature) is Delivered.PREFIX
        ended = ended_properly(output_ids, inference.max_tokens, {info.eos_token_id}, pieces,
                               sampling.stop, prefix)
        return measure(recorded, output_ids, scored, greedy=sampling.greedy, ended=ended,
                       tolerance=tolerance(model, sampling.greedy))

    async def mlnode_info(self) -> EngineInfo:
        """The ML node's model and limits, asked once."""
        if self._info is None:
            self._info = await self.mlnode.info()
        return self._info


def _passes(report: MsgValidation | Figures, model: Model) -> bool:
    """The chain's verdict on a report, or on the figures it would carry
    (chain/validation/verdict.py)."""
    allowed = allowed_violations(model.max_rule_violations, model.rule_violations_per_1024,
                                 report.positions)
    return passes(ValidationReport(distance_micro=report.distance_micro,
                                   rule_violations=report.rule_violations,
                                   ids_match=report.ids_match), allowed, threshold_micro(model))


def _opposite(figures: Figures, model: Model) -> Figures:
    """The "lie" fault: figures that give the chain the other verdict than the measured."""
    if _passes(figures, model):
        return Figures(True, threshold_micro(model) * 100 / PPM, figures.positions,
                       figures.positions)
    return Figures(True, 0.0, 0, figures.positions)
