"""The transfer agent: takes a developer's request, has the drawn executor run it, and
starts the inference on chain (docs/design.md §3.4).

The request fixes its own draw (docs/design.md §3.3): its inference id is the hash of what the
developer signed (``payload.request_id``) and its draw height is the first block at or after
its timestamp, so this agent only reads the draw. The executor is the first of the draw order
that accepts the request. One that refuses sends its signed refusal with its 409, which the
start carries (the chain counts the miss); one that is unreachable or sends no first token in
time leaves none, and this agent passes it only after a notice on chain that the pick may
claim within ``pass_claim_blocks`` (apinode/pass_notices.py): a pick that claims is alive and
is tried again (passed then only on its refusal), one that stays silent is passed for the next
pick. MsgStartInference goes to the outbox once an executor has produced its first token, so
the response never waits for the chain.

The chain accepts a start only while its draw height is among the last
``max_draw_age_blocks`` blocks. So that every answer the developer receives is settled on
chain, the first token must come while a quarter of that window is still left for the start
to reach a block. The draw cannot be taken again, so each pick waits for its first token at
most an equal share of the blocks left until then and a slower one (a stalled ML node) is
given up on for the next pick; when none answers in time the request fails (503). Nothing
reaches the developer before a first token that came in time.

Every ``delivery_interval_tokens`` tokens it passes on to the developer, the agent signs the
hash of the output so far (the prefix delivery payload), and when the stream ends with exactly
the output ids it passed on, their hash (the delivery payload); each signature goes to the
executor in the background, never holding up the stream. The executor's MsgFinishInference
must carry one: the chain charges the developer for no output this agent did not deliver, and
the executor, which runs at most that many tokens ahead of the signatures it holds, is paid
for the longest prefix signed (docs/design.md §3.5).
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
from nacl.signing import SigningKey

from apinode import openai_errors as errors
from apinode.chain_queries import HEIGHT_POLL_S, ChainQueries, ChainQueryError, Draw
from apinode.execute_wire import (
    DELIVERY_PATH,
    EXECUTE_PATH,
    Delivery,
    Executed,
    ExecutedStep,
    ExecuteRequest,
    ExecutionRefused,
    ExecutorFailed,
    decode,
)
from apinode.executor import Executor
from apinode.executor_health import ExecutorHealth
from apinode.fault_switch import fault_switch
from apinode.inference_keys import start_key
from apinode.key_commitments import KeyRequestCommitter
from apinode.metrics import ApiMetrics
from apinode.mlnode_client import MlNodeClient, MlNodeError, MlNodeRefused
from apinode.openai_grammar import refused_grammar
from apinode.openai_request import CompletionRequest
from apinode.openai_response import OutputToken
from apinode.outbox import Outbox
from apinode.owed_deliveries import OwedDeliveries
from apinode.pass_notices import PassNoticer
from apinode.request_auth import SignedRequest
from apinode.spending import Spending
from apinode.tx_batches import BatchRefused, BatchStalled
from chain.inference import payload, start_rules
from inferchain_pb.inference.v1.inference_pb2 import (
    LogitBias,
    Model,
    MsgStartInference,
    Participant,
    PickPass,
)

log = logging.getLogger(__name__)

Event = ExecutedStep | Executed
# The share of the draw window (1/4) kept for the start to reach a block after the first token.
START_SHARE = 4
# Blocks a notice of a passed pick takes to land: a pass needs this and the claim window
# (pass_claim_blocks) before the draw window's share kept for the start.
PASS_LAND_BLOCKS = 1
# How long a request waits for the chain's first block at or after its timestamp.
DRAW_BLOCK_WAIT_S = 30.0
# Misbehaviours a protocol test can switch on (ApiNodeConfig.transfer_agent_fault); "" is
# honest. "withhold-start" never sends the chain a start: the executor relays it to be paid.
# "withhold-delivery" signs delivery of the first delivery_interval_tokens tokens only, takes
# the rest of the output and never signs it: the executor stops and is paid for that prefix.
# "pass-first-pick" passes the draw's first pick without forwarding it the request (a notice
# on chain, as for a pick that failed it), as an agent favouring the next pick would: a live
# first pick claims the request and is forwarded it after all.
FAULTS = frozenset({"", "withhold-start", "withhold-delivery", "pass-first-pick"})
CHOICE_SEED_TAG = b"inferchain/choice-seed/v1"
# A delivery the executor could not take (5xx, no connection) is handed over again, waiting
# DELIVERY_RETRY_S × the attempt number between tries: about 45 s in all.
DELIVERY_ATTEMPTS = 6
DELIVERY_RETRY_S = 3.0
# A kept delivery older than this when the agent restarts is dropped: its inference expired
# on chain long before (expiration_blocks, 20 by default).
OWED_DELIVERY_MAX_AGE_S = 600.0


class DeliveryRefused(Exception):
    """The executor refused a delivery for good: trying again cannot change its answer."""


class DeliveryUnavailable(Exception):
    """The executor could not take a delivery just now (its own chain node or store down)."""


class DrawExpired(Exception):
    """The first token came (or would come) too late for the chain to accept the start."""


@dataclass(frozen=True)
class Prepared:
    """A request that passed every check the TA can make before choosing an executor, with
    the timestamp and nonce its inference ids derive from (an API-key request's are this
    agent's, chosen once for all its choices)."""

    request: CompletionRequest
    signed: SignedRequest
    model: Model
    prompt_ids: tuple[int, ...]
    timestamp: int
    nonce: bytes
    params: dict[str, Any]  # the inference params, read once for the whole request

    @property
    def cost(self) -> int:
        """The most the inference can cost: what the chain escrows at its start."""
        return start_rules.escrow(len(self.prompt_ids), self.request.max_tokens, self.model,
                                  int(self.params["transfer_agent_fee"]))


class TransferAgent:
    def __init__(self, address: str, node_key: SigningKey, chain: ChainQueries,
                 mlnode: MlNodeClient, executor: Executor, outbox: Outbox,
                 session: aiohttp.ClientSession, commitments: KeyRequestCommitter,
                 passes: PassNoticer,
                 first_token_timeout_s: float = 120.0, fault: str = "",
                 delivery_interval_tokens: int = 16, metrics: ApiMetrics | None = None,
                 token_gap_timeout_s: float = 60.0) -> None:
        self.fault = fault_switch("transfer agent", fault, FAULTS, {
            "withhold-start": "this agent takes outputs without starting them on chain",
            "withhold-delivery": "this agent takes outputs without signing their delivery",
            "pass-first-pick": "this agent passes every request's first pick unasked"}.get(
                fault, ""))
        self.address = address
        self._metrics = metrics or ApiMetrics()
        self._key = node_key
        self._chain = chain
        self._commitments = commitments
        self._passes = passes
        self._mlnode = mlnode
        self._executor = executor
        self._outbox = outbox
        self._session = session
        self._first_token_timeout = first_token_timeout_s
        self._token_gap_timeout = token_gap_timeout_s
        self._height, self._height_at = 0, -HEIGHT_POLL_S
        self._spending = Spending(outbox)
        self._delivery_interval = delivery_interval_tokens
        self._deliveries: set[asyncio.Task] = set()  # signatures on their way to executors
        self._owed = OwedDeliveries(outbox.db)
        self._stamps: dict[tuple[str, bytes], int] = {}  # API-key stamps not yet in the past
        self._health = ExecutorHealth()

    async def prepare(self, request: CompletionRequest, signed: SignedRequest) -> Prepared:
        """Model, prompt ids, context and balance checks: the developer's errors, early."""
        model = await self._chain.model(request.model)
        if model is None:
            raise errors.model_not_found(request.model)
        if request.kind == "chat":
            constraint = request.constraint
            try:
                prompt = await self._mlnode.tokenize_chat(request.messages, constraint.tools,
                                                          constraint.grammar_kind,
                                                          constraint.grammar)
            except MlNodeRefused as exc:
                raise refused_grammar(exc, constraint) from exc
        else:
            prompt = await self._mlnode.tokenize_text(request.prompt)
        if not start_rules.fits_context(len(prompt.ids), request.max_tokens, model):
            raise errors.context_length_exceeded(model.context_length, len(prompt.ids),
                                                 request.max_tokens, "messages")
        if request.logit_bias:
            vocab = (await self._mlnode.info()).vocab_size
            unknown = [t for t, _ in request.logit_bias if t >= vocab]
            if unknown:
                raise errors.invalid_request(
                    f"Invalid 'logit_bias': token id {unknown[0]} is not in the vocabulary of "
                    f"{model.id} ({vocab} tokens).", "logit_bias", "invalid_value")
        params = await self._chain.params()
        if signed.signature:
            return Prepared(request, signed, model, tuple(prompt.ids), signed.timestamp,
                            signed.nonce, params)
        # An API-key request is stamped here, on the developer's behalf; its nonce follows
        # from the stamp (docs/design.md §3.3).
        stamp = self._stamp(signed.developer, signed.prompt_hash)
        return Prepared(request, signed, model, tuple(prompt.ids), stamp,
                        payload.key_request_nonce(self.address, signed.developer,
                                                  signed.prompt_hash, stamp, request.n),
                        params)

    def _stamp(self, developer: str, prompt_hash: bytes) -> int:
        """Now, or a second after this agent's last stamp of the same body by the same
        developer: an API-key request's id follows from its stamp, so two identical requests
        in one second need two."""
        now = int(time.time())
        self._stamps = {k: v for k, v in self._stamps.items() if v >= now}
        stamp = max(now, self._stamps.get((developer, prompt_hash), now - 1) + 1)
        self._stamps[(developer, prompt_hash)] = stamp
        return stamp

    async def serve(self, prepared: Prepared,
                    choice: int = 0) -> tuple[str, AsyncGenerator[Event]]:
        """The inference id and stream of one choice of the request (``request.n`` of them,
        each an inference of its own), once an executor has sent a first token in time for
        its start to reach the chain; refused (402) unless the developer's funds cover it on
        top of what its other requests at this agent hold (apinode/spending.py)."""
        developer = prepared.signed.developer

        async def balance() -> int:
            return (await self._chain.account(developer)).balance

        async def allowance() -> int:
            return await self._chain.allowance(developer, self.address)

        funds = [("its balance", balance)]
        if not prepared.signed.signature and not self._probe(prepared):
            funds.append((f"its allowance for transfer agent {self.address}; grant more "
                          f"with MsgGrantAllowance", allowance))
        async with self._spending.hold(developer, prepared.cost, funds):
            return await self._serve(prepared, choice)

    def _probe(self, prepared: Prepared) -> bool:
        """Whether the request is a probe: this participant's own, through an API key (the
        probe worker's, docs/design.md §10.4). Its commitment names its model, so the chain
        counts it towards the probe quota, and its start is paid from this participant's
        balance without an allowance: the commitment, which its account signs, consents."""
        return not prepared.signed.signature and prepared.signed.developer == self.address

    async def _serve(self, prepared: Prepared,
                     choice: int) -> tuple[str, AsyncGenerator[Event]]:
        max_age = int(prepared.params["max_draw_age_blocks"])
        attempts = int(prepared.params["max_attempts"])
        signed, timestamp, nonce = prepared.signed, prepared.timestamp, prepared.nonce
        inference_id = payload.request_id(signed.developer, signed.prompt_hash, timestamp,
                                          self.address, nonce, choice, prepared.request.n)
        if signed.signature:
            draw = await self._request_draw(inference_id, prepared.model.id,
                                            request_timestamp=timestamp)
        else:
            # An API-key request draws at the block after its commitment's. A model nobody
            # can serve now is refused before the commitment, whose forfeit it would burn.
            await self._request_draw(inference_id, prepared.model.id)
            draw = await self._request_draw(inference_id, prepared.model.id, draw_height=(
                await self._commitments.draw_height(
                    inference_id, prepared.cost,
                    prepared.model.id if self._probe(prepared) else "")))
        participants = {p.address: p for p in await self._chain.participants()}
        last_height = draw.draw_height + max_age - max(1, max_age // START_SHARE)
        picks = start_rules.executor_order(list(draw.order), self.address,
                                           bool(signed.signature))[:attempts]
        claim_blocks = int(prepared.params["pass_claim_blocks"])
        refusals = [b""] * len(picks)  # each pick's signed refusal, once it sent one
        attempt, claimed = 0, False  # claimed: picks[attempt] claimed the request; try again
        outcomes: list[str] = []  # what became of each pick, for the developer's 503
        while attempt < len(picks):
            executor = picks[attempt]
            now = await self._chain.latest_height()
            if now >= last_height:
                outcomes.append(f"the draw's window closed at height {last_height}")
                break
            served: AsyncGenerator[Event] | bytes = b""
            if executor == self.address and not all(refusals[:attempt]):
                # The chain takes this agent past a pick only on that pick's signed refusal.
                log.info("inference %s: passing itself at attempt %d: a pick before it left no "
                         "signed refusal", inference_id, attempt)
                outcomes.append(f"this agent ({executor}) was passed: a pick before it left no "
                                "signed refusal")
            elif not claimed and self.fault == "pass-first-pick" and attempt == 0 \
                    and executor != self.address \
                    and self._health.passes_over(picks, attempt, self.address, failing=True):
                log.warning("inference %s: transfer agent fault 'pass-first-pick': passing "
                            "executor %s unasked", inference_id, executor)
                outcomes.append(f"{executor} was passed unasked")
            elif not claimed and self._health.passes_over(picks, attempt, self.address):
                log.info("inference %s: passing executor %s (attempt %d) without trying it: it "
                         "failed this agent within the last minute", inference_id, executor,
                         attempt)
                self._metrics.fallbacks.labels("recently_failed").inc()
                outcomes.append(f"{executor} failed this agent within the last minute")
            else:
                # Each try waits for its first token at most an equal share of the time left,
                # so a stalled executor leaves the next picks theirs within the one draw.
                pick_last = now + max(1, (last_height - now) // (len(picks) - attempt))
                forward = self._forward(prepared, inference_id, choice, draw, attempt,
                                        executor, refusals)
                try:
                    served = await self._try(prepared, forward, participants, pick_last,
                                             last_height, outcomes)
                except DrawExpired as exc:
                    log.warning("inference %s: gave up on executor %s (attempt %d): %s",
                                inference_id, executor, attempt, exc)
                    self._metrics.fallbacks.labels("draw_expired").inc()
                    outcomes.append(f"{executor} sent no first token within its share of the "
                                    "draw's window")
                if not isinstance(served, bytes):
                    return inference_id, served
            if served:  # its signed refusal: the next pick may serve
                refusals[attempt], attempt, claimed = served, attempt + 1, False
                continue
            if claimed or attempt + 1 == len(picks):
                break  # a claimant that failed again is passed only on its refusal
            outcome = await self._pass(prepared, inference_id, draw.draw_height, attempt,
                                       executor, claim_blocks, last_height)
            if outcome is None:
                outcomes.append(f"{executor} could not be passed in time")
                break
            claimed = outcome
            if claimed:
                outcomes.append(f"{executor} claimed the request, so it was asked again")
            else:
                attempt += 1
        picks_said = "the draw's picks: " + "; ".join(outcomes)
        log.warning("inference %s: refused to the developer, as no pick served it (%s)",
                    inference_id, picks_said)
        raise errors.no_executor(prepared.model.id, picks_said)

    async def _pass(self, prepared: Prepared, inference_id: str, draw_height: int,
                    attempt: int, executor: str, claim_blocks: int,
                    last_height: int) -> bool | None:
        """Notices that this agent passes pick ``attempt`` and waits out the pick's claim
        window (docs/design.md §3.3): True when the pick claimed the request (it is alive and
        is tried again), False when the start may pass it, None when it cannot be passed in
        time (or the chain took no notice)."""
        now = await self._chain.latest_height()
        if now + PASS_LAND_BLOCKS + claim_blocks >= last_height:
            log.warning("inference %s: no time left to pass executor %s (attempt %d): a pass "
                        "waits %d blocks for the pick's claim", inference_id, executor,
                        attempt, claim_blocks)
            return None
        try:
            await self._passes.notice(PickPass(
                inference_id=inference_id, model_id=prepared.model.id,
                draw_height=draw_height, attempt=attempt, pick=executor), claim_blocks)
        except (BatchRefused, BatchStalled) as exc:
            log.warning("inference %s: could not pass executor %s (attempt %d): %s",
                        inference_id, executor, attempt, exc)
            return None
        notice = await self._chain.pass_notice(self.address, inference_id, attempt)
        if notice is None:  # pruned with its draw window: the request is out of time
            return None
        if notice.claimed_at:
            log.info("inference %s: executor %s (attempt %d) claimed the request at height %d; "
                     "trying it again", inference_id, executor, attempt, notice.claimed_at)
            self._metrics.fallbacks.labels("claimed").inc()
            return True
        return False

    async def _request_draw(self, inference_id: str, model_id: str, *, draw_height: int = 0,
                            request_timestamp: int = 0) -> Draw:
        """The draw at ``draw_height``, or at the first block at or after
        ``request_timestamp``, once the chain has it; with neither, at the latest height.
        503 ``no_executor`` when nobody can serve the model."""
        give_up = time.monotonic() + DRAW_BLOCK_WAIT_S
        while True:
            try:
                return await self._chain.draw(inference_id, model_id, draw_height=draw_height,
                                              request_timestamp=request_timestamp)
            except ChainQueryError as exc:
                if exc.code == grpc.StatusCode.FAILED_PRECONDITION:  # nobody has weight for it
                    raise errors.no_executor(model_id, exc.details) from exc
                if exc.code != grpc.StatusCode.NOT_FOUND:
                    raise
                if time.monotonic() > give_up:
                    raise errors.chain_stalled(DRAW_BLOCK_WAIT_S) from exc
            await asyncio.sleep(HEIGHT_POLL_S)

    async def _try(self, prepared: Prepared, forward: ExecuteRequest,
                   participants: dict[str, Participant], pick_last: int,
                   last_height: int, outcomes: list[str]) -> AsyncGenerator[Event] | bytes:
        """The executor's stream once its first token came, waiting until ``pick_last`` and
        by ``last_height`` at the latest, its start queued; when it refused or failed, its
        signed refusal (empty if none), with what happened added to ``outcomes``;
        DrawExpired when its time ran out."""
        start = forward.start
        stream = self._link(start.executor, participants[start.executor].url, forward)
        try:
            first = await self._first_token(stream, pick_last)
            height = await self._chain.latest_height()
            if height > last_height:
                raise DrawExpired(f"the first token came at height {height}, past {last_height}"
                                  f" (draw height {start.draw_height})")
        except DrawExpired:
            await stream.aclose()
            raise
        except (ExecutionRefused, ExecutorFailed, MlNodeError, aiohttp.ClientError,
                TimeoutError, StopAsyncIteration) as exc:
            log.warning("inference %s: executor %s (attempt %d) failed before its first "
                        "token: %s; moving to the next pick", start.inference_id,
                        start.executor, start.attempt, exc)
            reason = _fallback_reason(exc)
            self._metrics.fallbacks.labels(reason).inc()
            outcomes.append(f"{start.executor} {_FALLBACK_WORDS[reason]}")
            await stream.aclose()
            if isinstance(exc, ExecutionRefused):
                return exc.refusal
            self._health.failed(start.executor)
            return b""
        self._health.served(start.executor)
        self._start(start, prepared)
        paced = _paced(stream, self._token_gap_timeout)
        return self._delivering(start, participants[start.executor].url,
                                _prepend(first, paced), prepared.request.stream)

    async def _delivering(self, start: MsgStartInference, url: str,
                          stream: AsyncGenerator[Event], streamed: bool
                          ) -> AsyncGenerator[Event]:
        """``stream`` as it is passed on. Once every ``delivery_interval_tokens`` tokens the
        consumer took, and when the stream ends however it ends, a delivery of the output so
        far goes to the executor: of all of it (before ``Executed``, as a consumer may stop
        reading there) when the end names exactly the ids passed on. An end that claims other
        output than the streamed one gets only the prefix signed. A whole answer (not
        ``streamed``) reaches the developer only once it has ended: one that breaks off reaches
        it as an error, with none of its tokens, so it gets no closing prefix signature (only
        the periodic ones it already had, without which the executor would not go on)."""
        passed: list[int] = []
        signed = 0
        ended = False
        try:
            async with contextlib.aclosing(stream):
                async for item in stream:
                    if isinstance(item, Executed):
                        ended = True
                        if list(item.output_ids) == passed:
                            # Kept before the developer has the end: from then on the
                            # executor is owed it, even across this agent's restart.
                            delivery = self._sign_delivery(start, passed, whole=True)
                            if delivery is not None:
                                await self._keep(start.executor, url, delivery)
                                self._hand_over_later(start.executor, url, delivery, kept=True)
                            signed = len(passed)
                        else:
                            log.warning("inference %s: executor %s ended with %d output ids but "
                                        "streamed %d; its output is signed only as a prefix",
                                        start.inference_id, start.executor,
                                        len(item.output_ids), len(passed))
                        yield item
                        continue
                    passed.append(item.token_id)
                    yield item
                    if len(passed) % self._delivery_interval == 0:
                        delivery = self._sign_delivery(start, passed, whole=False)
                        if delivery is not None:
                            self._hand_over_later(start.executor, url, delivery, kept=False)
                        signed = len(passed)
        finally:
            if len(passed) > signed and (streamed or ended):
                delivery = self._sign_delivery(start, passed, whole=False)
                if delivery is not None:  # the stream's close cannot wait: kept in background
                    self._hand_over_later(start.executor, url, delivery, kept=True, keep=True)

    def _sign_delivery(self, start: MsgStartInference, passed: list[int], *,
                       whole: bool) -> Delivery | None:
        """The signature that ``passed`` reached the developer (all of the output when
        ``whole``, a prefix of it otherwise); None where a test's fault withholds it."""
        if self.fault == "withhold-delivery" and (whole or
                                                  len(passed) > self._delivery_interval):
            log.warning("inference %s: transfer agent fault 'withhold-delivery': delivery of "
                        "%d tokens not signed", start.inference_id, len(passed))
            return None
        signed = (payload.delivery_payload if whole else payload.prefix_delivery_payload)(
            start.inference_id, payload.ids_hash(passed), self.address, start.executor)
        return Delivery(start.inference_id, len(passed), self._key.sign(signed).signature)

    async def _keep(self, executor: str, url: str, delivery: Delivery) -> None:
        """Stores a closing delivery until its executor has it; a store that is down costs
        only that durability (the hand-over goes on from memory)."""
        try:
            await asyncio.to_thread(self._owed.owe, executor, url, delivery)
        except Exception as exc:
            log.warning("inference %s: could not keep its delivery for executor %s (%s); it "
                        "is handed over from memory only", delivery.inference_id, executor, exc)

    def _hand_over_later(self, executor: str, url: str, delivery: Delivery, *, kept: bool,
                         keep: bool = False) -> None:
        """Hands ``delivery`` over in the background (storing it first when ``keep``); a
        ``kept`` one leaves the store once the executor took or refused it, or the agent gave
        up on it."""

        async def deliver() -> None:
            if keep:
                await self._keep(executor, url, delivery)
            await self._deliver(executor, url, delivery)
            if kept:
                try:
                    await asyncio.to_thread(self._owed.settle, delivery.inference_id)
                except Exception as exc:  # handed over again after a restart: harmless
                    log.warning("inference %s: could not drop its handed-over delivery: %s",
                                delivery.inference_id, exc)

        task = asyncio.get_running_loop().create_task(deliver())
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def resume_deliveries(self) -> int:
        """Hands over again, in the background, the closing deliveries a previous run of this
        agent kept and did not finish handing over; how many."""
        owed = await asyncio.to_thread(self._owed.owed, OWED_DELIVERY_MAX_AGE_S)
        for executor, url, delivery in owed:
            self._hand_over_later(executor, url, delivery, kept=True)
        if owed:
            log.info("transfer agent: handing over %d deliveries a previous run still owed "
                     "their executors", len(owed))
        return len(owed)

    async def _deliver(self, executor: str, url: str, delivery: Delivery) -> None:
        """Hands a delivery to the executor, again while it cannot take it for now (its node
        restarting, its chain node or store down): the delivery is what the executor is paid
        for. A refusal ends it; failures are logged, and the developer's answer goes on
        either way."""
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                await self._hand_over(executor, url, delivery)
                return
            except DeliveryRefused as exc:
                error: Exception = exc
                break
            except Exception as exc:  # not taken for now: the executor's node or store down
                error = exc
            if attempt < DELIVERY_ATTEMPTS:
                await asyncio.sleep(DELIVERY_RETRY_S * attempt)
        log.warning("inference %s: executor %s did not take the delivery of %d tokens: %s",
                    delivery.inference_id, executor, delivery.output_tokens, error)

    async def _hand_over(self, executor: str, url: str, delivery: Delivery) -> None:
        """One try; DeliveryRefused when the executor refused it for good (HTTP 4xx)."""
        if executor == self.address:
            try:
                await self._executor.deliver(delivery)
            except ExecutionRefused as exc:
                raise DeliveryRefused(exc.reason) from exc
            return
        async with self._session.post(url.rstrip("/") + DELIVERY_PATH,
                                      json=delivery.to_json()) as reply:
            if reply.status == 200:
                return
            reason = f"HTTP {reply.status}: {(await reply.text())[:300]}"
            raise (DeliveryRefused if reply.status < 500 else DeliveryUnavailable)(reason)

    async def _first_token(self, stream: AsyncIterator[Event], last_height: int) -> Event:
        """The stream's first event; TimeoutError after ``first_token_timeout_s``, and
        DrawExpired once the chain is past ``last_height``."""
        give_up = time.monotonic() + self._first_token_timeout
        first = asyncio.ensure_future(anext(stream))
        try:
            while True:
                done, _ = await asyncio.wait({first}, timeout=HEIGHT_POLL_S)
                if done:
                    return first.result()
                if time.monotonic() > give_up:
                    raise TimeoutError(f"no first token within {self._first_token_timeout:g}s")
                height = await self._latest_height()
                if height > last_height:
                    raise DrawExpired(f"no first token by height {last_height} (now {height})")
        finally:
            if not first.done():
                first.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await first

    async def _latest_height(self) -> int:
        """The chain's height, asked at most every HEIGHT_POLL_S by all waiting requests."""
        if time.monotonic() - self._height_at >= HEIGHT_POLL_S:
            self._height, self._height_at = await self._chain.latest_height(), time.monotonic()
        return self._height

    def _forward(self, prepared: Prepared, inference_id: str, choice: int, draw: Draw,
                 attempt: int, executor: str, refusals: list[bytes]) -> ExecuteRequest:
        """The start of choice ``choice`` this TA sends the chain once ``executor`` answers,
        signed with its node key: the executor runs it and checks it as the chain will.
        ``refusals`` are the skipped picks' signed refusals (empty where a pick sent none)."""
        request, signed = prepared.request, prepared.signed
        seed = secrets.randbits(64) if request.seed is None else choice_seed(request.seed,
                                                                             choice)
        start = MsgStartInference(
            creator=self.address, inference_id=inference_id, model_id=prepared.model.id,
            developer=signed.developer, developer_pubkey=signed.pubkey,
            request_signature=signed.signature, request_timestamp=prepared.timestamp,
            request_nonce=prepared.nonce,
            prompt_hash=signed.prompt_hash, prompt_ids=prepared.prompt_ids,
            max_tokens=request.max_tokens, seed=seed,
            executor=executor, draw_height=draw.draw_height, attempt=attempt,
            temperature=request.temperature, top_p=request.top_p, stop=request.stop,
            refusals=refusals[:attempt], grammar_kind=request.constraint.grammar_kind,
            grammar=request.constraint.grammar, presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty,
            logit_bias=[LogitBias(token_id=t, bias=b) for t, b in request.logit_bias],
            choice_index=choice, choices=request.n)
        start.ta_signature = self._key.sign(payload.start_payload_of(start)).signature
        return ExecuteRequest(start, request.top_logprobs)

    def _link(self, executor: str, url: str, forward: ExecuteRequest) -> AsyncIterator[Event]:
        if executor == self.address:
            return self._executor.execute(forward)
        return self._remote(url, forward)

    async def _remote(self, url: str, forward: ExecuteRequest) -> AsyncIterator[Event]:
        async with self._session.post(url.rstrip("/") + EXECUTE_PATH,
                                      json=forward.to_json()) as reply:
            if reply.status != 200:
                text = await reply.text()
                raise ExecutionRefused(f"HTTP {reply.status}: {text[:300]}",
                                       _signed_refusal(reply.status, text))
            try:
                async for line in reply.content:
                    if line.strip():
                        item = decode(line)
                        yield item
                        if isinstance(item, Executed):
                            return
            except aiohttp.ClientError as exc:  # the executor went away mid-answer
                raise ExecutorFailed(f"the executor's stream broke off: {exc}") from exc
        raise ExecutorFailed("the executor's stream ended before the output was complete")

    def _start(self, start: MsgStartInference, prepared: Prepared) -> None:
        if self.fault == "withhold-start":
            log.warning("inference %s: transfer agent fault 'withhold-start': its start is not "
                        "sent", start.inference_id)
            return
        key = start_key(start.inference_id)
        self._outbox.enqueue(key, start)
        self._spending.queued(start.developer, key, prepared.cost)
        log.info("inference %s started with executor %s (attempt %d)", start.inference_id,
                 start.executor, start.attempt)

    async def output_tokens(self, request: CompletionRequest,
                            steps: list[ExecutedStep]) -> list[OutputToken]:
        """The steps as the developer sees them: the alternatives named by this node's ML
        node, only when the developer asked for logprobs."""
        if not request.top_logprobs:
            return [OutputToken(s.token_id, s.text, s.logprob) for s in steps]
        pieces = await self._mlnode.detokenize([t for s in steps for t in s.top_ids])
        tokens, at = [], 0
        for step in steps:
            names = pieces[at:at + len(step.top_ids)]
            at += len(step.top_ids)
            tokens.append(OutputToken(step.token_id, step.text, step.logprob,
                                      tuple(zip(names, step.top_logprobs, strict=True))))
        return tokens


# How the developer's 503 tells each ``_fallback_reason``: the executor's own words stay in
# this node's log, as a hostile executor chooses them.
_FALLBACK_WORDS = {"refused": "refused the request", "timeout": "did not answer in time",
                   "failed": "failed before its first token"}


def _fallback_reason(exc: BaseException) -> str:
    """The ``reason`` label of a pick given up on before its first token."""
    if isinstance(exc, ExecutionRefused):
        return "refused"
    return "timeout" if isinstance(exc, TimeoutError) else "failed"


def choice_seed(seed: int, choice: int) -> int:
    """The seed of choice ``choice`` of a request that fixed ``seed``: the seed itself for the
    first, so n = 1 is OpenAI's reproducible seed, and a hash of both for the others, so n
    choices differ yet the same request gives the same n."""
    if choice == 0:
        return seed
    digest = hashlib.sha256(CHOICE_SEED_TAG + struct.pack(">QI", seed, choice)).digest()
    return int.from_bytes(digest[:8], "big")


def _signed_refusal(status: int, body: str) -> bytes:
    """The signed refusal in an executor's 409 (apinode/execute_wire.py), or empty."""
    if status != 409:
        return b""
    try:
        return bytes.fromhex(json.loads(body).get("refusal", ""))
    except (ValueError, TypeError, AttributeError):
        return b""


async def _paced(stream: AsyncGenerator[Event], gap_s: float) -> AsyncGenerator[Event]:
    """``stream`` while each event comes within ``gap_s`` of the one before; ExecutorFailed
    once one does not. An executor that stops sending after its first token but keeps the
    connection open (a stalled ML node, or on purpose) would otherwise hold the developer's
    request, and this node's, for ever; it is paid for what was passed on before."""
    async with contextlib.aclosing(stream):
        while True:
            try:
                async with asyncio.timeout(gap_s) as gap:
                    item = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if not gap.expired():
                    raise
                raise ExecutorFailed(f"the executor sent nothing for {gap_s:g}s "
                                     f"mid-answer") from None
            yield item


async def _prepend(first: Event, rest: AsyncGenerator[Event]) -> AsyncGenerator[Event]:
    """``first`` then ``rest``; closing this closes ``rest``, which cancels the generation."""
    async with contextlib.aclosing(rest):
        yield first
        async for item in rest:
            yield item
