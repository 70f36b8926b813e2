"""The ML node's gRPC service: translates protobuf requests to engine calls and back.

Every engine refusal becomes INVALID_ARGUMENT with the engine's message; anything else that
goes wrong inside one request becomes INTERNAL for that request alone, so a bad request never
takes the server down.
"""

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections.abc import AsyncIterator

import grpc

from inferchain_pb.mlnode.v1 import mlnode_pb2 as pb
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as pb_grpc
from mlnode.engine import Engine, InvalidRequest
from mlnode.metrics import MlNodeMetrics
from mlnode.poc.nonces import MAX_NONCE
from mlnode.poc.runner import PocRunner
from mlnode.poc.verify import DEFAULT_TOLERANCE
from mlnode.poc_seed import SEED_BYTES
from mlnode.sampling import SamplingParams
from mlnode.types import MAX_MESSAGE_BYTES, Finished, PocModelSpec, PocNonce, TokenStep

log = logging.getLogger(__name__)


def sampling_from_pb(msg: pb.SamplingParams) -> SamplingParams:
    return SamplingParams(temperature=msg.temperature, top_p=msg.top_p, top_k=msg.top_k,
                          max_tokens=msg.max_tokens, stop=tuple(msg.stop), seed=msg.seed,
                          grammar_kind=msg.grammar_kind, grammar=msg.grammar,
                          presence_penalty=msg.presence_penalty,
                          frequency_penalty=msg.frequency_penalty,
                          logit_bias=tuple((b.token_id, b.bias) for b in msg.logit_bias))


def step_to_pb(step: TokenStep) -> pb.TokenStep:
    return pb.TokenStep(
        token_id=step.token_id, logprob=step.logprob, text=step.text,
        top=[pb.TopLogprob(token_id=i, logprob=v)
             for i, v in zip(step.top_ids, step.top_logprobs, strict=True)])


def poc_spec_from_pb(msg: pb.PocModelSpec) -> PocModelSpec:
    return PocModelSpec(hidden=msg.hidden, layers=msg.layers, heads=msg.heads, ffn=msg.ffn,
                        seq_len=msg.seq_len)


def check_poc_common(spec: pb.PocModelSpec, seed: bytes, target_distance: float
                     ) -> PocModelSpec:
    """The checks both PoC rpcs share; raises ValueError naming the field."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"seed must be {SEED_BYTES} bytes, got {len(seed)}")
    if not (math.isfinite(target_distance) and 0 < target_distance <= 2):
        raise ValueError("target_distance must lie in (0, 2]")
    return poc_spec_from_pb(spec)


class MLNodeService(pb_grpc.MLNodeServicer):
    def __init__(self, engine: Engine, metrics: MlNodeMetrics | None = None) -> None:
        self._engine = engine
        self.metrics = metrics or MlNodeMetrics()
        self.metrics.watch(engine)
        self._poc = PocRunner(engine.info.device, self._busy)

    def _busy(self) -> bool:
        load = self._engine.load()
        return load.queued + load.running > 0

    def close(self) -> None:
        self._poc.close()

    async def Generate(  # noqa: N802 - gRPC method names are fixed by the proto
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateChunk]:
        prompt = list(request.prompt_ids)
        try:
            stream = self._engine.generate(prompt, sampling_from_pb(request.sampling),
                                           request.top_logprobs)
            # aclosing: a client that hangs up frees its batch row now, not at garbage collection.
            async with contextlib.aclosing(stream):
                async for event in stream:
                    if isinstance(event, Finished):
                        yield pb.GenerateChunk(finish_reason=event.reason,
                                               prompt_tokens=event.prompt_tokens)
                    else:
                        self.metrics.generated_tokens.inc()
                        yield pb.GenerateChunk(step=step_to_pb(event), prompt_tokens=len(prompt))
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def Score(  # noqa: N802
        self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> pb.ScoreResponse:
        sampling = sampling_from_pb(request.sampling) if request.HasField("sampling") else None
        started = time.perf_counter()
        try:
            positions = await self._engine.score(list(request.prompt_ids),
                                                 list(request.output_ids),
                                                 request.top_logprobs, sampling)
        except InvalidRequest as exc:
            self.metrics.score_refused.inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self.metrics.score_seconds.observe(time.perf_counter() - started)
        return pb.ScoreResponse(positions=[
            pb.ScoredPosition(step=step_to_pb(p.step), cdf_low=p.rule.cdf_low,
                              cdf_high=p.rule.cdf_high, u=p.rule.u, argmax_gap=p.rule.argmax_gap,
                              eos_cdf_low=p.eos.cdf_low, eos_cdf_high=p.eos.cdf_high,
                              eos_argmax_gap=p.eos.argmax_gap)
            if p.rule and p.eos else pb.ScoredPosition(step=step_to_pb(p.step))
            for p in positions])

    async def Tokenize(  # noqa: N802
        self, request: pb.TokenizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TokenizeResponse:
        try:
            if request.grammar_kind or request.grammar:
                self._engine.grammars.compile(request.grammar_kind, request.grammar)
            if request.WhichOneof("input") == "chat":
                text = self._render_chat(request.chat)
            else:
                text = request.text
        except (InvalidRequest, ValueError, KeyError, TypeError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not text:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty")
        return pb.TokenizeResponse(token_ids=self._engine.tokenizer.tokenize(text), text=text)

    def _render_chat(self, chat: pb.ChatMessages) -> str:
        """The chat's prompt text; ValueError, KeyError or TypeError when a message, its
        tool calls or the tools are malformed."""
        if not chat.messages:
            raise ValueError("chat has no messages")
        if any(m.role not in ("system", "user", "assistant", "tool") for m in chat.messages):
            raise ValueError("chat roles must be system, user, assistant or tool")
        messages = [(m.role, m.content, m.tool_calls, m.tool_call_id) for m in chat.messages]
        return self._engine.tokenizer.render_chat(messages, chat.tools)

    async def Detokenize(  # noqa: N802
        self, request: pb.DetokenizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.DetokenizeResponse:
        vocab = self._engine.info.vocab_size
        bad = next((t for t in request.token_ids if t >= vocab), None)
        if bad is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"unknown token id {bad} (vocabulary has {vocab} tokens)")
        decode = self._engine.tokenizer.decode
        return pb.DetokenizeResponse(pieces=[decode([t]) for t in request.token_ids])

    async def Info(  # noqa: N802
        self, request: pb.InfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.InfoResponse:
        i = self._engine.info
        return pb.InfoResponse(
            model_id=i.model_id, weights_sha256=i.weights_sha256, dtype=i.dtype, device=i.device,
            engine=i.engine, context_length=i.context_length, vocab_size=i.vocab_size,
            max_top_logprobs=i.max_top_logprobs, eos_token_id=i.eos_token_id)

    async def Health(  # noqa: N802
        self, request: pb.HealthRequest, context: grpc.aio.ServicerContext
    ) -> pb.HealthResponse:
        load = self._engine.load()
        return pb.HealthResponse(serving=True, queued=load.queued, running=load.running)

    async def ProofOfCompute(  # noqa: N802
        self, request: pb.PocRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.PocBatch]:
        dtype = request.dtype or "float32"
        try:
            spec = check_poc_common(request.spec, request.seed, request.target_distance)
            if request.nonce_count < 1:
                raise ValueError("nonce_count must be at least 1")
            if request.nonce_start + request.nonce_count - 1 > MAX_NONCE:
                raise ValueError("nonce_start + nonce_count runs past 2^64")
            if dtype not in ("float32", "bfloat16"):
                raise ValueError("dtype must be float32 or bfloat16")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        nonces = range(request.nonce_start, request.nonce_start + request.nonce_count)
        computed = accepted = 0
        chunks = self._poc.prove(spec, request.seed, nonces, request.target_distance,
                                 request.batch_size or None, dtype, request.exhaustive)
        async with contextlib.aclosing(chunks):
            async for count, found in chunks:
                computed += count
                accepted += len(found)
                yield pb.PocBatch(
                    accepted=[pb.PocNonce(nonce=n.nonce, distance=n.distance) for n in found],
                    computed=computed, accepted_total=accepted)

    async def VerifyProofOfCompute(  # noqa: N802
        self, request: pb.PocVerifyRequest, context: grpc.aio.ServicerContext
    ) -> pb.PocVerifyResponse:
        try:
            spec = check_poc_common(request.spec, request.seed, request.target_distance)
            if request.sample_size < 1:
                raise ValueError("sample_size must be at least 1")
            if not (math.isfinite(request.tolerance) and request.tolerance >= 0):
                raise ValueError("tolerance must be finite and not negative")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        claimed = [PocNonce(c.nonce, c.distance) for c in request.claimed]
        report = await self._poc.verify(spec, request.seed, claimed, request.target_distance,
                                        request.sample_size, request.sample_seed,
                                        request.tolerance or DEFAULT_TOLERANCE)
        return pb.PocVerifyResponse(
            passed=report.passed, failed=report.failed, duplicates=report.duplicates,
            checks=[pb.PocCheck(nonce=c.nonce, claimed=c.claimed, recomputed=c.recomputed,
                                ok=c.ok) for c in report.checks])


async def serve(engine: Engine, host: str, port: int,
                metrics: MlNodeMetrics | None = None) -> None:
    """Serves until SIGTERM or SIGINT, then drains in-flight calls and closes the engine;
    ``metrics`` hears what the service does."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    service = MLNodeService(engine, metrics)
    pb_grpc.add_MLNodeServicer_to_server(service, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    log.info("ML node serving %s on %s:%d", engine.info.model_id, host, bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.stop(grace=2)
        service.close()
        engine.close()
