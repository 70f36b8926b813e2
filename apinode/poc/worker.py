"""The PoC worker: the API node's side of proof of compute (docs/design.md §7.2).

Each step reads the chain's epoch and the epochs params, and acts on the epoch's stage:

1. **POC** (the epoch's first ``poc_window_blocks`` blocks). Prove: a ``Sprint`` streams
   nonces from the participant's ML node under its seed ``sha256(epoch block hash ‖ own
   address)``, up to ``poc_max_nonces`` (none: until stopped), and the worker flushes the
   accepted ones into the outbox as ``MsgSubmitPoc`` batches (key ``poc:<epoch>:<first
   nonce>``) every quarter of the window and once the budget is spent. The chain refuses a
   batch landing after the window, so ``submit_margin_blocks`` before its last height the
   stream is cancelled and everything found is flushed.
2. **POC_VALIDATION** (the next ``poc_validation_window_blocks``), once the chain holds the
   sample seed (the first block after the window, unknown while anyone computed). Check: a
   member of the epoch (weight > 0) re-computes on its ML node the sample of every other
   participant's claimed nonces, and queues ``MsgPocValidation`` with what it found (key
   ``poc_check:<epoch>:<participant>``). A member that skips these is judged lazy at the
   epoch's end and forfeits its rewards, so a check that fails to run is retried each step
   until the window closes.
3. **INFERENCE**: nothing. The next epoch's weights come from the accepted nonces.

The worker keeps no state the outbox does not: a restarted node resumes its sprint after the
highest nonce it queued (or the chain holds), and skips checks it queued or the chain has a
verdict of. Failures (chain or ML node unreachable) are logged and retried on the next step;
nothing here ends the node.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from apinode.chain_queries import ChainQueries, ChainQueryError
from apinode.fault_switch import fault_switch
from apinode.mlnode_client import MlNodeClient, MlNodeError
from apinode.outbox import Outbox
from apinode.poc.params import PocParams
from apinode.poc.sprint import (
    Sprint,
    batches,
    check_key,
    fabricated_claims,
    fabricated_count,
    queued,
    resume_point,
    split,
    submit_key,
    submit_message,
    submit_prefix,
)
from inferchain_pb.inference.v1.epochs_pb2 import (
    POC,
    POC_VALIDATION,
    Epoch,
    MsgPocValidation,
    PocSubmission,
)
from inferchain_pb.inference.v1.validation_pb2 import EpochMembers
from mlnode.poc_seed import poc_seed
from mlnode.types import PocNonce, VerifyReport

log = logging.getLogger(__name__)

# Misbehaviours a test can switch on (ApiNodeConfig.poc_fault); "" is honest.
FAULTS = {"", "fabricate"}
DTYPES = {"float32", "bfloat16"}


class PocWorker:
    """Follows the chain's epoch stages: proves in the PoC window, checks after it.

    ``max_nonces`` is the compute budget per epoch (nonces 0 … max_nonces − 1; 0: until the
    window closes). ``submit_margin_blocks`` is how many blocks before the window's last
    height the sprint stops and submits what it found: enough for the outbox to get the last
    batch into a block in time.
    """

    def __init__(self, address: str, chain: ChainQueries, mlnode: MlNodeClient, outbox: Outbox,
                 *, interval_s: float = 1.0, max_nonces: int = 0, dtype: str = "float32",
                 submit_margin_blocks: int = 3, fault: str = "") -> None:
        fault_switch("PoC", fault, FAULTS, "this participant submits made-up nonces")
        if dtype not in DTYPES:
            raise ValueError(f"PoC dtype {dtype!r} is not one of {sorted(DTYPES)}")
        if max_nonces < 0 or submit_margin_blocks < 0:
            raise ValueError("poc_max_nonces and the submit margin cannot be negative")
        self.address = address
        self.chain = chain
        self.mlnode = mlnode
        self.outbox = outbox
        self.interval_s = interval_s
        self.max_nonces = max_nonces
        self.dtype = dtype
        self.submit_margin_blocks = submit_margin_blocks
        self.fault = fault
        self._stop = asyncio.Event()
        self._sprint: Sprint | None = None
        self._fabricated: set[int] = set()
        # Per epoch: checks known done (queued, or a verdict on chain), the epochs whose
        # checks are all done, and those whose own submission was compared with the chain.
        self._checked: set[tuple[int, str]] = set()
        self._checks_done: set[int] = set()
        self._reported: set[int] = set()
        self._said: set[str] = set()

    async def run(self) -> None:
        """Step every ``interval_s`` until ``stop()``; then queue what the sprint found."""
        self._stop.clear()
        log.info("PoC: worker started for %s (budget %s nonces per epoch, %s)", self.address,
                 f"{self.max_nonces:,}" if self.max_nonces else "no", self.dtype)
        while not self._stop.is_set():
            try:
                await self.step()
            except (ChainQueryError, MlNodeError) as exc:
                log.warning("PoC: step failed, trying again in %.1fs: %s", self.interval_s, exc)
            except Exception:  # a bug or a database outage must not end the node
                log.exception("PoC: step failed; trying again in %.1fs", self.interval_s)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
        if self._sprint is not None and not self._sprint.closed:
            try:
                await self._sprint.close("the node is stopping")
            except Exception:
                log.exception("PoC: could not queue the nonces found before stopping")
        log.info("PoC: worker stopped")

    def stop(self) -> None:
        self._stop.set()

    async def step(self) -> None:
        params = PocParams.of(await self.chain.params("epochs"))
        if not params.enabled:
            self._once("off", "PoC: proof of compute is off on this chain (epochs param "
                       "poc_window_blocks is 0); waiting")
            return
        height = await self.chain.latest_height()
        info = await self.chain.epoch()
        current = info.current
        if current.stage == POC:
            await self.prove(current, height, params)
        else:
            await self.end_sprint(current)
        if current.stage == POC_VALIDATION and current.poc_sample_seed \
                and height <= current.poc_validation_end_height:
            await self.report_own(current.number, current.poc_validation_end_height)
            await self.check_all(current, info.members, params)

    # Proving.

    def cutoff(self, current: Epoch) -> int:
        """The height from which the sprint stops and submits."""
        return current.poc_end_height - self.submit_margin_blocks

    async def prove(self, current: Epoch, height: int, params: PocParams) -> None:
        if self.fault == "fabricate":
            await self.fabricate(current, height, params)
            return
        sprint = self._sprint
        if sprint is not None and sprint.epoch != current.number:
            await self.end_sprint(current)
            sprint = None
        if sprint is None:
            if height >= self.cutoff(current) or not current.poc_block_hash:
                return  # too late for this window (or the epoch's hash is not out yet)
            sprint = await self.new_sprint(current, height, params)
        if sprint.closed:
            return
        if height >= self.cutoff(current):
            await sprint.close(f"the window closes at height {current.poc_end_height}")
        elif sprint.budget_spent:
            await sprint.close("budget spent")
        else:
            sprint.start()  # again, if the ML node dropped the stream
            if height - sprint.last_flush_height >= max(1, params.poc_window_blocks // 4):
                if await sprint.flush(height):
                    log.info("PoC epoch %d: %s nonces computed so far, %s accepted; "
                             "submitting", sprint.epoch, f"{sprint.next_nonce:,}",
                             f"{sprint.queued_nonces:,}")

    async def new_sprint(self, current: Epoch, height: int, params: PocParams) -> Sprint:
        resume = await resume_point(self.outbox, self.chain, current.number, self.address)
        end = self.max_nonces or None
        sprint = Sprint(epoch=current.number, address=self.address,
                        seed=poc_seed(current.poc_block_hash, self.address),
                        shape=params.shape, target_distance=params.target_distance,
                        end_nonce=end, dtype=self.dtype, mlnode=self.mlnode,
                        outbox=self.outbox, resume=resume, height=height)
        self._sprint = sprint
        if sprint.budget_spent:
            log.info("PoC epoch %d: the budget of %s nonces was spent before this start",
                     current.number, f"{self.max_nonces:,}")
        else:
            log.info("PoC epoch %d: computing nonces %s to %s on the ML node (%s, target "
                     "distance %g) until height %d", current.number, f"{sprint.next_nonce:,}",
                     f"{end - 1:,}" if end else "…", _shape(params), params.target_distance,
                     self.cutoff(current))
            sprint.start()
        return sprint

    async def end_sprint(self, current: Epoch) -> None:
        """Outside a sprint's window: queue what it found if its window may still take it."""
        sprint = self._sprint
        if sprint is None or sprint.closed:
            return
        if sprint.epoch == current.number and current.stage == POC:
            await sprint.close(f"the window closes at height {current.poc_end_height}")
        else:
            await sprint.abandon(f"epoch {sprint.epoch}'s PoC window is over")

    async def fabricate(self, current: Epoch, height: int, params: PocParams) -> None:
        """The "fabricate" fault: once per window, made-up nonces, nothing computed."""
        epoch = current.number
        if epoch in self._fabricated or height >= self.cutoff(current):
            return
        if await asyncio.to_thread(self.outbox.with_prefix, submit_prefix(epoch)):
            self._fabricated.add(epoch)
            return
        claims = fabricated_claims(fabricated_count(self.max_nonces), params.target_distance)
        made_up = split(claims)
        for batch in made_up:
            message = submit_message(self.address, epoch, batch)
            await asyncio.to_thread(self.outbox.enqueue, submit_key(epoch, batch[0].nonce),
                                    message)
        self._fabricated.add(epoch)
        log.warning("PoC epoch %d: FAULT fabricate: submitted %s made-up nonces in %s, none "
                    "computed", epoch, f"{len(claims):,}", batches(len(made_up)))

    async def report_own(self, epoch: int, validation_end: int) -> None:
        """Once the window is closed: what of this node's queued nonces the chain holds."""
        if epoch in self._reported:
            return
        mine = await asyncio.to_thread(queued, self.outbox, epoch)
        self._reported.add(epoch)
        if not mine.nonces:
            return
        held = next((s for s in await self.chain.poc_submissions(epoch)
                     if s.participant == self.address), None)
        on_chain = held.nonces if held else 0
        if on_chain >= mine.nonces:
            log.info("PoC epoch %d: the chain holds this node's %s nonces (%s); members "
                     "check them until height %d", epoch, f"{on_chain:,}",
                     batches(held.batches if held else 0), validation_end)
        else:
            log.warning("PoC epoch %d: only %s of the %s nonces this node queued reached the "
                        "chain before the window closed", epoch, f"{on_chain:,}",
                        f"{mine.nonces:,}")

    # Checking.

    async def check_all(self, current: Epoch, members: EpochMembers,
                        params: PocParams) -> None:
        """Checks every other submission of the epoch this member has not checked yet."""
        epoch = current.number
        if epoch in self._checks_done:
            return
        weight = next((m.weight for m in members.members if m.address == self.address), 0) \
            if members.epoch == epoch else 0
        if not weight:
            self._once(f"nonmember:{epoch}", f"PoC epoch {epoch}: this participant is not a "
                       "member of the epoch (no weight), so it owes no PoC checks")
            self._checks_done.add(epoch)
            return
        self._checked = {(e, p) for e, p in self._checked if e >= epoch}
        todo: list[PocSubmission] = []
        for submission in await self.chain.poc_submissions(epoch):
            done = (epoch, submission.participant)
            if submission.participant == self.address or done in self._checked:
                continue
            if any(v.validator == self.address for v in submission.verdicts) or \
                    await asyncio.to_thread(self.outbox.get,
                                            check_key(epoch, submission.participant)):
                self._checked.add(done)
                continue
            todo.append(submission)
        if todo:
            log.info("PoC epoch %d: checking %d submissions", epoch, len(todo))
        failures = 0
        for submission in todo:
            if self._stop.is_set():
                return
            try:
                await self.check(current, submission.participant, params)
            except (ChainQueryError, MlNodeError) as exc:
                failures += 1
                log.warning("PoC check of %s (epoch %d) failed, retrying until height %d: %s",
                            submission.participant, epoch, current.poc_validation_end_height,
                            exc)
            else:
                self._checked.add((epoch, submission.participant))
        if not failures:
            self._checks_done.add(epoch)
            self._checks_done = {e for e in self._checks_done if e >= epoch}

    async def check(self, current: Epoch, participant: str, params: PocParams) -> None:
        """Re-computes the sample of one participant's claims; queues MsgPocValidation."""
        epoch = current.number
        nonces = await self.chain.poc_nonces(epoch, participant)
        verdict = await self.mlnode.verify_proof_of_compute(
            params.shape, poc_seed(current.poc_block_hash, participant), params.target_distance,
            [PocNonce(n.nonce, n.distance) for n in nonces], params.poc_sample_size,
            current.poc_sample_seed, params.tolerance)
        message = MsgPocValidation(creator=self.address, epoch=epoch, participant=participant,
                                   passed=verdict.passed, checked=len(verdict.checks),
                                   failed=verdict.failed)
        await asyncio.to_thread(self.outbox.enqueue, check_key(epoch, participant), message)
        log.log(logging.INFO if verdict.passed else logging.WARNING,
                "PoC check of %s (epoch %d, %s nonces claimed): %s; MsgPocValidation queued",
                participant, epoch, f"{len(nonces):,}", _describe(verdict))

    def _once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.info(message)


def _describe(verdict: VerifyReport) -> str:
    """``passed 20/20`` or ``FAILED: 20 of 20 sampled nonces do not hold (nonce 7 claims …)``."""
    checked = len(verdict.checks)
    if verdict.passed:
        return f"passed {checked}/{checked} (largest deviation {verdict.max_deviation:.1e})"
    found = [f"FAILED: {verdict.failed} of {checked} sampled nonces do not hold"]
    bad = next((c for c in verdict.checks if not c.ok), None)
    if bad is not None:
        found.append(f"(nonce {bad.nonce} claims distance {bad.claimed:.6f}, re-computed "
                     f"{bad.recomputed:.6f})")
    if verdict.duplicates:
        found.append(f"and {len(verdict.duplicates)} nonces are claimed twice")
    return " ".join(found)


def _shape(params: PocParams) -> str:
    return (f"hidden {params.poc_hidden}, layers {params.poc_layers}, heads "
            f"{params.poc_heads}, ffn {params.poc_ffn}, seq_len {params.poc_seq_len}")
