"""The executor against real processes: a solo chain node with three genesis participants
and an ML node serving the real default model. Each test uses its own inference ids, so they
do not depend on order; generations stay a few tokens long (the model makes ~10 tokens/s on a
CPU)."""

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from chain_nodes import ChainNode, funded_keys, template
from conftest import ROOT, free_port, wait_healthy
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from inference_actors import (
    MODEL_ID,
    PRICE,
    TOP_K,
    Actor,
    genesis_models,
    genesis_participant,
    request_id,
    start_msg,
)
from nacl.signing import SigningKey
from sqlalchemy import update

from apinode.chain_queries import ChainQueries, ChainQueryError
from apinode.execute_wire import Delivery, ExecutedStep, ExecuteRequest, ExecutionRefused
from apinode.executor import Executor
from apinode.mlnode_client import MlNodeClient, MlNodeRefused
from apinode.outbox import Outbox, Undecodable
from apinode.outbox_chain import outbox_confirm, outbox_submit
from apinode.outbox_worker import OutboxWorker
from apinode.store import Database, OutboxRow, OutboxState, Payload
from apinode.tx_sender import TxSender
from chain.inference import artifact, payload
from genesis.solo import layout_solo
from inferchain_pb.inference.v1.inference_pb2 import (
    FINISHED,
    Inference,
    LogitBias,
    MsgFinishInference,
    MsgStartInference,
)
from inferchain_pb.mlnode.v1 import mlnode_pb2 as pb
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as pb_grpc

CHAIN_ID = "inferchain-test"
QUESTION = "What is the capital of France?"
LONG_ANSWER = "Count from 1 to 500, separated by commas."
# Slow CPU generations must not outlive the draw or a lone start: widen both windows.
PARAMS = {"inference": {"max_draw_age_blocks": 500, "expiration_blocks": 500}}
PARTICIPANTS = 3


@pytest.fixture(scope="module")
def ml_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real ML node, started as conftest's ``mlnode`` starts one.

    That fixture yields only a sync stub, and the async client needs the address; rather than
    dig it out of grpc's private channel state, this module runs its own process.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("executor-mlnode") / "mlnode.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlnode", "serve", "--engine", "torch", "--port", str(port),
             "--max-batch", "4"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        wait_healthy(pb_grpc.MLNodeStub(channel), process, log)
        yield f"127.0.0.1:{port}"
    finally:
        channel.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


class Net:
    """The chain's gRPC port; actors 0-2 are genesis participants, actor 3 a developer."""

    def __init__(self, port: int, actors: list[Actor], keys: list[str]) -> None:
        self.port = port
        self.actors = actors
        self.keys = dict(zip((a.address for a in actors), keys, strict=True))

    @property
    def participants(self) -> list[Actor]:
        return self.actors[:PARTICIPANTS]

    @property
    def developer(self) -> Actor:
        return self.actors[PARTICIPANTS]

    def actor(self, address: str) -> Actor:
        return next(a for a in self.actors if a.address == address)

    def sender(self, channel: grpc.aio.Channel, actor: Actor) -> TxSender:
        return TxSender(channel, self.keys[actor.address], CHAIN_ID)

    def run(self, scenario: Callable[[grpc.aio.Channel], Awaitable[None]]) -> None:
        async def main() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
                await scenario(channel)

        asyncio.run(main())


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    keys = funded_keys(PARTICIPANTS + 1)
    port = free_port()
    actors = [Actor(LocalWallet(PrivateKey(bytes.fromhex(k.private_key_hex)), prefix="infer"),
                    SigningKey.generate(), account_number=i) for i, k in enumerate(keys)]
    net = Net(port, actors, [k.private_key_hex for k in keys])
    spec = dataclasses.replace(template(keys, models=genesis_models()), params=PARAMS,
                               participants=tuple(
                                   genesis_participant(p, f"http://127.0.0.1:{9000 + i}")
                                   for i, p in enumerate(net.participants)))
    info = layout_solo(spec, tmp_path_factory.mktemp("executor-chain") / "home",
                       grpc_port=port)
    node = ChainNode(info.home, port).start()
    try:
        node.wait_height(2)
        yield net
    finally:
        node.close()


async def landed(sender: TxSender, tx_hash: str, timeout_s: float = 30) -> tuple[int, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = await sender.tx_result(tx_hash)
        if result is not None:
            return result
        await asyncio.sleep(0.1)
    raise TimeoutError(f"tx {tx_hash} not committed within {timeout_s}s")


def executor_for(actor: Actor, channel: grpc.aio.Channel, ml: MlNodeClient,
                 path: Path) -> Executor:
    """An executor for ``actor`` with a database of its own."""
    db = Database.open(str(path / f"executor-{len(list(path.glob('*.db')))}.db"))
    return Executor(actor.address, actor.node_key, ChainQueries(channel), ml, db, Outbox(db),
                    chain_id=CHAIN_ID)


def request_from(start: MsgStartInference, *, top_logprobs: int = 0) -> ExecuteRequest:
    """What the TA forwards: the very start it will send the chain."""
    return ExecuteRequest(start, top_logprobs)


def changed(request: ExecuteRequest, **fields: object) -> ExecuteRequest:
    """``request`` with some fields of its start set otherwise after the TA signed it."""
    start = MsgStartInference()
    start.CopyFrom(request.start)
    for name, value in fields.items():
        setattr(start, name, value)
    return ExecuteRequest(start, request.top_logprobs)


async def drawn(net: Net, chain: ChainQueries,
                label: str) -> tuple[Actor, Actor, int, int, list[str]]:
    """(executor, a transfer agent that is not it, draw height, timestamp, draw order) of the
    request ``label`` stamped now, by the chain's own draw once its draw block exists. A second
    in which every agent draws itself (a few percent with three) is followed by the next."""
    for _ in range(20):
        now = int(time.time())
        for agent in net.participants:
            inference_id = request_id(agent, net.developer, label, now)
            while True:
                try:
                    draw = await chain.draw(inference_id, MODEL_ID, request_timestamp=now)
                    break
                except ChainQueryError as exc:
                    if exc.code != grpc.StatusCode.NOT_FOUND:
                        raise
                    await asyncio.sleep(0.2)
            if draw.order[0] != agent.address:
                return net.actor(draw.order[0]), agent, draw.draw_height, now, draw.order
        await asyncio.sleep(1.0)
    raise AssertionError(f"every agent draws itself for {label} in twenty seconds")


def delivery(inference_id: str, ids: list[int], agent: Actor, executor: Actor,
             whole: bool = True) -> Delivery:
    """``agent``'s signature that it streamed ``ids`` of ``executor``'s output to the
    developer: the whole output, or the prefix of it streamed so far."""
    signed = payload.delivery_payload if whole else payload.prefix_delivery_payload
    return Delivery(inference_id, len(ids), agent.node_key.sign(signed(
        inference_id, payload.ids_hash(ids), agent.address, executor.address)).signature)


async def meet_on_chain(net: Net, channel: grpc.aio.Channel, executor: Executor, me: Actor,
                        agent: Actor, start: MsgStartInference) -> Inference:
    """The agent sends its start; the executor's outbox worker sends the finish it owes,
    until that finish is committed. Returns the inference as the chain then has it."""
    sender = net.sender(channel, me)
    worker = OutboxWorker(executor.outbox, outbox_submit(sender, repair=executor.repair),
                          outbox_confirm(sender), interval_s=0.1)
    task = asyncio.create_task(worker.run())
    agent_sender = net.sender(channel, agent)
    assert await landed(agent_sender, await agent_sender.send([start])) == (0, "")
    deadline = time.monotonic() + 30
    owed = f"finish_inference:{start.inference_id}"
    while executor.outbox.get(owed).state != OutboxState.COMMITTED:
        assert time.monotonic() < deadline, executor.outbox.get(owed)
        await asyncio.sleep(0.1)
    worker.stop()
    await task
    return await ChainQueries(channel).inference(start.inference_id)


async def executed_here(net: Net, channel: grpc.aio.Channel, ml: MlNodeClient, path: Path,
                        label: str) -> tuple[Actor, Actor, Executor, MsgStartInference,
                                             list[int]]:
    """(executor, agent, the executor's Executor, start, output ids) of the request
    ``label``, drawn now and executed to the end (four tokens), no delivery signed yet."""
    prompt = await ml.tokenize_chat([("user", QUESTION)])
    me, agent, height, now, _ = await drawn(net, ChainQueries(channel), label)
    executor = executor_for(me, channel, ml, path)
    start = start_msg(agent, net.developer, label, me.address, height, now, prompt.ids,
                      max_tokens=4)
    *steps, _ = await collect(executor, request_from(start))
    return me, agent, executor, start, [s.token_id for s in steps]


async def collect(executor: Executor, request: ExecuteRequest) -> list:
    return [item async for item in executor.execute(request)]


def forbid_generation(ml: MlNodeClient) -> None:
    """Any call to generate fails the test: refusals must come before the ML node is asked."""

    async def generate(*args: object, **kwargs: object):
        raise AssertionError("the executor asked the ML node to generate")
        yield  # an async generator, like the real one

    ml.generate = generate


def test_execute_request_travels_as_json():
    key = SigningKey.generate()
    request = ExecuteRequest(MsgStartInference(
        inference_id="json-1", model_id=MODEL_ID, developer="infer1dev", prompt_hash=bytes(32),
        prompt_ids=(1, 2, 3), max_tokens=4, seed=2**64 - 1, temperature=0.0, top_p=1.0,
        stop=("\n",), executor="infer1ex", draw_height=7, attempt=1,
        creator="infer1ta", ta_signature=key.sign(b"x").signature, presence_penalty=0.5,
        frequency_penalty=-2.0, logit_bias=[LogitBias(token_id=3, bias=-100.0),
                                            LogitBias(token_id=9, bias=2.5)],
        choice_index=2, choices=3, refusals=[key.sign(b"r").signature, b""]),
        top_logprobs=20)
    wire = json.loads(json.dumps(request.to_json()))
    assert ExecuteRequest.from_json(wire) == request
    older = {k: v for k, v in wire.items() if k != "refusals"}  # a forward without them
    assert list(ExecuteRequest.from_json(older).start.refusals) == []
    assert request.sampling.logit_bias == ((3, -100.0), (9, 2.5))
    assert (request.sampling.presence_penalty, request.sampling.frequency_penalty) == (0.5, -2.0)
    assert ExecuteRequest.from_json({**wire, "newer_field": 1}) == request
    for bad, field in [({"max_tokens": "4"}, "max_tokens"), ({"seed": True}, "seed"),
                       ({"prompt_hash": "zz"}, "prompt_hash"), ({"stop": "\n"}, "stop"),
                       ({"prompt_ids": []}, "prompt_ids"), ({"top_logprobs": 21}, "top_logprobs"),
                       ({"ta_signature": "00"}, "ta_signature"), ({"seed": 2**64}, "seed"),
                       ({"logit_bias": {"3": 1}}, "logit_bias"),
                       ({"logit_bias": [[3, "1"]]}, "logit_bias"),
                       ({"presence_penalty": "x"}, "presence_penalty"),
                       ({"choice_index": -1}, "choice_index"),
                       ({"refusals": "00"}, "refusals"), ({"refusals": ["zz"]}, "refusals"),
                       ({"refusals": [""] * 101}, "refusals")]:
        with pytest.raises(ValueError, match=field):
            ExecuteRequest.from_json({**wire, **bad})
    with pytest.raises(ValueError, match="missing fields: attempt"):
        ExecuteRequest.from_json({k: v for k, v in wire.items() if k != "attempt"})


def test_drawn_executor_streams_and_its_finish_is_charged_on_chain(net: Net, ml_address: str,
                                                                tmp_path: Path):
    async def scenario(channel: grpc.aio.Channel) -> None:
        chain = ChainQueries(channel)
        async with MlNodeClient(ml_address) as ml:
            prompt = await ml.tokenize_chat([("user", QUESTION)])
            assert "France" in prompt.text
            me, agent, height, now, _ = await drawn(net, chain, "exec-1")
            executor = executor_for(me, channel, ml, tmp_path)
            start = start_msg(agent, net.developer, "exec-1", me.address, height, now,
                              prompt.ids, max_tokens=8)
            inference_id = start.inference_id
            # The developer asked for more alternatives than the artifact keeps.
            request = ExecuteRequest.from_json(json.loads(json.dumps(
                request_from(start, top_logprobs=TOP_K + 3).to_json())))
            items = await collect(executor, request)

            *steps, done = items
            assert all(isinstance(s, ExecutedStep) for s in steps) and steps
            ids = [s.token_id for s in steps]
            assert (done.output_ids, done.text) == (tuple(ids), "".join(s.text for s in steps))
            assert (done.prompt_tokens, done.completion_tokens) == (len(prompt.ids), len(ids))
            assert done.finish_reason in ("stop", "length")
            assert all(len(s.top_ids) == len(s.top_logprobs) == TOP_K + 3 for s in steps)

            # The finish waits for the transfer agent's delivery of exactly this output: one
            # for more output than was streamed, for ids it did not produce, from anyone
            # else, or one claiming a prefix is the whole output, is refused.
            assert executor.outbox.get(f"finish_inference:{inference_id}") is None
            for ids_signed, signer, whole in [
                    ([*ids, ids[-1]], agent, True), (ids, me, True),
                    ([*ids, ids[-1]], agent, False), ([ids[0] + 1], agent, False),
                    (ids[:1], me, False), (ids[:-1], agent, True)]:
                with pytest.raises(ExecutionRefused, match="not its transfer agent's"):
                    await executor.deliver(delivery(inference_id, ids_signed, signer, me, whole))
            assert executor.outbox.get(f"finish_inference:{inference_id}") is None
            # A prefix is held, but the complete output's finish waits for the whole one.
            await executor.deliver(delivery(inference_id, ids[:1], agent, me, whole=False))
            assert executor.outbox.get(f"finish_inference:{inference_id}") is None
            await executor.deliver(delivery(inference_id, ids, agent, me))
            entry = executor.outbox.get(f"finish_inference:{inference_id}")
            assert entry.state == OutboxState.PENDING
            finish = MsgFinishInference.FromString(entry.payload)
            assert finish.delivery_signature == delivery(inference_id, ids, agent, me).signature
            with executor.db.session() as session:
                stored = session.get(Payload, inference_id)
                assert (stored.prompt_token_ids, stored.output_token_ids,
                        stored.output_text) == (prompt.ids, ids, done.text)
                assert stored.artifact == finish.artifact
                assert ExecuteRequest.from_json(stored.prompt) == request

            # The artifact is the streamed data, cut to the model's top-k.
            k, recorded = artifact.decode(finish.artifact)
            assert k == TOP_K
            assert [s.token_id for s in recorded] == ids == list(finish.output_ids)
            for step, kept in zip(steps, recorded, strict=True):
                assert kept.top_ids == step.top_ids[:TOP_K]
                assert abs(kept.logprob - step.logprob) <= artifact.LOGPROB_QUANTUM
            assert finish.output_hash == payload.ids_hash(ids)

            # Sent again before the chain has heard of it: this node already ran it.
            forbid_generation(ml)
            with pytest.raises(ExecutionRefused, match="already executed here"):
                await collect(executor, request)

            # A validator's one prefill pass reproduces what the executor recorded.
            scored = await ml.score(prompt.ids, ids, TOP_K)
            assert [p.step.top_ids for p in scored] == [s.top_ids for s in recorded]
            assert max(abs(p.step.logprob - s.logprob) for p, s in zip(scored, recorded,
                                                                       strict=True)) < 1e-2

            # The TA's start and the executor's outbox meet on chain.
            found = await meet_on_chain(net, channel, executor, me, agent, start)
            assert (found.status, found.executor, found.transfer_agent) == (
                FINISHED, me.address, agent.address)
            assert (list(found.output_ids), found.artifact) == (ids, finish.artifact)
            assert found.cost == (len(prompt.ids) + len(ids)) * PRICE

            # And after: the chain would refuse a second finish.
            with pytest.raises(ExecutionRefused, match="already finished"):
                await collect(executor, request)
            executor.db.close()

    net.run(scenario)


def test_refusals_come_before_any_generation(net: Net, ml_address: str, tmp_path: Path):
    async def scenario(channel: grpc.aio.Channel) -> None:
        chain = ChainQueries(channel)
        async with MlNodeClient(ml_address) as ml:
            forbid_generation(ml)
            me, agent, height, now, order = await drawn(net, chain, "refuse-1")
            second = net.actor(order[1])

            def start(executor: Actor, ta: Actor = agent,
                      signed_request: bool = True) -> MsgStartInference:
                return start_msg(ta, net.developer, "refuse-1", executor.address, height, now,
                                 [1, 2, 3], max_tokens=4, signed_request=signed_request)

            cases = [
                # Addressed to the second pick as if it were the first.
                (second, request_from(start(second)), "picks .* for attempt 0, not this node"),
                # Addressed to someone else.
                (me, request_from(start(second)), "names executor"),
                # Signed by a key that is not the TA's node key.
                (me, changed(request_from(start(me)), ta_signature=SigningKey
                             .generate().sign(payload.start_payload_of(start(me))).signature),
                 "signature"),
                # A field the TA signed, changed afterwards.
                (me, changed(request_from(start(me)), max_tokens=5), "signature"),
                # A developer signature that is not over this request.
                (me, changed(request_from(start(me)), request_timestamp=now - 1),
                 "developer's request"),
                # A developer signature made for another chain.
                (me, request_from(start_msg(agent, net.developer, "refuse-1", me.address, height,
                                            now, [1, 2, 3], max_tokens=4,
                                            chain_id="other-chain")), "developer's request"),
                # No developer signature and no allowance for this TA.
                (me, request_from(start(me, signed_request=False)), "allows"),
                # Signed by a node that is not a participant.
                (me, request_from(start(me, net.developer)), "not a registered participant"),
            ]
            unknown = start(me)
            unknown.model_id = "no-such-model"
            unknown.ta_signature = agent.node_key.sign(payload.start_payload_of(unknown)).signature
            cases.append((me, request_from(unknown), "not in the registry"))

            for executor_actor, request, reason in cases:
                executor = executor_for(executor_actor, channel, ml, tmp_path)
                with pytest.raises(ExecutionRefused, match=reason):
                    await collect(executor, request)
                assert executor.outbox.pending_count() == 0
                # Only the draw disagreement is a draw mismatch, counted for /health.
                assert executor.audit.refused_forwards == (reason.startswith("picks"))
                executor.db.close()

    net.run(scenario)


def test_a_forward_waits_a_bounded_time_for_the_block_its_draw_names(
        net: Net, ml_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The agent's node may apply the draw's block before ours, so the executor waits for it;
    a forward naming a block this node does not reach in time is refused once the wait runs
    out, and one naming a far block at once, without waiting."""
    monkeypatch.setattr("apinode.executor.DRAW_LAG_WAIT_S", 0.0)

    async def scenario(channel: grpc.aio.Channel) -> None:
        chain = ChainQueries(channel)
        ahead = await chain.latest_height() + 2
        assert await chain.reached(ahead, 30, 3)
        assert await chain.latest_height() >= ahead
        # Far past this node: no wait (a wait would outlast the 60 s given).
        far = chain.reached(await chain.latest_height() + 10_000, 600, 3)
        assert not await asyncio.wait_for(far, 60)
        async with MlNodeClient(ml_address) as ml:
            forbid_generation(ml)
            me, agent, _, now, _ = await drawn(net, chain, "lag-1")
            executor = executor_for(me, channel, ml, tmp_path)
            for lead in (3, 10_000):
                named = await chain.latest_height() + lead
                start = start_msg(agent, net.developer, "lag-1", me.address, named, now,
                                  [1, 2, 3], max_tokens=4)
                with pytest.raises(ExecutionRefused, match=f"not applied block {named}"):
                    await collect(executor, request_from(start))
                assert executor.outbox.pending_count() == 0
            executor.db.close()

    net.run(scenario)


def test_a_closed_stream_finishes_nothing(net: Net, ml_address: str, tmp_path: Path):
    async def scenario(channel: grpc.aio.Channel) -> None:
        chain = ChainQueries(channel)
        async with MlNodeClient(ml_address) as ml:
            # Greedy, this prompt runs to max_tokens: 200 tokens take the model over 15s.
            prompt = await ml.tokenize_chat([("user", LONG_ANSWER)])
            me, agent, height, now, _ = await drawn(net, chain, "closed-1")
            executor = executor_for(me, channel, ml, tmp_path)
            start = start_msg(agent, net.developer, "closed-1", me.address, height, now,
                              prompt.ids, max_tokens=200, temperature=0.0)
            stream = executor.execute(request_from(start))
            assert isinstance(await anext(stream), ExecutedStep)
            with grpc.insecure_channel(ml_address) as ml_channel:
                health = pb_grpc.MLNodeStub(ml_channel).Health
                assert health(pb.HealthRequest(), timeout=5).running == 1
                await stream.aclose()  # the transfer agent hung up
                deadline = time.monotonic() + 3
                while health(pb.HealthRequest(), timeout=5).running:
                    assert time.monotonic() < deadline, "the generation was not cancelled"
                    await asyncio.sleep(0.1)
            assert executor.outbox.pending_count() == 0
            with executor.db.session() as session:
                assert session.get(Payload, start.inference_id) is None
            executor.db.close()

            # An invalid sampling request is the ML node's to refuse, with its own message.
            me, agent, height, now, _ = await drawn(net, chain, "closed-2")
            bad = executor_for(me, channel, ml, tmp_path)
            start = start_msg(agent, net.developer, "closed-2", me.address, height, now,
                              prompt.ids, max_tokens=4, temperature=500.0)
            with pytest.raises(MlNodeRefused, match="temperature"):
                await collect(bad, request_from(start))
            assert bad.outbox.pending_count() == 0
            bad.db.close()

    net.run(scenario)


def test_a_finish_owed_while_the_chain_node_is_down_is_queued_and_lands_later(
        net: Net, ml_address: str, tmp_path: Path):
    """The agent's delivery reaches the executor while the executor's own chain node is
    unreachable: the finish it owes still goes to the outbox (the finish needs nothing from
    the chain), and the outbox sends it once a chain node answers again."""
    async def scenario(channel: grpc.aio.Channel) -> None:
        chain = ChainQueries(channel)
        async with MlNodeClient(ml_address) as ml:
            me, agent, executor, start, ids = await executed_here(net, channel, ml, tmp_path,
                                                                  "chain-down-1")
            async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}") as dead:
                executor.chain = ChainQueries(dead, timeout_s=1.0)
                with pytest.raises(ChainQueryError):
                    await executor.chain.latest_height()
                await executor.deliver(delivery(start.inference_id, ids, agent, me))
            owed = f"finish_inference:{start.inference_id}"
            finish = MsgFinishInference.FromString(executor.outbox.get(owed).payload)
            model = await chain.model(MODEL_ID)
            assert (list(finish.output_ids), finish.serving_dtype) == (ids,
                                                                      model.serving_dtype)

            # The chain is back: the start and the queued finish meet and are charged.
            found = await meet_on_chain(net, channel, executor, me, agent, start)
            assert (found.status, list(found.output_ids)) == (FINISHED, ids)
            executor.db.close()

    net.run(scenario)


def test_damaged_outbox_rows_of_a_complete_run_are_made_again_byte_for_byte(
        net: Net, ml_address: str, tmp_path: Path):
    """The bytes of the finish and relay rows an executor queued are overwritten (a damaged
    disk, a bad write): the outbox worker makes each again from the payload row and the
    delivery kept with it, exactly as first queued, and the finish lands and is charged."""
    async def scenario(channel: grpc.aio.Channel) -> None:
        async with MlNodeClient(ml_address) as ml:
            me, agent, executor, start, ids = await executed_here(net, channel, ml, tmp_path,
                                                                  "damaged-row-1")
            executor.relay_delay_s = 3600  # the agent's start lands: the relay stays queued
            await executor.deliver(delivery(start.inference_id, ids, agent, me))
            keys = [f"finish_inference:{start.inference_id}",
                    f"relay_start:{start.inference_id}"]
            queued = {key: executor.outbox.get(key).payload for key in keys}
            with executor.db.session() as session:
                session.execute(update(OutboxRow).where(OutboxRow.key.in_(keys))
                                .values(payload=b"\xff\xfe not a protobuf message"))
            relay = executor.outbox.get(keys[1])
            with pytest.raises(Undecodable):
                relay.message()

            assert (await executor.repair(relay)).SerializeToString() == queued[keys[1]]
            found = await meet_on_chain(net, channel, executor, me, agent, start)
            assert {key: executor.outbox.get(key).payload for key in keys} == queued
            assert (found.status, list(found.output_ids)) == (FINISHED, ids)
            executor.db.close()

    net.run(scenario)


def test_a_damaged_row_the_node_keeps_nothing_to_rebuild_from_is_not_made_up(
        net: Net, ml_address: str, tmp_path: Path):
    """Only an inference executed here to the end can be made again: a damaged row of any
    other key, or of an inference with no payload row here, is left to fail as it is."""
    async def scenario(channel: grpc.aio.Channel) -> None:
        async with MlNodeClient(ml_address) as ml:
            me = net.participants[0]
            executor = executor_for(me, channel, ml, tmp_path)
            for key in ("finish_inference:never-ran-here", "relay_start:never-ran-here",
                        "start_inference:never-ran-here", "commit_seed:3"):
                executor.outbox.enqueue(key, MsgFinishInference(inference_id=key))
                entry = executor.outbox.get(key)
                assert await executor.repair(entry) is None
                assert executor.outbox.get(key).payload == entry.payload
            executor.db.close()

    net.run(scenario)
