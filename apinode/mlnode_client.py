"""The API node's client of its own ML node: tokenize, generate, score, info (docs/design.md §9),
and proof of compute: prove (a stream of accepted nonces) and verify (a sample of claims).

Async over one ``grpc.aio`` channel that the client opens and reuses for every call; the ML
node is a sidecar on loopback, so there is no pool and no retry here. Its answers come back as
the ML node's own types (``mlnode.types``) rather than protobuf messages, so callers (executor,
validator, gateway) never touch ``inferchain_pb``.

Failures are sorted by what the caller should do about them:

- ``MlNodeRefused``: the ML node found the request invalid (INVALID_ARGUMENT: an unknown token
  id, a prompt over the context window, a bad temperature). Asking again will not help; the
  message is the ML node's own and names the offending field, fit to show a developer.
- ``MlNodeUnavailable``: the ML node is down, restarting, or did not answer in time
  (UNAVAILABLE, DEADLINE_EXCEEDED). Nothing was decided; another executor may serve it.
- ``MlNodeError``: anything else (INTERNAL: the engine failed on this request).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from inferchain_pb.mlnode.v1 import mlnode_pb2 as pb
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as pb_grpc
from mlnode.rule_check import RuleCheck
from mlnode.sampling_params import SamplingParams
from mlnode.types import (
    MAX_MESSAGE_BYTES,
    EngineInfo,
    Finished,
    PocCheck,
    PocModelSpec,
    PocNonce,
    PocProgress,
    ScoredPosition,
    Tokenized,
    TokenStep,
    VerifyReport,
)

DEFAULT_TIMEOUT_S = 30.0
# A generation may queue behind a full batch and then run max_tokens steps on a CPU.
DEFAULT_GENERATE_TIMEOUT_S = 900.0
UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

Reply = TypeVar("Reply", bound=Message)


class MlNodeError(Exception):
    """The ML node failed a call; ``code`` is the gRPC status."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class MlNodeRefused(MlNodeError):
    """The ML node refused the request as invalid; the message says which field and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, grpc.StatusCode.INVALID_ARGUMENT)


class MlNodeUnavailable(MlNodeError):
    """The ML node could not be reached or did not answer within the deadline."""


class MlNodeClient:
    """Calls one ML node at ``address`` (``host:port``) over a channel kept open until
    ``close()``; use it as ``async with MlNodeClient(address) as mlnode:``.

    ``timeout_s`` bounds the unary calls; ``generate_timeout_s`` a whole generation stream.
    Create it inside the event loop that will use it: a ``grpc.aio`` channel is bound to one.
    """

    def __init__(self, address: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 generate_timeout_s: float = DEFAULT_GENERATE_TIMEOUT_S) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.generate_timeout_s = generate_timeout_s
        self._channel = grpc.aio.insecure_channel(address, options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
        self._stub = pb_grpc.MLNodeStub(self._channel)

    async def __aenter__(self) -> MlNodeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def info(self) -> EngineInfo:
        reply = await self._unary("Info", self._stub.Info, pb.InfoRequest())
        return EngineInfo(
            model_id=reply.model_id, weights_sha256=reply.weights_sha256, dtype=reply.dtype,
            device=reply.device, engine=reply.engine, context_length=reply.context_length,
            vocab_size=reply.vocab_size, max_top_logprobs=reply.max_top_logprobs,
            eos_token_id=reply.eos_token_id)

    async def tokenize_chat(self, messages: Sequence[tuple[str, ...]], tools: str = "",
                            grammar_kind: str = "", grammar: str = "") -> Tokenized:
        """(role, content) pairs, or (role, content, tool_calls, tool_call_id) tuples, with the
        tools' JSON through the model's chat template, ready for the reply. A grammar given is
        compiled too: MlNodeRefused when the ML node cannot build it."""
        chat = pb.ChatMessages(messages=[pb.ChatMessage(role=m[0], content=m[1],
                                                        tool_calls=m[2] if len(m) > 2 else "",
                                                        tool_call_id=m[3] if len(m) > 3 else "")
                                         for m in messages], tools=tools)
        reply = await self._unary("Tokenize", self._stub.Tokenize, pb.TokenizeRequest(
            chat=chat, grammar_kind=grammar_kind, grammar=grammar))
        return Tokenized(list(reply.token_ids), reply.text)

    async def tokenize_text(self, text: str) -> Tokenized:
        reply = await self._unary("Tokenize", self._stub.Tokenize, pb.TokenizeRequest(text=text))
        return Tokenized(list(reply.token_ids), reply.text)

    async def detokenize(self, token_ids: Sequence[int]) -> list[str]:
        """Each id's own text: names the logprob alternatives a response lists."""
        reply = await self._unary("Detokenize", self._stub.Detokenize,
                                  pb.DetokenizeRequest(token_ids=token_ids))
        return list(reply.pieces)

    async def generate(self, prompt_ids: Sequence[int], sampling: SamplingParams,
                       top_logprobs: int) -> AsyncIterator[TokenStep | Finished]:
        """One ``TokenStep`` per generated token, then one ``Finished``.

        Closing the iterator early (``aclose()``, or the consuming task being cancelled)
        cancels the call, and the ML node frees the request's batch row at once.
        """
        request = pb.GenerateRequest(prompt_ids=prompt_ids, sampling=_sampling_to_pb(sampling),
                                     top_logprobs=top_logprobs)
        call = self._stub.Generate(request, timeout=self.generate_timeout_s)
        try:
            async for chunk in call:
                if chunk.HasField("step"):
                    yield _step(chunk.step)
                else:
                    yield Finished(chunk.finish_reason, chunk.prompt_tokens)
        except grpc.aio.AioRpcError as exc:
            raise _error("Generate", exc) from exc
        finally:
            call.cancel()  # a no-op once the stream has ended

    async def score(self, prompt_ids: Sequence[int], output_ids: Sequence[int],
                    top_logprobs: int, sampling: SamplingParams | None = None
                    ) -> list[ScoredPosition]:
        """Teacher-forced per-position data for ``output_ids`` after ``prompt_ids``; with
        ``sampling``, also where each token sits in the seeded sampling rule."""
        request = pb.ScoreRequest(prompt_ids=prompt_ids, output_ids=output_ids,
                                  top_logprobs=top_logprobs)
        if sampling is not None:
            request.sampling.CopyFrom(_sampling_to_pb(sampling))
        reply = await self._unary("Score", self._stub.Score, request,
                                  timeout=self.generate_timeout_s)
        if sampling is None:
            return [ScoredPosition(_step(p.step), None) for p in reply.positions]
        return [ScoredPosition(_step(p.step), RuleCheck(p.cdf_low, p.cdf_high, p.u, p.argmax_gap),
                               RuleCheck(p.eos_cdf_low, p.eos_cdf_high, p.u, p.eos_argmax_gap))
                for p in reply.positions]

    async def proof_of_compute(self, shape: PocModelSpec, seed: bytes, nonce_start: int,
                               nonce_count: int, target_distance: float, *,
                               batch_size: int = 0, dtype: str = "float32"
                               ) -> AsyncIterator[PocProgress]:
        """Computes nonces ``nonce_start`` … ``nonce_start + nonce_count − 1`` in order; one
        ``PocProgress`` per forward pass. No deadline: a sprint lasts as long as its window,
        and the caller ends it by closing the iterator (or cancelling its task), which cancels
        the call; the ML node stops after the pass in flight."""
        request = pb.PocRequest(spec=_shape_to_pb(shape), seed=seed, nonce_start=nonce_start,
                                nonce_count=nonce_count, target_distance=target_distance,
                                batch_size=batch_size, dtype=dtype)
        call = self._stub.ProofOfCompute(request)
        try:
            async for chunk in call:
                yield PocProgress(tuple(PocNonce(n.nonce, n.distance) for n in chunk.accepted),
                                  chunk.computed, chunk.accepted_total)
        except grpc.aio.AioRpcError as exc:
            raise _error("ProofOfCompute", exc) from exc
        finally:
            call.cancel()

    async def verify_proof_of_compute(self, shape: PocModelSpec, seed: bytes,
                                      target_distance: float, claimed: Sequence[PocNonce],
                                      sample_size: int, sample_seed: bytes,
                                      tolerance: float) -> VerifyReport:
        """Re-computes the sample of ``claimed`` that ``sample_seed`` picks (always float32)."""
        request = pb.PocVerifyRequest(
            spec=_shape_to_pb(shape), seed=seed, target_distance=target_distance,
            claimed=[pb.PocNonce(nonce=c.nonce, distance=c.distance) for c in claimed],
            sample_size=sample_size, sample_seed=sample_seed, tolerance=tolerance)
        reply = await self._unary("VerifyProofOfCompute", self._stub.VerifyProofOfCompute,
                                  request, timeout=self.generate_timeout_s)
        return VerifyReport([PocCheck(c.nonce, c.claimed, c.recomputed, c.ok)
                             for c in reply.checks], list(reply.duplicates))

    async def _unary(self, name: str, method: Callable[..., Awaitable[Reply]],
                     request: Message, timeout: float | None = None) -> Reply:
        try:
            return await method(request, timeout=timeout or self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise _error(name, exc) from exc


def _sampling_to_pb(sampling: SamplingParams) -> pb.SamplingParams:
    return pb.SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p,
                             top_k=sampling.top_k, max_tokens=sampling.max_tokens,
                             stop=list(sampling.stop), seed=sampling.seed,
                             grammar_kind=sampling.grammar_kind, grammar=sampling.grammar,
                             presence_penalty=sampling.presence_penalty,
                             frequency_penalty=sampling.frequency_penalty,
                             logit_bias=[pb.LogitBias(token_id=t, bias=b)
                                         for t, b in sampling.logit_bias])


def _shape_to_pb(shape: PocModelSpec) -> pb.PocModelSpec:
    return pb.PocModelSpec(hidden=shape.hidden, layers=shape.layers, heads=shape.heads,
                           ffn=shape.ffn, seq_len=shape.seq_len)


def _step(step: pb.TokenStep) -> TokenStep:
    return TokenStep(step.token_id, step.logprob, tuple(t.token_id for t in step.top),
                     tuple(t.logprob for t in step.top), step.text)


def _error(method: str, exc: grpc.aio.AioRpcError) -> MlNodeError:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return MlNodeRefused(details)
    error = MlNodeUnavailable if code in UNREACHABLE else MlNodeError
    return error(f"ML node {method}: {code.name}: {details}", code)
