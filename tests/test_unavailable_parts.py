"""While one of an API node's own parts does not answer (its chain node, its ML node, its
database: restarting, say), a developer's request is refused with an OpenAI 503 naming the
part, which the official client retries; an unexpected failure stays a 500. Played through
the node's HTTP middleware on a loopback server, with the official client."""

import asyncio
import threading
from collections.abc import Iterator

import aiohttp
import grpc
import openai
import pytest
from aiohttp import web
from conftest import free_port
from sqlalchemy.exc import OperationalError

from apinode.chain_queries import ChainUnavailable
from apinode.http_server import openai_errors
from apinode.mlnode_client import MlNodeUnavailable

FAILURES = {
    "chain": ChainUnavailable("/inference.v1.Query/Model", grpc.StatusCode.UNAVAILABLE,
                              "failed to connect to all addresses"),
    "mlnode": MlNodeUnavailable("ML node Tokenize: UNAVAILABLE: failed to connect"),
    "store": OperationalError("SELECT 1", {}, Exception("the database system is starting up")),
    "bug": KeyError("a bug"),
}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """A server whose /v1/chat/completions fails as the request's model names, and counts
    the attempts per model."""
    attempts: dict[str, int] = {}

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body["model"]
        attempts[model] = attempts.get(model, 0) + 1
        if body.get("stream"):  # the answer has begun when the part stops answering
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(b'data: {"choices": []}\n\n')
        raise FAILURES[model]

    port = free_port()
    loop = asyncio.new_event_loop()
    app = web.Application(middlewares=[openai_errors])
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
    assert attempts == {"chain": 1, "mlnode": 1, "store": 2, "bug": 1, "retried": 3}


def ask(base_url: str, model: str, retries: int = 0) -> openai.APIStatusError:
    client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=retries, timeout=10)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return refused.value


@pytest.mark.parametrize(("model", "part", "code"), [
    ("chain", "chain node", "chain_unavailable"),
    ("mlnode", "ML node", "mlnode_unavailable"),
    ("store", "database", "store_unavailable"),
])
def test_a_part_that_does_not_answer_is_a_503_naming_it(base_url: str, model: str, part: str,
                                                        code: str):
    error = ask(base_url, model)
    assert isinstance(error, openai.InternalServerError)
    assert error.status_code == 503
    assert (error.code, error.type) == (code, "server_error")
    assert f"cannot reach its {part}" in error.message


def test_an_unexpected_failure_stays_a_500(base_url: str):
    error = ask(base_url, "bug")
    assert (error.status_code, error.type) == (500, "server_error")


def test_the_official_client_retries_a_503(base_url: str):
    FAILURES["retried"] = FAILURES["chain"]
    error = ask(base_url, "retried", retries=2)
    assert (error.status_code, error.code) == (503, "chain_unavailable")


def test_a_stream_its_node_fails_in_the_middle_of_is_broken_off_not_left_open(base_url: str):
    """Once an answer has begun no status can follow it: the reader (a developer's client, or
    a transfer agent reading its executor's lines) gets what was sent, then a broken stream,
    never a second response spliced into the first nor a stream nobody ends."""
    async def read() -> list[bytes]:
        lines = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session, \
                session.post(f"{base_url}/chat/completions",
                             json={"model": "store", "stream": True}) as reply:
            assert reply.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                async for line in reply.content:
                    lines.append(line)
        return lines

    assert asyncio.run(read()) == [b'data: {"choices": []}\n', b"\n"]
