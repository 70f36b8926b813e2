"""The executor: runs an inference a transfer agent forwarded, on this participant's own ML
node, and owes the chain its MsgFinishInference (docs/design.md §3.5).

``Executor.execute`` does these things, in order:

1. **Admit.** It accepts only work the chain will accept from it: the start names this node
   as executor; it meets the chain's own start rules (``chain/inference/start_rules.py``):
   the transfer agent is a registered participant whose node key signed the start payload,
   the developer signed the request for that agent or allows it the escrow, and prompt plus
   max_tokens fit the model's context; the model is in the registry, this node is registered
   serving it with the registry's weights and the node key it signs with, and its ML node
   serves those weights; an API-key start follows its agent's commitment on chain (its
   draw height, its escrow); this node is pick ``attempt`` of the chain's draw at
   ``draw_height``, each pick before it that left no signed refusal passed under an
   unclaimed notice (chain/inference/pass_notices.py); and the inference is neither
   finished, expired, given to someone else on chain, nor already executed here. Anything
   else raises ``ExecutionRefused`` before a single token is generated.
2. **Stream.** One generation on the ML node with ``max(model.top_k, top_logprobs)``
   alternatives per token, so the logprobs the developer gets and the artifact the chain gets
   come from the same per-token data; each token is yielded as it comes.
3. **Keep within reach of the deliveries.** ``deliver`` takes the transfer agent's
   ``Delivery``s, its node-key signatures that the output so far reached the developer (every
   ``delivery_interval_tokens`` tokens, then all of it), and holds the longest. The next
   token is taken from the ML node only while fewer than ``delivery_interval_tokens`` passed
   on lack one; past ``delivery_wait_s`` without the next, the generation stops. So a transfer
   agent that withholds its signatures gets at most that many tokens unpaid. With the first
   delivery it holds, the start goes to the outbox too, as MsgRelayStart carrying that
   delivery, held back ``relay_delay_s`` so the transfer agent's own start normally lands
   first (the relay then finds it and sends nothing): a transfer agent that takes the output
   and never starts the inference cannot leave the start off the chain, and the developer is
   charged once either way (docs/design.md §3.5).
4. **Record.** The output and its artifact (top ``model.top_k``) are stored in the payload
   row that serves validators later, before the stream's closing ``Executed``.
5. **Finish.** Once the signature of the complete output comes, or ``delivery_wait_s`` after
   the stream ended without it (the agent withholds it, closed the stream, or the ML node
   failed), the MsgFinishInference of the longest output the agent signed (its ids, hash and
   artifact, the node key's signature over the finish payload, and the delivery signature)
   goes to the outbox. The chain charges nothing without a delivery signature, so no executor
   can settle more output than the developer received, nor be left unpaid for more than
   ``delivery_interval_tokens`` tokens it delivered (docs/design.md §3.5).

A generation no delivery signature covers is neither relayed nor finished on chain: the
inference expires, the developer is refunded in full and the miss counts against this
executor. A transfer agent that closed the stream before passing anything on may already have
handed the inference to the next pick of the draw, whose start the chain keeps from any relay
without a delivery. Once the ML node has finished, the record is written even if the
caller goes away meanwhile: the output is complete and the transfer agent has all of it, so
its delivery can still come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import Message
from nacl.signing import SigningKey
from sqlalchemy import update

from apinode.chain_queries import ChainQueries, ChainQueryError, ChainUnavailable
from apinode.draw_audit import DrawAudit
from apinode.execute_wire import (
    Delivery,
    Executed,
    ExecutedStep,
    ExecuteRequest,
    ExecutionRefused,
    ExecutorFailed,
)
from apinode.fault_switch import fault_switch
from apinode.inference_keys import FINISH, RELAY, START, finish_key, relay_key
from apinode.inference_keys import parse as parse_key
from apinode.mlnode_client import MlNodeClient, MlNodeError
from apinode.outbox import Entry, Outbox
from apinode.store import Database, Payload
from apinode.validation.canaries import Planted, planted_shift
from apinode.validation.seeds import SeedStore
from chain.errors import ChainError
from chain.inference import artifact, key_commitments, pass_notices, payload, start_rules
from chain.inference.artifact import ArtifactStep
from chain.inference.delivery import Delivered, signed_delivery
from inferchain_pb.inference.v1.inference_pb2 import (
    EXPIRED,
    Inference,
    KeyRequestCommitment,
    Model,
    MsgFinishInference,
    MsgRelayStart,
    MsgStartInference,
    Participant,
    PassNotice,
)
from mlnode.types import Finished, TokenStep

log = logging.getLogger(__name__)

# Misbehaviours a protocol test can switch on (ApiNodeConfig.executor_fault); "" is honest.
# "refuse-all" refuses every forward before a token with a signed refusal, so the transfer
# agents skip this node and the chain counts a miss against it each time.
# "refuse-and-relay" refuses every forward without a signed refusal and sends the start it
# carried as MsgRelayStart with no delivery, to take the inference from the agent's next pick:
# the chain refuses such a relay (undelivered, code 60) and the next pick serves and is paid.
FAULTS = frozenset({"", "refuse-all", "refuse-and-relay"})
# Forwards remembered to answer whether one reached this node: far more than a node takes
# within a draw window.
FORWARDS_KEPT = 10_000
# How long a forward waits for this node to apply the block its draw names, when that block is
# at most DRAW_LAG_BLOCKS past this node's latest: the transfer agent's node may apply it a
# moment before ours.
DRAW_LAG_WAIT_S = 10.0
DRAW_LAG_BLOCKS = 3
# Queueing a finish that failed (the store unreachable) is tried again this many times, the
# waits doubling up to the cap: about two minutes in all.
FINISH_QUEUE_ATTEMPTS = 12
FINISH_QUEUE_MAX_DELAY_S = 15.0


@dataclass
class _Run:
    """An inference being executed here, or waiting for its last delivery: the tokens passed
    on so far and the longest delivery of them its transfer agent signed."""

    request: ExecuteRequest
    agent: Participant
    top_k: int
    serving_dtype: str  # the model's, checked at admission: the finish says it, signed
    canary: Planted | None  # how its finish shifts the artifact, when it is a canary
    steps: list[TokenStep] = field(default_factory=list)
    complete: bool = False  # the ML node finished the output and Executed went out
    over: bool = False  # no more tokens come: the finish waits for deliveries only
    held: Delivery | None = None
    held_kind: Delivered | None = None
    signed: asyncio.Event = field(default_factory=asyncio.Event)  # set on a longer delivery

    @property
    def delivered(self) -> int:
        return self.held.output_tokens if self.held else 0

    @property
    def settled(self) -> bool:
        """The agent signed all of the output: the finish need not wait any longer."""
        return self.delivered == len(self.steps) and (
            not self.complete or self.held_kind is Delivered.WHOLE)

    def hold(self, delivery: Delivery, kind: Delivered) -> None:
        """Keeps the longest delivery (a whole one over a prefix of the same length)."""
        if delivery.output_tokens > self.delivered or (
                delivery.output_tokens == self.delivered and kind is Delivered.WHOLE):
            self.held, self.held_kind = delivery, kind
            self.signed.set()

    def recorded(self) -> list[ArtifactStep]:
        return [ArtifactStep(s.token_id, s.logprob, s.top_ids[:self.top_k],
                             s.top_logprobs[:self.top_k]) for s in self.steps]


class Executor:
    """Runs forwarded inferences for the participant at ``address``.

    ``node_key`` is the ed25519 key registered on chain for ``address``; the outbox's worker
    must send with ``address``'s account key, since the finish names it as creator.
    """

    def __init__(self, address: str, node_key: SigningKey, chain: ChainQueries,
                 mlnode: MlNodeClient, db: Database, outbox: Outbox,
                 audit: DrawAudit | None = None, fault: str = "",
                 relay_delay_s: float = 1.0, delivery_interval_tokens: int = 16,
                 delivery_wait_s: float = 30.0, *, chain_id: str) -> None:
        if delivery_interval_tokens < 1:
            raise ValueError("delivery_interval_tokens must be at least 1")
        self.fault = fault_switch("executor", fault, FAULTS, "this node refuses forwards")
        self.audit = audit or DrawAudit()
        self.address = address
        self.node_key = node_key
        self.chain = chain
        self.mlnode = mlnode
        self.db = db
        self.outbox = outbox
        self.chain_id = chain_id  # what the developer's request signature names
        self.relay_delay_s = relay_delay_s
        self.delivery_interval_tokens = delivery_interval_tokens
        self.delivery_wait_s = delivery_wait_s
        self.seeds = SeedStore(db, address)  # its canaries follow from its validator's seeds
        self._running: set[str] = set()  # inference ids being executed in this process
        self._runs: dict[str, _Run] = {}  # executed here, not yet finished or given up
        self._settling: set[asyncio.Task] = set()
        # Inference ids of the forwards that reached this node lately, oldest first: a
        # transfer agent that gives up on one has asked, and this node does not claim it.
        self._forwarded: OrderedDict[str, None] = OrderedDict()

    def forwarded(self, inference_id: str) -> bool:
        """Whether a forward of ``inference_id`` reached this node (among the last
        FORWARDS_KEPT)."""
        return inference_id in self._forwarded

    async def execute(self, request: ExecuteRequest) -> AsyncIterator[ExecutedStep | Executed]:
        """Each output token as an ``ExecutedStep``, then one ``Executed``.

        The first ``__anext__`` raises ``ExecutionRefused`` when the request is not this
        node's to run, before any token, so the caller can still answer with an error status.
        Other errors: ``ChainUnavailable`` (the chain node cannot be asked, nothing decided),
        ``MlNodeRefused`` (the ML node found the prompt or sampling invalid), ``MlNodeError``
        (it failed; mid-stream, the inference is left unfinished). Read the stream through to
        ``Executed``: closing it earlier cancels the generation, and only the prefix the
        transfer agent signed delivery of is finished.
        """
        start = request.start
        self._forwarded[start.inference_id] = None
        while len(self._forwarded) > FORWARDS_KEPT:
            self._forwarded.popitem(last=False)
        if self.fault == "refuse-all":
            raise self._refuse(request, "executor fault 'refuse-all' is on", signed=True)
        if self.fault == "refuse-and-relay":
            await asyncio.to_thread(self.outbox.enqueue, relay_key(start.inference_id),
                                    MsgRelayStart(creator=self.address, start=start))
            raise self._refuse(request, "executor fault 'refuse-and-relay' is on")
        if start.inference_id in self._running:
            raise self._refuse(request, "this inference is already being executed here")
        if start.inference_id in self._runs:
            raise self._refuse(request, "this inference was already executed here")
        self._running.add(start.inference_id)
        try:
            model, agent = await self._admit(request)
            log.info("executing %s for transfer agent %s: %d prompt tokens, max_tokens %d, "
                     "seed %d, attempt %d", start.inference_id, start.creator,
                     len(start.prompt_ids), start.max_tokens, start.seed, start.attempt)
            shift = await planted_shift(self.chain, self.seeds, start, model)
            if shift:
                log.info("inference %s is one of this node's canaries: its finish records the "
                         "artifact shifted by %d to %d quanta", start.inference_id,
                         shift.quanta, 2 * shift.quanta - 1)
            async for item in self._run(_Run(request, agent, model.top_k,
                                             model.serving_dtype, shift)):
                yield item
        finally:
            self._running.discard(start.inference_id)

    async def _admit(self, request: ExecuteRequest) -> tuple[Model, Participant]:
        """The model to run and the transfer agent's record, once every check that the chain
        will make of us has passed; the start's own rules are the chain's
        (chain/inference/start_rules.py)."""
        start = request.start
        if start.executor != self.address:
            raise self._refuse(request, f"the request names executor {start.executor}, "
                                        f"not this node ({self.address})")
        # Only a registered agent's signed forward may make this node wait (below).
        agent = await self.chain.participant(start.creator)
        if agent is None:
            raise self._refuse(request, f"transfer agent {start.creator} is not a "
                                        f"registered participant")
        with self._chain_refusal(request):
            start_rules.check_ta_signature(start, agent)
        # Every check after this reads this node's state at or after the draw's block, which
        # is at least what the agent's node held when it checked the request.
        if not await self.chain.reached(start.draw_height, DRAW_LAG_WAIT_S, DRAW_LAG_BLOCKS):
            raise self._refuse(request, f"this node has not applied block {start.draw_height}, "
                                        f"the draw the request names, within "
                                        f"{DRAW_LAG_WAIT_S:g}s (it waits only for a block at "
                                        f"most {DRAW_LAG_BLOCKS} past its latest)")
        me, model, known, served, params = await asyncio.gather(
            self.chain.participant(self.address), self.chain.model(start.model_id),
            self.chain.inference(start.inference_id), self.mlnode.info(), self.chain.params())
        if model is None:
            raise self._refuse(request, f"model {start.model_id!r} is not in the registry")
        escrow = start_rules.escrow_of(start, model, int(params["transfer_agent_fee"]))
        committed = None if start.request_signature else \
            await self.chain.key_request_commitment(start.creator, start.inference_id)
        await self._check_developer(request, escrow, committed)
        self._check_serving(request, me, model, served.model_id, served.weights_sha256,
                            served.dtype)
        with self._chain_refusal(request):
            start_rules.check_context(start, model)
        if known is not None:
            self._check_known(request, known)
        await self._check_draw(request, escrow, committed, int(params["pass_claim_blocks"]))
        if await asyncio.to_thread(self._executed_here, start.inference_id):
            raise self._refuse(request, "this inference was already executed here")
        return model, agent

    async def _check_developer(self, request: ExecuteRequest, escrow: int,
                               committed: KeyRequestCommitment | None) -> None:
        """The developer authorised this request as the chain will check it: by a request
        signature over this prompt hash for this TA, by an allowance for this TA that covers
        the ``escrow``, or, for the TA's own probe, by its commitment ``committed``, which its
        account signed (``_check_draw`` holds the start to it). Without it the chain refuses
        the start and the work is unpaid."""
        start = request.start
        if start.request_signature:
            with self._chain_refusal(request):
                start_rules.check_request_key(start)
                start_rules.check_request_signature(start, self.chain_id)
            return
        if committed is not None and committed.probe_model_id:
            return
        allowed = await self.chain.allowance(start.developer, start.creator)
        with self._chain_refusal(request):
            start_rules.check_allowance(start, allowed, escrow)

    def _check_serving(self, request: ExecuteRequest, me: Participant | None, model: Model,
                       ml_model_id: str, ml_weights: str, ml_dtype: str) -> None:
        """This node's registration and ML node fit the model, so the chain takes its finish."""
        if me is None:
            raise self._refuse(request, f"this node ({self.address}) is not a registered "
                                        f"participant")
        if me.node_pubkey != bytes(self.node_key.verify_key):
            raise self._refuse(request, "this node's key is not the node key registered on "
                                        "chain, so the chain would refuse its signature")
        if not any(m.model_id == model.id and m.weights_sha256 == model.weights_sha256
                   for m in me.models):
            raise self._refuse(request, f"this node is not registered serving {model.id} with "
                                        f"the registry's weights")
        if (ml_model_id, ml_weights) != (model.id, model.weights_sha256):
            raise self._refuse(request, f"the ML node serves {ml_model_id} with weights "
                                        f"{ml_weights[:16]}…, not {model.id}'s "
                                        f"{model.weights_sha256[:16]}…")
        if ml_dtype != model.serving_dtype:
            raise self._refuse(request, f"the ML node serves {model.id} in {ml_dtype}, not its "
                                        f"registered {model.serving_dtype}")

    def _check_known(self, request: ExecuteRequest, known: Inference) -> None:
        """What the chain already holds of this inference leaves room for our finish."""
        start = request.start
        if known.finished:
            raise self._refuse(request, "the inference is already finished on chain")
        if known.status == EXPIRED:
            raise self._refuse(request, "the inference has expired on chain")
        if known.started and known.executor != self.address:
            raise self._refuse(request, f"the chain started this inference with executor "
                                        f"{known.executor}")
        if known.started and (known.prompt_hash != start.prompt_hash
                              or list(known.prompt_ids) != list(start.prompt_ids)):
            raise self._refuse(request, "the prompt differs from the one started on chain")

    async def _check_draw(self, request: ExecuteRequest, escrow: int,
                          committed: KeyRequestCommitment | None, claim_blocks: int) -> None:
        """The id and draw height are the request's own (a signed request's by its timestamp,
        an API-key request's by its agent's commitment), this node is pick ``attempt`` of
        the draw the chain will recompute, and each pick before it that left no refusal was
        noticed and did not claim the request within its window (``claim_blocks``)."""
        start = request.start
        with self._chain_refusal(request):
            start_rules.check_transform(start)
            start_rules.check_request_id(start)
            if not start.request_signature:
                start_rules.check_key_nonce(start)
        if not start.request_signature:
            with self._chain_refusal(request):
                key_commitments.check_start(committed, start, escrow)
        try:
            draw = await self.chain.draw(
                start.inference_id, start.model_id,
                draw_height=0 if start.request_signature else start.draw_height,
                request_timestamp=start.request_timestamp if start.request_signature else 0)
        except ChainUnavailable:
            raise
        except ChainQueryError as exc:
            if exc.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                raise
            raise self._refuse(request, f"the chain has no draw for the request at height "
                                        f"{start.draw_height}: {exc.details}") from exc
        if draw.draw_height != start.draw_height:
            raise self._refuse(request, f"a request stamped {start.request_timestamp} draws "
                                        f"at height {draw.draw_height}, not "
                                        f"{start.draw_height}")
        order = start_rules.executor_order(list(draw.order), start.creator,
                                           bool(start.request_signature))
        picked = order[start.attempt] if start.attempt < len(order) else "nobody"
        if picked != self.address:
            self.audit.forward_refused(start.inference_id, start.creator, start.draw_height,
                                       start.attempt, self.address, picked)
            raise self._refuse(request, f"the draw at height {start.draw_height} picks "
                                        f"{picked} for attempt {start.attempt}, not this node")
        passed = [j for j in range(start.attempt)
                  if j >= len(start.refusals) or not start.refusals[j]]
        if passed:
            async def notices() -> list[PassNotice | None]:
                return await asyncio.gather(*(self.chain.pass_notice(
                    start.creator, start.inference_id, j) for j in passed))

            # The agent forwards once its node has the claim windows' last block; ours may
            # apply it a moment later, with a claim in it. The start lands after that.
            found = await notices()
            ends = [n.height + claim_blocks for n in found if n is not None]
            if ends:
                await self.chain.reached(max(ends), DRAW_LAG_WAIT_S, DRAW_LAG_BLOCKS)
                found = await notices()  # a claim may be in the blocks waited for
            height = await self.chain.latest_height() + 1
            with self._chain_refusal(request):
                for j, notice in zip(passed, found, strict=True):
                    pass_notices.check_pass(notice, start, j, order[j], height, claim_blocks)

    def _executed_here(self, inference_id: str) -> bool:
        """A stored output, or the finish of a prefix of one that stopped early."""
        with self.db.session() as session:
            if session.get(Payload, inference_id) is not None:
                return True
        return self.outbox.get(finish_key(inference_id)) is not None

    @contextmanager
    def _chain_refusal(self, request: ExecuteRequest) -> Iterator[None]:
        """A start rule the request breaks refuses it with the chain's own reason."""
        try:
            yield
        except ChainError as exc:
            raise self._refuse(request, exc.message) from None

    def _refuse(self, request: ExecuteRequest, reason: str,
                signed: bool = False) -> ExecutionRefused:
        """``signed``: this node declines work it could do, and says so with its node key, so
        the chain may charge it the miss (docs/design.md §3.3); a refusal for the request's own
        fault is never signed."""
        start = request.start
        log.warning("refusing inference %s from transfer agent %s: %s", start.inference_id,
                    start.creator, reason)
        refusal = self.node_key.sign(payload.refusal_payload(
            start.inference_id, start.attempt, self.address)).signature if signed else b""
        return ExecutionRefused(reason, refusal)

    async def _run(self, run: _Run) -> AsyncIterator[ExecutedStep | Executed]:
        started = time.monotonic()
        request, steps = run.request, run.steps
        inference_id, prompt_ids = request.start.inference_id, request.start.prompt_ids
        wanted = request.top_logprobs
        finish: Finished | None = None
        self._runs[inference_id] = run
        stream = self.mlnode.generate(prompt_ids, request.sampling, max(run.top_k, wanted))
        try:
            async with aclosing(stream):
                async for event in stream:
                    if isinstance(event, Finished):
                        finish = event
                        continue
                    steps.append(event)
                    yield ExecutedStep(event.token_id, event.text, event.logprob,
                                       event.top_ids[:wanted], event.top_logprobs[:wanted])
                    await self._await_delivery(run)
        except (GeneratorExit, asyncio.CancelledError):
            log.warning("inference %s: the stream was closed after %d tokens; finishing the "
                        "longest output its transfer agent signed delivery of",
                        inference_id, len(steps))
            self._settle_later(run)
            raise
        except (MlNodeError, ExecutorFailed) as exc:
            log.warning("inference %s stopped after %d tokens: %s", inference_id, len(steps),
                        exc)
            self._settle_later(run)
            raise
        if finish is None or not steps:
            self._settle_later(run)
            raise MlNodeError(f"the ML node ended inference {inference_id} after "
                              f"{len(steps)} tokens without a finished output")
        done = Executed(output_ids=tuple(s.token_id for s in steps),
                        text="".join(s.text for s in steps), finish_reason=finish.reason,
                        prompt_tokens=len(prompt_ids), completion_tokens=len(steps))
        # Shielded: the output is complete, so the record is written even if our caller is
        # cancelled now (the thread would run on anyway; the shield makes that certain).
        try:
            size = await asyncio.shield(asyncio.to_thread(self._record, request, done,
                                                          run.recorded(), run.top_k))
        except Exception:  # the store is down: what the agent signed so far still settles
            self._settle_later(run)
            raise
        run.complete = True
        self._settle_later(run)
        log.info("executed %s: %d tokens (%s) in %.1fs; artifact %d bytes (%.1f per token); "
                 "MsgFinishInference waits for the delivery", inference_id, done.completion_tokens,
                 done.finish_reason, time.monotonic() - started, size,
                 size / done.completion_tokens)
        yield done

    async def _await_delivery(self, run: _Run) -> None:
        """Returns once the next token would not put ``delivery_interval_tokens`` or more
        passed-on tokens beyond the longest delivery held; ExecutorFailed after
        ``delivery_wait_s`` without one."""
        deadline = time.monotonic() + self.delivery_wait_s
        while len(run.steps) - run.delivered >= self.delivery_interval_tokens:
            run.signed.clear()
            try:
                await asyncio.wait_for(run.signed.wait(), deadline - time.monotonic())
            except TimeoutError:
                raise ExecutorFailed(
                    f"the transfer agent signed delivery of {run.delivered} of the "
                    f"{len(run.steps)} tokens passed on and no more within "
                    f"{self.delivery_wait_s:g}s; stopping") from None

    def _settle_later(self, run: _Run) -> None:
        """Settles the run in the background: a closing generator cannot wait for it."""
        run.over = True
        task = asyncio.get_running_loop().create_task(self._settle(run))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, run: _Run) -> None:
        """Queues the finish of the longest output the agent signed delivery of, once it
        signed all of it or ``delivery_wait_s`` passed; with no signature, nothing (the
        inference expires: a refund, and a miss against this node)."""
        inference_id = run.request.start.inference_id
        try:
            deadline = time.monotonic() + self.delivery_wait_s
            while run.steps and not run.settled and time.monotonic() < deadline:
                run.signed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.signed.wait(), deadline - time.monotonic())
            if run.held is None:
                if run.steps:
                    log.warning("inference %s: its transfer agent signed delivery of none of "
                                "its %d tokens; not finishing it", inference_id, len(run.steps))
                return
            await self._queue_finish_retrying(run, run.held)
            if not run.settled:
                log.warning("inference %s: its transfer agent signed delivery of %d of the %d "
                            "tokens passed on; finishing those", inference_id, run.delivered,
                            len(run.steps))
        finally:
            self._runs.pop(inference_id, None)

    async def _queue_finish_retrying(self, run: _Run, delivery: Delivery) -> None:
        """Queues the run's finish, trying again while the store is unreachable (a database
        restart): the finish is the executor's pay, and nothing else would queue it."""
        inference_id = run.request.start.inference_id
        for attempt in range(1, FINISH_QUEUE_ATTEMPTS + 1):
            try:
                await self._queue_finish(run.request, run.recorded(), run.top_k, delivery,
                                         run.serving_dtype, run.canary)
                return
            except Exception as exc:
                if attempt == FINISH_QUEUE_ATTEMPTS:
                    log.error("inference %s: could not queue its MsgFinishInference after %d "
                              "attempts (%s); it will expire unpaid", inference_id, attempt,
                              exc)
                    return
                delay = min(FINISH_QUEUE_MAX_DELAY_S, 2 ** attempt * 0.25)
                log.warning("inference %s: queueing its MsgFinishInference failed (%s); "
                            "trying again in %.1fs", inference_id, exc, delay)
                await asyncio.sleep(delay)

    def _relay(self, start: MsgStartInference, delivery: Delivery, output_ids: list[int]) -> None:
        """Queues the agent's signed start for this node to send with the delivery it holds
        (the chain relays no start without one), unless this node is the agent (its own
        outbox sends the start) or a relay is queued already."""
        if start.creator != self.address:
            self.outbox.enqueue(relay_key(start.inference_id),
                                self._relay_message(start, delivery, output_ids),
                                delay_s=self.relay_delay_s)

    def _relay_message(self, start: MsgStartInference, delivery: Delivery,
                       output_ids: list[int]) -> MsgRelayStart:
        return MsgRelayStart(
            creator=self.address, start=start,
            delivered_hash=payload.ids_hash(output_ids[:delivery.output_tokens]),
            delivery_signature=delivery.signature)

    def _record(self, request: ExecuteRequest, done: Executed, recorded: list[ArtifactStep],
                k: int) -> int:
        """The payload row; returns the artifact's size."""
        start = request.start
        encoded = artifact.encode(recorded, k)
        with self.db.session() as session:
            # The executor never sees the developer's messages, only the forwarded request:
            # kept whole, it holds the sampling a validator replays and the TA's signature.
            session.add(Payload(inference_id=start.inference_id, prompt=request.to_json(),
                                prompt_token_ids=list(start.prompt_ids),
                                output_text=done.text, output_token_ids=list(done.output_ids),
                                artifact=encoded))
        return len(encoded)

    async def deliver(self, delivery: Delivery) -> None:
        """Holds a transfer agent's signature that a prefix (or all) of an output executed here
        reached the developer; once the run is over, queues the finish of what it signs.
        ExecutionRefused when the inference was not executed here or the signature is not the
        agent's over output executed here (a whole delivery only over the complete output), so
        nobody else can make this node queue a finish the chain or a validator would refuse."""
        run = self._runs.get(delivery.inference_id)
        if run is not None:
            output_ids = [s.token_id for s in run.steps]
            run.hold(delivery, self._checked(delivery, run.agent, output_ids, run.complete))
            await asyncio.to_thread(self._relay, run.request.start, delivery, output_ids)
            if run.over and run.settled and run.held is delivery:
                await self._queue_finish(run.request, run.recorded(), run.top_k, delivery,
                                         run.serving_dtype, run.canary)
            return
        row = await asyncio.to_thread(self._payload, delivery.inference_id)
        if row is None or row.artifact is None:
            raise ExecutionRefused(f"inference {delivery.inference_id} was not executed here")
        request = ExecuteRequest.from_json(row.prompt)
        agent, model = await asyncio.gather(self.chain.participant(request.start.creator),
                                            self.chain.model(request.start.model_id))
        self._checked(delivery, agent, row.output_token_ids, True)
        await asyncio.to_thread(self._relay, request.start, delivery, row.output_token_ids)
        k, recorded = artifact.decode(row.artifact)
        # Executed here, so admitted in the model's dtype, which no update changes.
        shift = await planted_shift(self.chain, self.seeds, request.start, model) \
            if model else None
        await self._queue_finish(request, recorded, k, delivery,
                                 model.serving_dtype if model else "", shift)

    def _checked(self, delivery: Delivery, agent: Participant | None, output_ids: list[int],
                 complete: bool) -> Delivered:
        """The kind of delivery the agent signed over the first ``output_tokens`` ids of this
        node's output."""
        tokens, kind = delivery.output_tokens, None
        if agent is not None and tokens <= len(output_ids):
            kind = signed_delivery(agent, self.address, delivery.inference_id,
                                   payload.ids_hash(output_ids[:tokens]), delivery.signature)
        if kind is None or (kind is Delivered.WHOLE
                            and not (complete and tokens == len(output_ids))):
            raise ExecutionRefused(f"the delivery of {delivery.inference_id} is not its transfer "
                                   f"agent's signature over the output executed here")
        return kind

    async def _queue_finish(self, request: ExecuteRequest, recorded: list[ArtifactStep], k: int,
                            delivery: Delivery, serving_dtype: str,
                            planted: Planted | None) -> None:
        """Queues the finish of the delivered prefix of ``recorded``, once per inference. It
        asks the chain nothing: a finish owed while this node's chain node is down still
        goes to the outbox, which sends it once the chain is back."""
        finish = self._finish_of(request, recorded, k, delivery, serving_dtype, planted)
        if await asyncio.to_thread(self._enqueue_finish, finish, delivery):
            log.info("inference %s: %d output tokens delivered to the developer: "
                     "MsgFinishInference queued", delivery.inference_id, finish.output_tokens)

    def _enqueue_finish(self, finish: MsgFinishInference, delivery: Delivery) -> bool:
        """Queues the finish and keeps the delivery it was made with in the payload row (a
        complete run has one), in one transaction; False when a finish was queued before."""
        with self.db.session() as session:
            if not self.outbox.enqueue(finish_key(delivery.inference_id), finish,
                                       session=session):
                return False
            session.execute(update(Payload)
                            .where(Payload.inference_id == delivery.inference_id)
                            .values(delivered_tokens=delivery.output_tokens,
                                    delivery_signature=delivery.signature))
            return True

    async def repair(self, entry: Entry) -> Message | None:
        """The message of an outbox entry whose stored bytes no longer decode (a damaged
        row), made again and stored in its place; None when this node cannot make it.

        It can for the entries of an inference this node executed to the end: its payload
        row holds the forwarded start, the output and its artifact, and the delivery the
        finish was made with, so the finish and the relay come out byte for byte as they
        were queued (ed25519 signatures are deterministic), and so does the start when this
        node was also the inference's transfer agent. A run that stopped early keeps no
        payload row: its finish is lost with its row, as is any other entry of the node's."""
        parsed = parse_key(entry.key)
        if parsed is None:
            return None
        kind, inference_id = parsed
        row = await asyncio.to_thread(self._payload, inference_id)
        if row is None or row.artifact is None:
            return None
        request = ExecuteRequest.from_json(row.prompt)
        message: Message | None = None
        if kind == START and request.start.creator == self.address:
            message = request.start
        elif kind in (FINISH, RELAY) and row.delivered_tokens is not None:
            delivery = Delivery(inference_id, row.delivered_tokens,
                                row.delivery_signature or b"")
            if kind == RELAY:
                message = self._relay_message(request.start, delivery, row.output_token_ids)
            else:
                model = await self.chain.model(request.start.model_id)
                k, recorded = artifact.decode(row.artifact)
                shift = await planted_shift(self.chain, self.seeds, request.start, model) \
                    if model else None
                message = self._finish_of(request, recorded, k, delivery,
                                          model.serving_dtype if model else "", shift)
        if message is not None:
            await asyncio.to_thread(self.outbox.rewrite, entry.id, message)
        return message

    def _payload(self, inference_id: str) -> Payload | None:
        with self.db.session() as session:
            row = session.get(Payload, inference_id)
            if row is not None:
                session.expunge(row)
            return row

    def _finish_of(self, request: ExecuteRequest, recorded: list[ArtifactStep], k: int,
                   delivery: Delivery, serving_dtype: str,
                   planted: Planted | None) -> MsgFinishInference:
        """MsgFinishInference of the prefix of ``recorded`` that ``delivery`` signs, with its
        delivery signature; a canary's artifact shifted (apinode/validation/canaries.py)."""
        delivered = recorded[:delivery.output_tokens]
        encoded = artifact.encode(delivered, k)
        if planted is not None:
            encoded = planted.apply(encoded)
        finish = self._finish_message(request, [s.token_id for s in delivered], encoded,
                                      serving_dtype)
        finish.delivery_signature = delivery.signature
        return finish

    def _finish_message(self, request: ExecuteRequest, output_ids: list[int],
                        encoded_artifact: bytes, serving_dtype: str) -> MsgFinishInference:
        """MsgFinishInference for ``output_ids``, signed with the node key as the chain
        checks it."""
        msg = MsgFinishInference(
            creator=self.address, inference_id=request.start.inference_id,
            model_id=request.start.model_id, prompt_hash=request.start.prompt_hash,
            output_ids=output_ids, artifact=encoded_artifact,
            output_hash=payload.ids_hash(output_ids),
            prompt_tokens=len(request.start.prompt_ids), output_tokens=len(output_ids),
            serving_dtype=serving_dtype)
        msg.executor_signature = self.node_key.sign(payload.finish_payload(
            msg.inference_id, msg.model_id, msg.prompt_hash, msg.output_hash,
            msg.prompt_tokens, msg.output_tokens, msg.artifact, msg.creator,
            msg.serving_dtype)).signature
        return msg
