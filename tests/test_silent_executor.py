"""An executor that sends its first token and then nothing, keeping its HTTP stream open, is
broken off by the transfer agent once a token is late by the gap it allows; one that keeps
sending within the gap is read to the end however long its whole answer takes. Played
against a real HTTP server on loopback, its connection left open by the silent executor."""

import asyncio
from pathlib import Path

import aiohttp
import grpc
from aiohttp import web
from conftest import free_port
from nacl.signing import SigningKey
from test_transfer_agent_delivery import unused_commitments, unused_passes

from apinode import transfer_agent
from apinode.chain_queries import ChainQueries
from apinode.execute_wire import (
    EXECUTE_PATH,
    Executed,
    ExecutedStep,
    ExecuteRequest,
    ExecutorFailed,
    encode,
)
from apinode.executor import Executor
from apinode.mlnode_client import MlNodeClient
from apinode.outbox import Outbox
from apinode.store import Database
from apinode.transfer_agent import TransferAgent
from inferchain_pb.inference.v1.inference_pb2 import MsgStartInference

GAP_S = 0.5
AGENT = "infer1agent"


def step(n: int) -> ExecutedStep:
    return ExecutedStep(100 + n, f" {n}", -0.25, (), ())


async def read_answer(tmp_path: Path, pause_s: list[float | None]) -> tuple[list, bool]:
    """What an agent allowing GAP_S between tokens reads from an executor that sends a token
    after each pause in ``pause_s`` (None: never again), then the end; and whether the
    executor saw its connection closed."""
    closed = asyncio.Event()

    async def execute(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for n, pause in enumerate(pause_s):
            if pause is None:  # silent, its connection open, until the agent hangs up
                while request.transport is not None and not request.transport.is_closing():
                    await asyncio.sleep(0.05)
                closed.set()
                return response
            await asyncio.sleep(pause)
            await response.write(encode(step(n)))
        await response.write(encode(Executed(tuple(100 + n for n in range(len(pause_s))),
                                             "", "length", 3, len(pause_s))))
        return response

    app = web.Application()
    app.router.add_post(EXECUTE_PATH, execute)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    db = Database.open(str(tmp_path / "agent.db"))
    dead = f"127.0.0.1:{free_port()}"  # neither the chain nor the ML node is asked
    key = SigningKey.generate()
    items: list = []
    try:
        async with aiohttp.ClientSession() as session, \
                grpc.aio.insecure_channel(dead) as channel, MlNodeClient(dead) as ml:
            chain = ChainQueries(channel)
            executor = Executor(AGENT, key, chain, ml, db, Outbox(db), chain_id="test")
            agent = TransferAgent(AGENT, key, chain, ml, executor, Outbox(db), session,
                                  unused_commitments(channel), unused_passes(channel),
                                  token_gap_timeout_s=GAP_S)
            forward = ExecuteRequest(MsgStartInference(
                inference_id="i", model_id="m", developer="infer1dev", executor="infer1x",
                creator=AGENT, prompt_hash=bytes(32), ta_signature=bytes(64), prompt_ids=[1],
                max_tokens=8, draw_height=1), 0)
            stream = transfer_agent._paced(agent._remote(f"http://127.0.0.1:{port}", forward),
                                           GAP_S)
            try:
                async for item in stream:
                    items.append(item)
            except ExecutorFailed as exc:
                items.append(exc)
            if isinstance(items[-1], ExecutorFailed):  # the hang-up reaches the executor
                await asyncio.wait_for(closed.wait(), 5)
    finally:
        await runner.cleanup()
        db.close()
    return items, closed.is_set()


def test_an_executor_silent_after_its_first_token_is_broken_off(tmp_path: Path):
    items, closed = asyncio.run(read_answer(tmp_path, [0.0, None]))
    first, failure = items
    assert first == step(0)
    assert isinstance(failure, ExecutorFailed)
    assert f"sent nothing for {GAP_S:g}s" in str(failure)
    assert closed  # the agent hung up: the silent executor holds nothing of it


def test_an_executor_slow_overall_but_within_the_gap_is_read_to_the_end(tmp_path: Path):
    pauses = [0.0] + [GAP_S / 3] * 6  # a second in all, twice the gap
    items, closed = asyncio.run(read_answer(tmp_path, pauses))
    assert items[:-1] == [step(n) for n in range(len(pauses))]
    assert isinstance(items[-1], Executed) and not closed
