"""A transfer agent hands each delivery signature to its executor over HTTP: the signature is
what the executor is paid for, so one the executor could not take for now (a 5xx while its
chain node or store is down, a refused connection while it restarts) is handed over again,
one it refused (a 4xx) is not, and a closing one survives the agent's own restart. Played
against a real HTTP server on loopback."""

import asyncio
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web
from conftest import free_port
from cosmpy.crypto.keypairs import PrivateKey
from nacl.signing import SigningKey

from apinode import transfer_agent
from apinode.chain_queries import ChainQueries
from apinode.execute_wire import DELIVERY_PATH, Delivery
from apinode.executor import Executor
from apinode.key_commitments import KeyRequestCommitter
from apinode.mlnode_client import MlNodeClient
from apinode.outbox import Outbox
from apinode.owed_deliveries import OwedDeliveries
from apinode.pass_notices import PassNoticer
from apinode.store import Database
from apinode.transfer_agent import TransferAgent
from apinode.tx_sender import TxSender

AGENT = "infer1agent"
EXECUTOR = "infer1executor"


class ExecutorEndpoint:
    """The executor's delivery route: answers each inference's deliveries with the statuses
    scripted for it, in order, then 200; records every delivery it is handed."""

    def __init__(self, script: dict[str, list[int]]) -> None:
        self.script = script
        self.handed: list[str] = []

    async def delivered(self, request: web.Request) -> web.Response:
        delivery = Delivery.from_json(await request.json())
        self.handed.append(delivery.inference_id)
        statuses = self.script.get(delivery.inference_id, [])
        status = statuses.pop(0) if statuses else 200
        return web.json_response({"inference_id": delivery.inference_id}, status=status)


def unused_commitments(channel: grpc.aio.Channel) -> KeyRequestCommitter:
    """A transfer agent's committer of API-key requests, for tests that send it none."""
    return KeyRequestCommitter(TxSender(channel, PrivateKey(), "test"))


def unused_passes(channel: grpc.aio.Channel) -> PassNoticer:
    """A transfer agent's notices of passed picks, for tests that pass none."""
    return PassNoticer(TxSender(channel, PrivateKey(), "test"))


async def hand_over(tmp_path: Path, endpoint: ExecutorEndpoint, inference_ids: list[str],
                    port: int, serve_after_s: float = 0.0) -> None:
    """Has an agent hand one delivery per id to the executor at ``port`` and waits until it
    is done with them; the executor starts listening ``serve_after_s`` in."""
    app = web.Application()
    app.router.add_post(DELIVERY_PATH, endpoint.delivered)
    runner = web.AppRunner(app)
    await runner.setup()
    db = Database.open(str(tmp_path / "agent.db"))
    dead = f"127.0.0.1:{free_port()}"  # neither the chain nor the ML node is asked
    key = SigningKey.generate()
    try:
        async with aiohttp.ClientSession() as session, \
                grpc.aio.insecure_channel(dead) as channel, MlNodeClient(dead) as ml:
            site = web.TCPSite(runner, "127.0.0.1", port)
            if not serve_after_s:
                await site.start()
            chain = ChainQueries(channel)
            executor = Executor(AGENT, key, chain, ml, db, Outbox(db), chain_id="test")
            agent = TransferAgent(AGENT, key, chain, ml, executor, Outbox(db), session,
                                  unused_commitments(channel), unused_passes(channel))
            sent = [asyncio.create_task(agent._deliver(
                EXECUTOR, f"http://127.0.0.1:{port}", Delivery(i, 4, b"\x01" * 64)))
                for i in inference_ids]
            if serve_after_s:
                await asyncio.sleep(serve_after_s)
                await site.start()
            await asyncio.gather(*sent)
    finally:
        await runner.cleanup()
        db.close()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer_agent, "DELIVERY_RETRY_S", 0.05)


def test_a_delivery_the_executor_cannot_take_for_now_is_handed_over_again(tmp_path: Path):
    endpoint = ExecutorEndpoint({"chain-down": [503, 503], "refused": [409],
                                 "never": [503] * transfer_agent.DELIVERY_ATTEMPTS})
    asyncio.run(hand_over(tmp_path, endpoint, ["chain-down", "refused", "never", "fine"],
                          free_port()))
    assert {i: endpoint.handed.count(i) for i in endpoint.handed} == {
        "chain-down": 3,  # taken on the third try
        "refused": 1,  # refused for good: not again
        "never": transfer_agent.DELIVERY_ATTEMPTS,  # bounded
        "fine": 1}


def test_a_delivery_to_an_executor_that_is_restarting_reaches_it_once_it_listens(
        tmp_path: Path):
    endpoint = ExecutorEndpoint({})
    asyncio.run(hand_over(tmp_path, endpoint, ["restarting"], free_port(), serve_after_s=0.2))
    assert endpoint.handed == ["restarting"]


def test_a_closing_delivery_owed_when_the_agent_dies_is_handed_over_by_its_next_run(
        tmp_path: Path):
    """The developer has the whole output, the executor is restarting, and the agent is
    killed while it waits to hand the signature over: the agent's next run, on the same
    store, hands it over, and nothing stays owed afterwards."""
    endpoint = ExecutorEndpoint({})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = Database.open(str(tmp_path / "agent.db"))
    dead = f"127.0.0.1:{free_port()}"
    key = SigningKey.generate()

    def agent(session: aiohttp.ClientSession, channel: grpc.aio.Channel,
              ml: MlNodeClient) -> TransferAgent:
        chain = ChainQueries(channel)
        executor = Executor(AGENT, key, chain, ml, db, Outbox(db), chain_id="test")
        return TransferAgent(AGENT, key, chain, ml, executor, Outbox(db), session,
                             unused_commitments(channel), unused_passes(channel))

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post(DELIVERY_PATH, endpoint.delivered)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            async with aiohttp.ClientSession() as session, \
                    grpc.aio.insecure_channel(dead) as channel, MlNodeClient(dead) as ml:
                first = agent(session, channel, ml)
                first._hand_over_later(EXECUTOR, url, Delivery("served", 8, b"\x02" * 64),
                                       kept=True, keep=True)
                while not OwedDeliveries(db).owed(60):
                    await asyncio.sleep(0.01)
                for task in list(first._deliveries):  # the agent dies mid-retry
                    task.cancel()
                await asyncio.gather(*first._deliveries, return_exceptions=True)
                assert endpoint.handed == []
                await web.TCPSite(runner, "127.0.0.1", port).start()  # the executor is back
                second = agent(session, channel, ml)
                assert await second.resume_deliveries() == 1
                await asyncio.gather(*second._deliveries)
        finally:
            await runner.cleanup()

    try:
        asyncio.run(scenario())
        assert endpoint.handed == ["served"]
        assert OwedDeliveries(db).owed(60) == []
    finally:
        db.close()
