"""The executor: runs an inference a transfer agent forwarded, on this participant's own ML
node, and owes the chain its MsgFinishInference (DESIGN.md §3.3-3.5).

``Executor.execute`` does three things, in order:

1. **Admit.** It accepts only work the chain will accept from it: the request names this node
   as executor; the transfer agent is a registered participant whose node key signed the
   start payload (the very bytes ``MsgStartInference`` is checked against); the model is in
   the registry, this node is registered serving it with the registry's weights and the node
   key it signs with, and its ML node serves those weights; this node is pick ``attempt`` of
   the chain's draw at ``draw_height``; and the inference is neither finished, expired, given
   to someone else on chain, nor already executed here. Anything else raises
   ``ExecutionRefused`` before a single token is generated.
2. **Stream.** One generation on the ML node with ``max(model.top_k, top_logprobs)``
   alternatives per token, so the logprobs the developer gets and the artifact the chain gets
   come from the same per-token data; each token is yielded as it comes.
3. **Finish.** The artifact (top ``model.top_k``), the output hash and the node key's
   signature over the finish payload make a MsgFinishInference; the payload row that serves
   validators later and the outbox entry that carries the message to the chain are written in
   one database transaction, so the node never owes the chain a finish it cannot back with
   the output, nor holds an output it forgot to report.

A generation that does not end (the transfer agent closes the stream, the ML node fails) is
not finished on chain: the inference expires, the developer is refunded in full and the miss
counts against this executor. Finishing the partial output instead would charge the developer
for an answer nobody received, and, worse, a transfer agent that closed the stream may already
have handed the inference to the next pick of the draw: a finish from this node landing before
that pick's start would make the chain refuse the start, and the developer's request would
fail for good. Once the ML node has finished, the record is written even if the caller goes
away meanwhile: the output is complete and the transfer agent has all of it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import grpc
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from apinode.chain_queries import ChainQueries, ChainQueryError, ChainUnavailable
from apinode.draw_audit import DrawAudit
from apinode.fault_switch import fault_switch
from apinode.mlnode_client import MlNodeClient, MlNodeError, MlNodeRefused
from apinode.openai_request import MAX_TOP_LOGPROBS
from apinode.outbox import Outbox
from apinode.store import Database, Payload
from chain.auth import address
from chain.errors import ChainError
from chain.inference import artifact, payload
from chain.inference.artifact import ArtifactStep
from chain.tx.signature import verify as verify_secp256k1
from inferchain_pb.inference.v1.inference_pb2 import (
    EXPIRED,
    Inference,
    Model,
    MsgFinishInference,
    Participant,
)
from mlnode.sampling_params import SamplingParams
from mlnode.types import Finished, TokenStep

log = logging.getLogger(__name__)

FINISH_KIND = "finish_inference"
# Misbehaviours a protocol test can switch on (ApiNodeConfig.executor_fault); "" is honest.
# "refuse-all" refuses every forward before a token, so the transfer agents skip this node
# and the chain counts a miss against it each time.
FAULTS = frozenset({"", "refuse-all"})
HASH_BYTES = 32  # sha256 prompt hash
SIGNATURE_BYTES = 64  # ed25519
MAX_UINT32 = (1 << 32) - 1  # token ids
MAX_UINT64 = (1 << 64) - 1  # seeds


class ExecutionRefused(Exception):
    """This node will not run the request; ``reason`` says why, for the transfer agent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ExecuteRequest:
    """What a transfer agent forwards to the executor: the start it will send the chain, the
    prompt as token ids, and the sampling the developer asked for.

    Construction checks ranges and raises ValueError naming the field, so a malformed request
    from another node never reaches the chain or the ML node. The transfer agent's signature
    covers the start payload only (ids, model, developer, prompt hash, max_tokens, seed,
    executor, draw, sampling); the prompt ids are not signed by it (the chain checks them
    against the prompt hash the developer signed only through the executor's output).
    """

    inference_id: str
    model_id: str
    developer: str
    prompt_hash: bytes
    prompt_ids: tuple[int, ...]
    max_tokens: int
    seed: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    top_logprobs: int  # alternatives per token the developer wants back
    executor: str
    draw_height: int
    attempt: int
    transfer_agent: str
    ta_signature: bytes
    # The developer's request signature as the chain will see it in MsgStartInference; all
    # empty when the developer pays through an allowance for this transfer agent instead.
    developer_pubkey: bytes = b""
    request_signature: bytes = b""
    request_timestamp: int = 0

    def __post_init__(self) -> None:
        for name in ("inference_id", "model_id", "developer", "executor", "transfer_agent"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty")
        if len(self.prompt_hash) != HASH_BYTES:
            raise ValueError(f"prompt_hash must be {HASH_BYTES} bytes")
        if len(self.ta_signature) != SIGNATURE_BYTES:
            raise ValueError(f"ta_signature must be {SIGNATURE_BYTES} bytes")
        if not self.prompt_ids or not all(0 <= t <= MAX_UINT32 for t in self.prompt_ids):
            raise ValueError("prompt_ids must be a non-empty list of uint32 token ids")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not 0 <= self.seed <= MAX_UINT64:
            raise ValueError("seed must be an unsigned 64-bit integer")
        if not (math.isfinite(self.temperature) and math.isfinite(self.top_p)):
            raise ValueError("temperature and top_p must be finite")
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise ValueError(f"top_logprobs must be 0 to {MAX_TOP_LOGPROBS}")
        if self.draw_height < 1 or self.attempt < 0:
            raise ValueError("draw_height must be at least 1 and attempt at least 0")

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=0,
                              max_tokens=self.max_tokens, stop=self.stop, seed=self.seed)

    def start_payload(self) -> bytes:
        """The bytes the transfer agent signed, built as the chain builds them."""
        return payload.start_payload(
            self.inference_id, self.model_id, self.developer, self.prompt_hash, self.max_tokens,
            self.seed, self.executor, self.draw_height, self.attempt, self.transfer_agent,
            self.temperature, self.top_p, self.stop)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, bytes as hex; ``from_json`` reads it back."""
        return {
            "inference_id": self.inference_id, "model_id": self.model_id,
            "developer": self.developer, "prompt_hash": self.prompt_hash.hex(),
            "prompt_ids": list(self.prompt_ids), "max_tokens": self.max_tokens,
            "seed": self.seed, "temperature": self.temperature, "top_p": self.top_p,
            "stop": list(self.stop), "top_logprobs": self.top_logprobs,
            "executor": self.executor, "draw_height": self.draw_height,
            "attempt": self.attempt, "transfer_agent": self.transfer_agent,
            "ta_signature": self.ta_signature.hex(),
            "developer_pubkey": self.developer_pubkey.hex(),
            "request_signature": self.request_signature.hex(),
            "request_timestamp": self.request_timestamp,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecuteRequest:
        """Parse a decoded JSON object from another node; ValueError names the bad field.

        Every field is required and strictly typed (no strings for numbers, no booleans for
        integers); unknown fields are ignored, so a newer transfer agent can add some.
        """
        if not isinstance(data, Mapping):
            raise ValueError("an execute request must be a JSON object")
        missing = [name for name in _PARSERS if name not in data]
        if missing:
            raise ValueError(f"missing fields: {', '.join(missing)}")
        return cls(**{name: parse(data[name], name) for name, parse in _PARSERS.items()})


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _integer(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    return value


def _number(value: Any, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    return float(value)


def _hex(value: Any, name: str) -> bytes:
    try:
        return bytes.fromhex(_text(value, name))
    except ValueError:
        raise ValueError(f"{name} must be a hex string") from None


def _integers(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of integers")
    return tuple(_integer(v, name) for v in value)


def _texts(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of strings")
    return tuple(_text(v, name) for v in value)


_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "inference_id": _text, "model_id": _text, "developer": _text, "prompt_hash": _hex,
    "prompt_ids": _integers, "max_tokens": _integer, "seed": _integer, "temperature": _number,
    "top_p": _number, "stop": _texts, "top_logprobs": _integer, "executor": _text,
    "draw_height": _integer, "attempt": _integer, "transfer_agent": _text,
    "ta_signature": _hex, "developer_pubkey": _hex, "request_signature": _hex,
    "request_timestamp": _integer,
}


@dataclass(frozen=True)
class ExecutedStep:
    """One output token as the developer sees it: its top alternatives are the
    ``top_logprobs`` the request asked for (none when it asked for none)."""

    token_id: int
    text: str
    logprob: float
    top_ids: tuple[int, ...]
    top_logprobs: tuple[float, ...]


@dataclass(frozen=True)
class Executed:
    """Ends a successful execution; by now MsgFinishInference is in the outbox."""

    output_ids: tuple[int, ...]
    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


class Executor:
    """Runs forwarded inferences for the participant at ``address``.

    ``node_key`` is the ed25519 key registered on chain for ``address``; the outbox's worker
    must send with ``address``'s account key, since the finish names it as creator.
    """

    def __init__(self, address: str, node_key: SigningKey, chain: ChainQueries,
                 mlnode: MlNodeClient, db: Database, outbox: Outbox,
                 audit: DrawAudit | None = None, fault: str = "") -> None:
        self.fault = fault_switch("executor", fault, FAULTS, "this node refuses forwards")
        self.audit = audit or DrawAudit()
        self.address = address
        self.node_key = node_key
        self.chain = chain
        self.mlnode = mlnode
        self.db = db
        self.outbox = outbox
        self._running: set[str] = set()  # inference ids being executed in this process

    async def execute(self, request: ExecuteRequest) -> AsyncIterator[ExecutedStep | Executed]:
        """Each output token as an ``ExecutedStep``, then one ``Executed``.

        The first ``__anext__`` raises ``ExecutionRefused`` when the request is not this
        node's to run, before any token, so the caller can still answer with an error status.
        Other errors: ``ChainUnavailable`` (the chain node cannot be asked, nothing decided),
        ``MlNodeRefused`` (the ML node found the prompt or sampling invalid), ``MlNodeError``
        (it failed; mid-stream, the inference is left unfinished). Read the stream through to
        ``Executed``: closing it earlier cancels the generation and finishes nothing.
        """
        inference_id = request.inference_id
        if self.fault == "refuse-all":
            raise self._refuse(request, "executor fault 'refuse-all' is on")
        if inference_id in self._running:
            raise self._refuse(request, "this inference is already being executed here")
        self._running.add(inference_id)
        try:
            model = await self._admit(request)
            log.info("executing %s for transfer agent %s: %d prompt tokens, max_tokens %d, "
                     "seed %d, attempt %d", inference_id, request.transfer_agent,
                     len(request.prompt_ids), request.max_tokens, request.seed, request.attempt)
            async for item in self._run(request, model):
                yield item
        finally:
            self._running.discard(inference_id)

    async def _check_developer(self, request: ExecuteRequest, model: Model) -> None:
        """The developer authorised this request as the chain will check it: by a request
        signature over this prompt hash for this TA, or by an allowance for this TA that
        covers the escrow. Without it the chain refuses the start and the work is unpaid."""
        if request.request_signature:
            try:
                owner = address.encode(address.from_pubkey(request.developer_pubkey))
                message = payload.request_message(request.prompt_hash,
                                                  request.request_timestamp,
                                                  request.transfer_agent)
                valid = owner == request.developer and verify_secp256k1(
                    request.developer_pubkey, message, request.request_signature)
            except (ChainError, ValueError):
                valid = False
            if not valid:
                raise self._refuse(request, "the developer's request signature does not "
                                            "verify for this prompt and transfer agent")
            return
        escrow = (len(request.prompt_ids) + request.max_tokens) * model.price_per_token
        allowed = await self.chain.allowance(request.developer, request.transfer_agent)
        if allowed < escrow:
            raise self._refuse(request, f"the request is unsigned and {request.developer} "
                                        f"allows {request.transfer_agent} only {allowed} "
                                        f"ninfer of the {escrow} it escrows")

    async def _admit(self, request: ExecuteRequest) -> Model:
        """The model to run, once every check that the chain will make of us has passed."""
        if request.executor != self.address:
            raise self._refuse(request, f"the request names executor {request.executor}, "
                                        f"not this node ({self.address})")
        agent, me, model, known, served = await asyncio.gather(
            self.chain.participant(request.transfer_agent), self.chain.participant(self.address),
            self.chain.model(request.model_id), self.chain.inference(request.inference_id),
            self.mlnode.info())
        if agent is None:
            raise self._refuse(request, f"transfer agent {request.transfer_agent} is not a "
                                        f"registered participant")
        try:
            VerifyKey(agent.node_pubkey).verify(request.start_payload(), request.ta_signature)
        except (BadSignatureError, ValueError, TypeError):
            raise self._refuse(request, "the transfer agent's node-key signature over the start "
                                        "payload does not verify") from None
        if model is None:
            raise self._refuse(request, f"model {request.model_id!r} is not in the registry")
        await self._check_developer(request, model)
        self._check_serving(request, me, model, served.model_id, served.weights_sha256)
        if len(request.prompt_ids) + request.max_tokens > model.context_length:
            raise self._refuse(request, f"prompt plus max_tokens exceeds the context of "
                                        f"{model.context_length}")
        if known is not None:
            self._check_known(request, known)
        await self._check_draw(request)
        if await asyncio.to_thread(self._executed_here, request.inference_id):
            raise self._refuse(request, "this inference was already executed here")
        return model

    def _check_serving(self, request: ExecuteRequest, me: Participant | None, model: Model,
                       ml_model_id: str, ml_weights: str) -> None:
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

    def _check_known(self, request: ExecuteRequest, known: Inference) -> None:
        """What the chain already holds of this inference leaves room for our finish."""
        if known.finished:
            raise self._refuse(request, "the inference is already finished on chain")
        if known.status == EXPIRED:
            raise self._refuse(request, "the inference has expired on chain")
        if known.started and known.executor != self.address:
            raise self._refuse(request, f"the chain started this inference with executor "
                                        f"{known.executor}")
        if known.started and (known.prompt_hash != request.prompt_hash
                              or list(known.prompt_ids) != list(request.prompt_ids)):
            raise self._refuse(request, "the prompt differs from the one started on chain")

    async def _check_draw(self, request: ExecuteRequest) -> None:
        """This node is pick ``attempt`` of the draw the chain will recompute."""
        try:
            draw = await self.chain.draw(request.inference_id, request.model_id,
                                         request.draw_height)
        except ChainUnavailable:
            raise
        except ChainQueryError as exc:
            if exc.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                raise
            raise self._refuse(request, f"the chain has no draw at height "
                                        f"{request.draw_height}: {exc.details}") from exc
        picked = draw.order[request.attempt] if request.attempt < len(draw.order) else "nobody"
        if picked != self.address:
            self.audit.forward_refused(request.inference_id, request.transfer_agent,
                                       request.draw_height, request.attempt, self.address,
                                       picked)
            raise self._refuse(request, f"the draw at height {request.draw_height} picks "
                                        f"{picked} for attempt {request.attempt}, not this node")

    def _executed_here(self, inference_id: str) -> bool:
        with self.db.session() as session:
            return session.get(Payload, inference_id) is not None

    def _refuse(self, request: ExecuteRequest, reason: str) -> ExecutionRefused:
        log.warning("refusing inference %s from transfer agent %s: %s", request.inference_id,
                    request.transfer_agent, reason)
        return ExecutionRefused(reason)

    async def _run(self, request: ExecuteRequest,
                   model: Model) -> AsyncIterator[ExecutedStep | Executed]:
        started = time.monotonic()
        wanted = request.top_logprobs
        steps: list[TokenStep] = []
        finish: Finished | None = None
        stream = self.mlnode.generate(request.prompt_ids, request.sampling,
                                      max(model.top_k, wanted))
        try:
            async with aclosing(stream):
                async for event in stream:
                    if isinstance(event, Finished):
                        finish = event
                        continue
                    steps.append(event)
                    yield ExecutedStep(event.token_id, event.text, event.logprob,
                                       event.top_ids[:wanted], event.top_logprobs[:wanted])
        except (GeneratorExit, asyncio.CancelledError):
            log.warning("inference %s: the stream was closed after %d tokens; not finishing a "
                        "partial output, it will expire on chain", request.inference_id,
                        len(steps))
            raise
        except MlNodeRefused as exc:
            log.warning("inference %s: the ML node refused it: %s", request.inference_id, exc)
            raise
        except MlNodeError as exc:
            log.warning("inference %s: the ML node failed after %d tokens, leaving it "
                        "unfinished: %s", request.inference_id, len(steps), exc)
            raise
        if finish is None or not steps:
            raise MlNodeError(f"the ML node ended inference {request.inference_id} after "
                              f"{len(steps)} tokens without a finished output")
        done = Executed(output_ids=tuple(s.token_id for s in steps),
                        text="".join(s.text for s in steps), finish_reason=finish.reason,
                        prompt_tokens=len(request.prompt_ids), completion_tokens=len(steps))
        # Shielded: the output is complete, so the record is written even if our caller is
        # cancelled now (the thread would run on anyway; the shield makes that certain).
        size = await asyncio.shield(asyncio.to_thread(self._record, request, done, steps,
                                                      model.top_k))
        log.info("executed %s: %d tokens (%s) in %.1fs; artifact %d bytes (%.1f per token); "
                 "MsgFinishInference queued", request.inference_id, done.completion_tokens,
                 done.finish_reason, time.monotonic() - started, size,
                 size / done.completion_tokens)
        yield done

    def _record(self, request: ExecuteRequest, done: Executed, steps: list[TokenStep],
                k: int) -> int:
        """Payload row and outbox entry in one transaction; returns the artifact's size."""
        encoded = artifact.encode([ArtifactStep(s.token_id, s.logprob, s.top_ids[:k],
                                                s.top_logprobs[:k]) for s in steps], k)
        finish = self._finish_message(request, done, encoded)
        with self.db.session() as session:
            # The executor never sees the developer's messages, only the forwarded request:
            # kept whole, it holds the sampling a validator replays and the TA's signature.
            session.add(Payload(inference_id=request.inference_id, prompt=request.to_json(),
                                prompt_token_ids=list(request.prompt_ids),
                                output_text=done.text, output_token_ids=list(done.output_ids),
                                artifact=encoded))
            self.outbox.enqueue(FINISH_KIND, f"{FINISH_KIND}:{request.inference_id}",
                                finish.SerializeToString(), session=session)
        return len(encoded)

    def _finish_message(self, request: ExecuteRequest, done: Executed,
                       encoded_artifact: bytes) -> MsgFinishInference:
        """MsgFinishInference for ``done``, signed with the node key as the chain checks it."""
        msg = MsgFinishInference(
            creator=self.address, inference_id=request.inference_id, model_id=request.model_id,
            prompt_hash=request.prompt_hash, output_ids=done.output_ids,
            artifact=encoded_artifact, output_hash=payload.ids_hash(done.output_ids),
            prompt_tokens=done.prompt_tokens, output_tokens=done.completion_tokens)
        msg.executor_signature = self.node_key.sign(payload.finish_payload(
            msg.inference_id, msg.model_id, msg.prompt_hash, msg.output_hash,
            msg.prompt_tokens, msg.output_tokens, msg.artifact, msg.creator)).signature
        return msg
