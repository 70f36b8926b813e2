"""The API node's HTTP surface (aiohttp): the OpenAI endpoint and the executor endpoint.

/v1/chat/completions, /v1/completions  developers (signed requests), streaming or not
/v1/models                             registry models some active participant serves
/internal/v1/execute                   other participants' transfer agents (NDJSON stream)
/health                                liveness, this node's address for signing, and its
                                       draw mismatch counts (apinode/draw_audit.py)

Every refusal is an OpenAI-shaped error with its status; an unexpected failure is a 500 of
the same shape, logged, and the node keeps serving.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import OperationalError

from apinode import openai_errors as errors
from apinode.api_keys import ApiKeys
from apinode.chain_queries import ChainUnavailable
from apinode.choice_streams import Served, merged, serve_choices
from apinode.execute_wire import (
    DELIVERY_PATH,
    EXECUTE_PATH,
    Delivery,
    Executed,
    ExecutedStep,
    ExecuteRequest,
    ExecutionRefused,
    ExecutorFailed,
    encode,
)
from apinode.executor import Executor
from apinode.metrics import ApiMetrics
from apinode.mlnode_client import MlNodeError, MlNodeUnavailable
from apinode.openai_errors import ApiError
from apinode.openai_request import CompletionRequest, parse_chat, parse_text
from apinode.openai_response import (
    SSE_DONE,
    ChoiceResult,
    ChunkStream,
    OutputToken,
    Usage,
    completion_body,
    sse,
)
from apinode.request_auth import (
    API_KEYS_PATH,
    ReplayGuard,
    SignedRequest,
    is_signed,
    refuse_unsigned,
    verify_request,
)
from apinode.store import Database, RequestLog
from apinode.transfer_agent import TransferAgent
from chain.inference.payload import RequestPurpose

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 << 20
EXECUTOR_FAILED = ApiError(502, "The executor broke off before the answer was complete.",
                           "server_error", code="executor_failed")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The node's own parts, by the error that says one does not answer: (what, OpenAI error code).
UNAVAILABLE_PARTS: dict[type[Exception], tuple[str, str]] = {
    ChainUnavailable: ("chain node", "chain_unavailable"),
    MlNodeUnavailable: ("ML node", "mlnode_unavailable"),
    OperationalError: ("database", "store_unavailable"),
}


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        if not request.path.startswith("/v1/"):
            raise
        error = errors.invalid_url(request.method, request.path)
        return web.json_response(error.body(), status=error.status)
    except web.HTTPException:
        raise
    except Exception as exc:
        if request.writer.output_size > 0:
            # A streamed answer has begun: no status can follow it, and a second response
            # would leave the client waiting on a stream nobody ends. aiohttp logs the error
            # and closes the connection, which the client sees as a broken stream.
            raise
        error = failure(request, exc)
        return web.json_response(error.body(), status=error.status)


def failure(request: web.Request, exc: Exception) -> ApiError:
    """The OpenAI error for a failure no handler answered, logged for the operator: a 503
    naming the node's own part that does not answer (restarting, say: the developer may try
    again, or another participant's endpoint), in one line; else a 500, with its traceback."""
    for kind, (part, code) in UNAVAILABLE_PARTS.items():
        if isinstance(exc, kind):
            log.warning("%s %s: refused, its %s is unavailable: %s", request.method,
                        request.path, part, str(exc).splitlines()[0][:300])
            return errors.unavailable(part, code)
    log.error("%s %s failed", request.method, request.path, exc_info=exc)
    return ApiError(500, "The node failed to serve this request.", "server_error")


class HttpApi:
    """The routes; developers' requests go to the transfer agent, forwards to the executor,
    and each completion request leaves one ``request_log`` row in ``db``."""

    def __init__(self, agent: TransferAgent, executor: Executor,
                 models: Callable[[], Awaitable[list[str]]], signature_window_s: int,
                 keys: ApiKeys, db: Database, chain_id: str, metrics: ApiMetrics) -> None:
        self._agent = agent
        self._metrics = metrics
        self._keys = keys
        self._executor = executor
        self._db = db
        self._models = models
        self._window = signature_window_s
        self._chain_id = chain_id
        self._guard = ReplayGuard(db, signature_window_s)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._metrics.middleware, openai_errors],
                              client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.text)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post(EXECUTE_PATH, self.execute)
        app.router.add_post(DELIVERY_PATH, self.delivered)
        app.router.add_post(API_KEYS_PATH, self.issue_key)
        app.router.add_get("/health", self.health)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "address": self._agent.address,
                                  "chain_id": self._chain_id,
                                  "draw_mismatches": self._executor.audit.counts()})

    async def issue_key(self, http: web.Request) -> web.Response:
        """A bearer key for the account that signed this request for a key (any body, even
        {}); a signature made for a completion does not verify here."""
        body = await http.read()
        if not is_signed(http.headers):
            raise refuse_unsigned()
        signed = await self._verify(http, body, RequestPurpose.API_KEY)
        key = await asyncio.to_thread(self._keys.issue, signed.developer)
        log.info("issued an API key to %s", signed.developer)
        return web.json_response({
            "api_key": key, "developer": signed.developer,
            "transfer_agent": self._agent.address,
            "note": "requests with this key are paid from the allowance the developer grants "
                    "this transfer agent on chain (MsgGrantAllowance)"})

    async def _requester(self, http: web.Request, body: bytes) -> SignedRequest:
        """Who pays: a signed request's account, or the account behind a bearer key."""
        if is_signed(http.headers):
            return await self._verify(http, body, RequestPurpose.INFERENCE)
        bearer = http.headers.get("Authorization", "")
        if not bearer.startswith("Bearer "):
            raise refuse_unsigned()
        developer = await asyncio.to_thread(self._keys.developer_of, bearer[len("Bearer "):])
        if developer is None:
            raise errors.authentication_failed("Incorrect API key provided.")
        return SignedRequest(developer, b"", b"", 0, hashlib.sha256(body).digest())

    async def _verify(self, http: web.Request, body: bytes,
                      purpose: RequestPurpose) -> SignedRequest:
        return await asyncio.to_thread(verify_request, http.headers, body, self._agent.address,
                                       self._chain_id, purpose, self._guard, self._window)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "inferchain"}
            for m in await self._models()]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, parse_chat)

    async def text(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, parse_text)

    async def _complete(self, http: web.Request,
                        parse: Callable[[bytes], CompletionRequest]) -> web.StreamResponse:
        started = time.monotonic()
        entry = RequestLog(status="error", http_status=500)
        try:
            response = await self._serve_completion(http, parse, entry, started)
            entry.status, entry.http_status = "ok", response.status
            return response
        except ApiError as exc:
            entry.http_status, entry.error = exc.status, exc.message
            raise
        finally:
            entry.latency_ms = (time.monotonic() - started) * 1000
            await asyncio.to_thread(self._record, entry)

    def _record(self, entry: RequestLog) -> None:
        """One request_log row per completion request, refused ones included."""
        with self._db.session() as session:
            session.add(entry)

    async def _serve_completion(self, http: web.Request,
                                parse: Callable[[bytes], CompletionRequest],
                                entry: RequestLog, started: float) -> web.StreamResponse:
        if (http.content_length or 0) > MAX_BODY_BYTES:
            raise errors.request_too_large(MAX_BODY_BYTES)
        body = await http.read()
        request = parse(body)
        entry.model = request.model
        signed = await self._requester(http, body)
        entry.developer = signed.developer
        prepared = await self._agent.prepare(request, signed)
        entry.prompt_tokens = len(prepared.prompt_ids) * request.n
        try:
            served = await serve_choices(self._agent, prepared)
        except MlNodeError as exc:
            raise errors.invalid_request(str(exc)) from exc
        first_token_s = time.monotonic() - started
        ids = [inference_id for inference_id, _ in served]
        entry.inference_id = ids[0]
        log.info("inference %s for %s: %d prompt tokens, stream=%s", ", ".join(ids),
                 signed.developer, len(prepared.prompt_ids), request.stream)
        if request.stream:
            response, entry.completion_tokens = await self._stream(
                http, request, served, len(prepared.prompt_ids))
        else:
            results = await self._collect_all(request, served, len(prepared.prompt_ids))
            entry.completion_tokens = sum(len(r.tokens) for r in results)
            response = web.json_response(completion_body(request, results))
        self._metrics.completed(first_token_s, entry.completion_tokens,
                                time.monotonic() - started)
        log.info("inference %s served", ", ".join(ids))
        return response

    async def _collect_all(self, request: CompletionRequest, served: list[Served],
                           prompt_tokens: int) -> list[ChoiceResult]:
        """Every choice's result, index order; the first that breaks off fails them all."""
        tasks = [asyncio.ensure_future(self._collect(request, inference_id, stream,
                                                     prompt_tokens))
                 for inference_id, stream in served]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()

    async def _collect(self, request: CompletionRequest, inference_id: str,
                       stream: AsyncGenerator[ExecutedStep | Executed],
                       prompt_tokens: int) -> ChoiceResult:
        tokens: list[OutputToken] = []
        try:
            async for item in stream:
                if isinstance(item, ExecutedStep):
                    tokens.extend(await self._agent.output_tokens(request, [item]))
                else:
                    return ChoiceResult(inference_id, item.text, item.finish_reason,
                                        tuple(tokens), prompt_tokens)
        except (MlNodeError, ExecutorFailed) as exc:
            log.warning("inference %s broke off mid-answer: %s", inference_id, exc)
        finally:
            await stream.aclose()
        raise EXECUTOR_FAILED

    async def _stream(self, http: web.Request, request: CompletionRequest,
                      served: list[Served], prompt_tokens: int) -> tuple[web.StreamResponse, int]:
        """Server-sent events of every choice as its tokens come, each chunk naming its
        choice; usage and ``[DONE]`` once all have finished."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(http)
        ids = [inference_id for inference_id, _ in served]
        chunks = ChunkStream(request, ids)
        for index in range(len(served)):
            opening = chunks.opening(index)
            if opening is not None:
                await response.write(sse(opening))
        completion_tokens = [0] * len(served)
        # An output that may hold tool calls is sent whole, once its choice has finished.
        held: list[list[OutputToken]] = [[] for _ in served]
        finished = 0
        events = merged([stream for _, stream in served])
        try:
            async for index, item in events:
                if isinstance(item, MlNodeError | ExecutorFailed):
                    log.warning("inference %s broke off mid-stream: %s", ids[index], item)
                    await response.write(sse(EXECUTOR_FAILED.body()))
                    break
                if isinstance(item, Exception):  # this node failed (its store, say)
                    await response.write(sse(failure(http, item).body()))
                    break
                if isinstance(item, ExecutedStep):
                    completion_tokens[index] += 1
                    tokens = await self._agent.output_tokens(request, [item])
                    if request.constraint.calls_tools:
                        held[index].extend(tokens)
                    elif item.text or request.logprobs:
                        await response.write(sse(chunks.content(index, item.text, tokens)))
                    continue
                reason = item.finish_reason
                if request.constraint.calls_tools:
                    pieces, reason = chunks.calls(index, item.text, held[index], reason)
                    for piece in pieces:
                        await response.write(sse(piece))
                await response.write(sse(chunks.finish(index, reason)))
                finished += 1
                if finished == len(served):
                    usage = chunks.usage(Usage(prompt_tokens * len(served),
                                               sum(completion_tokens)))
                    if usage is not None:
                        await response.write(sse(usage))
                    await response.write(SSE_DONE)
        except ConnectionError:
            log.info("inference %s: the client disconnected mid-stream", ", ".join(ids))
        finally:
            await events.aclose()  # cancels the generations still running
        return response, sum(completion_tokens)

    async def delivered(self, http: web.Request) -> web.Response:
        """A transfer agent's delivery of an output this node executed: its finish goes out."""
        try:
            delivery = Delivery.from_json(json.loads(await http.read()))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        try:
            await self._executor.deliver(delivery)
        except ExecutionRefused as exc:
            return web.json_response({"error": exc.reason}, status=409)
        return web.json_response({"inference_id": delivery.inference_id})

    async def execute(self, http: web.Request) -> web.StreamResponse:
        """Runs a forwarded request; refusals come back as a 409 before any token."""
        try:
            forward = ExecuteRequest.from_json(json.loads(await http.read()))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        stream = self._executor.execute(forward)
        try:
            first = await anext(stream)
        except ExecutionRefused as exc:
            return web.json_response({"error": exc.reason, "refusal": exc.refusal.hex()},
                                     status=409)
        except MlNodeError as exc:
            return web.json_response({"error": str(exc)}, status=422)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        try:
            await response.prepare(http)
            await response.write(encode(first))
            async for item in stream:
                await response.write(encode(item))
        except (MlNodeError, ExecutorFailed) as exc:
            with contextlib.suppress(ConnectionError):
                await response.write(encode(str(exc)))
        except ConnectionError:
            log.info("inference %s: the transfer agent closed its stream",
                     forward.start.inference_id)
        except Exception as exc:  # this node failed (its store, say): the agent hears why
            error = failure(http, exc)
            with contextlib.suppress(ConnectionError):
                await response.write(encode(error.message))
        finally:
            await stream.aclose()  # the executor finishes what the agent signed delivery of
        return response
