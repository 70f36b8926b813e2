"""The transfer agent: takes a developer's request, has the drawn executor run it, and
starts the inference on chain (DESIGN.md §3, steps 1-4).

The executor is the first of the chain's draw order that accepts the request; one that is
unreachable, refuses, or sends no first token in time is skipped for the next pick (the
chain counts a miss for each skipped one). MsgStartInference goes to the outbox once an
executor has produced its first token, so the response never waits for the chain.
"""

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import aiohttp
from nacl.signing import SigningKey

from apinode import openai_errors as errors
from apinode.chain_queries import ChainQueries
from apinode.execute_wire import EXECUTE_PATH, ExecutorFailed, decode
from apinode.executor import Executed, ExecutedStep, ExecuteRequest, ExecutionRefused, Executor
from apinode.mlnode_client import MlNodeClient, MlNodeError
from apinode.openai_request import CompletionRequest
from apinode.outbox import Outbox
from apinode.request_auth import SignedRequest
from chain.inference import payload
from inferchain_pb.inference.v1.inference_pb2 import Model, MsgStartInference

log = logging.getLogger(__name__)

Event = ExecutedStep | Executed


@dataclass(frozen=True)
class Prepared:
    """A request that passed every check the TA can make before choosing an executor."""

    request: CompletionRequest
    signed: SignedRequest
    model: Model
    prompt_ids: tuple[int, ...]


class TransferAgent:
    def __init__(self, address: str, node_key: SigningKey, chain: ChainQueries,
                 mlnode: MlNodeClient, executor: Executor, outbox: Outbox,
                 session: aiohttp.ClientSession, max_attempts: int = 3,
                 first_token_timeout_s: float = 120.0) -> None:
        self.address = address
        self._key = node_key
        self._chain = chain
        self._mlnode = mlnode
        self._executor = executor
        self._outbox = outbox
        self._session = session
        self._attempts = max_attempts
        self._first_token_timeout = first_token_timeout_s

    async def prepare(self, request: CompletionRequest, signed: SignedRequest) -> Prepared:
        """Model, prompt ids, context and balance checks: the developer's errors, early."""
        if request.n != 1:
            raise errors.invalid_request("n > 1 is not supported yet: each inference needs "
                                         "its own signed request.", "n")
        model = await self._chain.model(request.model)
        if model is None:
            raise errors.model_not_found(request.model)
        if request.kind == "chat":
            prompt = await self._mlnode.tokenize_chat(request.messages)
        else:
            prompt = await self._mlnode.tokenize_text(request.prompt)
        if len(prompt.ids) + request.max_tokens > model.context_length:
            raise errors.context_length_exceeded(model.context_length, len(prompt.ids),
                                                 request.max_tokens, "messages")
        cost = (len(prompt.ids) + request.max_tokens) * model.price_per_token
        if not signed.signature:
            allowed = await self._chain.allowance(signed.developer, self.address)
            if allowed < cost:
                raise errors.insufficient_balance(
                    f"This request can cost up to {cost} ninfer; {signed.developer} allows "
                    f"this transfer agent ({self.address}) {allowed} more. Grant a larger "
                    f"allowance on chain (MsgGrantAllowance).")
        balance = (await self._chain.account(signed.developer)).balance
        if balance < cost:
            raise errors.insufficient_balance(
                f"This request can cost up to {cost} ninfer ({len(prompt.ids)} prompt tokens "
                f"+ max_tokens {request.max_tokens} at {model.price_per_token} ninfer each); "
                f"{signed.developer} has {balance}.")
        return Prepared(request, signed, model, tuple(prompt.ids))

    async def serve(self, prepared: Prepared) -> tuple[str, AsyncGenerator[Event]]:
        """The inference id and its stream, once an executor has sent a first token."""
        inference_id = uuid.uuid4().hex
        request = prepared.request
        seed = request.seed if request.seed is not None else secrets.randbits(64)
        draw = await self._chain.draw(inference_id, prepared.model.id)
        participants = {p.address: p for p in await self._chain.participants()}
        for attempt, executor in enumerate(draw.order[:self._attempts]):
            forward = self._signed_forward(
                inference_id=inference_id, model_id=prepared.model.id,
                developer=prepared.signed.developer, prompt_hash=prepared.signed.prompt_hash,
                prompt_ids=prepared.prompt_ids, max_tokens=request.max_tokens, seed=seed,
                temperature=request.temperature, top_p=request.top_p, stop=request.stop,
                top_logprobs=request.top_logprobs, executor=executor,
                draw_height=draw.draw_height, attempt=attempt, transfer_agent=self.address,
                developer_pubkey=prepared.signed.pubkey,
                request_signature=prepared.signed.signature,
                request_timestamp=prepared.signed.timestamp)
            stream = self._link(executor, participants[executor].url, forward)
            try:
                first = await asyncio.wait_for(anext(stream), self._first_token_timeout)
            except (ExecutionRefused, ExecutorFailed, MlNodeError, aiohttp.ClientError,
                    TimeoutError, StopAsyncIteration) as exc:
                log.warning("inference %s: executor %s (attempt %d) failed before its first "
                            "token: %s; moving to the next draw", inference_id, executor,
                            attempt, exc)
                await stream.aclose()
                continue
            self._start(forward, prepared.signed)
            return inference_id, _prepend(first, stream)
        raise errors.no_executor(prepared.model.id)

    def _signed_forward(self, **fields: object) -> ExecuteRequest:
        """The forward with this TA's node-key signature over its start payload."""
        signed = payload.start_payload(
            fields["inference_id"], fields["model_id"], fields["developer"],
            fields["prompt_hash"], fields["max_tokens"], fields["seed"], fields["executor"],
            fields["draw_height"], fields["attempt"], fields["transfer_agent"],
            fields["temperature"], fields["top_p"], fields["stop"])
        return ExecuteRequest(**fields, ta_signature=self._key.sign(signed).signature)

    def _link(self, executor: str, url: str, forward: ExecuteRequest) -> AsyncIterator[Event]:
        if executor == self.address:
            return self._executor.execute(forward)
        return self._remote(url, forward)

    async def _remote(self, url: str, forward: ExecuteRequest) -> AsyncIterator[Event]:
        async with self._session.post(url.rstrip("/") + EXECUTE_PATH,
                                      json=forward.to_json()) as reply:
            if reply.status != 200:
                raise ExecutionRefused(f"HTTP {reply.status}: {(await reply.text())[:300]}")
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

    def _start(self, forward: ExecuteRequest, signed: SignedRequest) -> None:
        message = MsgStartInference(
            creator=self.address, inference_id=forward.inference_id, model_id=forward.model_id,
            developer=signed.developer, developer_pubkey=signed.pubkey,
            request_signature=signed.signature, request_timestamp=signed.timestamp,
            prompt_hash=signed.prompt_hash, prompt_ids=forward.prompt_ids,
            max_tokens=forward.max_tokens, seed=forward.seed, executor=forward.executor,
            draw_height=forward.draw_height, attempt=forward.attempt,
            ta_signature=forward.ta_signature, temperature=forward.temperature,
            top_p=forward.top_p, stop=forward.stop)
        self._outbox.enqueue("start_inference", f"start_inference:{forward.inference_id}",
                             message.SerializeToString())
        log.info("inference %s started with executor %s (attempt %d)", forward.inference_id,
                 forward.executor, forward.attempt)


async def _prepend(first: Event, rest: AsyncGenerator[Event]) -> AsyncGenerator[Event]:
    """``first`` then ``rest``; closing this closes ``rest``, which cancels the generation."""
    async with contextlib.aclosing(rest):
        yield first
        async for item in rest:
            yield item
