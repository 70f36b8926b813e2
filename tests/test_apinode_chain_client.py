"""The API node's chain client against a real solo chain node: queries, txs, and the outbox
draining into real txs. Each test uses its own funded keys, so they do not depend on order."""

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from chain_client import send_msg
from chain_nodes import FUNDS, ChainNode, funded_keys, template
from conftest import free_port
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey
from inference_actors import (
    AGENT_FEE,
    MODEL_ID,
    PRICE,
    WEIGHTS,
    Actor,
    finish_msg,
    genesis_models,
    genesis_participant,
    request_id,
    start_msg,
)
from local_network import MlNodes
from nacl.signing import SigningKey

from apinode.chain_queries import ChainQueries, ChainQueryError, ChainUnavailable, Draw
from apinode.config import ApiNodeConfig
from apinode.draw_audit import DrawAudit
from apinode.mlnode_client import MlNodeClient
from apinode.node import register
from apinode.outbox import Outbox
from apinode.outbox_chain import outbox_confirm, outbox_submit
from apinode.outbox_worker import OutboxWorker, Record, SubmitResult
from apinode.store import Database, OutboxState, utc_now
from apinode.tx_sender import SimulationFailed, TxRejected, TxResult, TxSender
from chain.errors import UnknownAddress
from genesis.account_keys import AccountKey
from genesis.solo import layout_solo
from inferchain_pb.inference.v1.inference_pb2 import (
    FINISHED,
    MsgRegisterParticipant,
    ServedModel,
)

CHAIN_ID = "inferchain-test"
# The draw accepts a block hash up to 10 blocks old: slow blocks leave the TA's outbox time.
BLOCK_INTERVAL_MS = 300
SERVERS = 2


class Net:
    """The node's gRPC port and funded accounts: key i is genesis account number i; the last
    SERVERS are genesis participants, the only ones with weight (those the tests register
    have none until a proof of compute), so every draw picks one of them."""

    def __init__(self, port: int, keys: list[AccountKey]) -> None:
        self.port = port
        self.keys = keys
        self.actors = [Actor(LocalWallet(PrivateKey(bytes.fromhex(k.private_key_hex)),
                                         prefix="infer"), SigningKey.generate(), account_number=i)
                       for i, k in enumerate(keys)]

    def run(self, scenario: Callable[[grpc.aio.Channel], Awaitable[None]]) -> None:
        async def main() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
                await scenario(channel)

        asyncio.run(main())

    def sender(self, channel: grpc.aio.Channel, i: int) -> TxSender:
        return TxSender(channel, self.keys[i].private_key_hex, CHAIN_ID)

    def key_of(self, address: str) -> str:
        return next(k.private_key_hex for k in self.keys if k.address == address)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    keys = funded_keys(13 + SERVERS)
    port = free_port()
    net = Net(port, keys)
    spec = dataclasses.replace(template(keys, models=genesis_models()), participants=tuple(
        genesis_participant(a) for a in net.actors[-SERVERS:]))
    info = layout_solo(spec, tmp_path_factory.mktemp("apinode-chain") / "home", grpc_port=port,
                       block_interval_ms=BLOCK_INTERVAL_MS)
    node = ChainNode(info.home, port).start()
    try:
        node.wait_height(2)
        yield net
    finally:
        node.close()


async def landed(sender: TxSender, tx_hash: str, timeout_s: float = 15) -> TxResult:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = await sender.tx_result(tx_hash)
        if result is not None:
            return result
        await asyncio.sleep(0.1)
    raise TimeoutError(f"tx {tx_hash} not committed within {timeout_s}s")


async def drained(outboxes: list[Outbox], keys: list[str], timeout_s: float = 20) -> None:
    """Until no entry under ``keys`` is still owed to the chain."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entries = [o.get(k) for o, k in zip(outboxes, keys, strict=True)]
        if all(e.state in (OutboxState.COMMITTED, OutboxState.FAILED) for e in entries):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"outbox entries {keys} not drained within {timeout_s}s")


def recorder(outbox: Outbox) -> Record:
    """What the worker records before each broadcast: the tx's entries are sent, by hash."""
    async def record(ids: list[int], tx_hash: str, timeout_height: int | None) -> None:
        outbox.mark_sent(ids, tx_hash, timeout_height)
    return record


def fresh_address() -> str:
    return str(Address(PrivateKey().public_key, prefix="infer"))


def test_queries_answer_what_the_chain_has(net: Net):
    async def scenario(channel: grpc.aio.Channel) -> None:
        chain = ChainQueries(channel)
        assert [m.id for m in await chain.models()] == [MODEL_ID]
        assert (await chain.model(MODEL_ID)).price_per_token == PRICE
        assert await chain.model("no-such-model") is None
        assert await chain.participant(net.keys[0].address) is None
        assert await chain.inference("no-such-inference") is None
        assert tuple(await chain.account(net.keys[0].address)) == (FUNDS, 0, 0)
        assert tuple(await chain.account(fresh_address())) == (0, 0, 0)
        assert await chain.latest_height() >= 2
        assert (await chain.auth_account(net.keys[3].address)).number == 3
        assert await chain.auth_account(fresh_address()) is None
        with pytest.raises(ChainQueryError) as refused:
            await chain.draw("inf-x", "no-such-model")
        assert refused.value.code == grpc.StatusCode.NOT_FOUND

    net.run(scenario)


def test_unreachable_node_raises_chain_unavailable():
    async def scenario() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
            with pytest.raises(ChainUnavailable):
                await ChainQueries(channel, timeout_s=5).latest_height()

    asyncio.run(scenario())


def test_each_participant_registers_with_its_own_sender(net: Net):
    async def scenario(channel: grpc.aio.Channel) -> None:
        parts = [net.actors[1], net.actors[2]]
        senders = [net.sender(channel, 1), net.sender(channel, 2)]
        hashes = await asyncio.gather(*(
            s.send([p.register(f"http://127.0.0.1:{8000 + i}")])
            for i, (s, p) in enumerate(zip(senders, parts, strict=True))))
        for sender, tx_hash in zip(senders, hashes, strict=True):
            assert await landed(sender, tx_hash) == (0, "")
        chain = senders[0].chain
        listed = {p.address for p in await chain.participants()}
        assert {p.address for p in parts} <= listed
        found = await chain.participant(parts[1].address)
        assert (found.url, found.active) == ("http://127.0.0.1:8001", True)

    net.run(scenario)


def test_an_api_node_whose_ml_node_computes_in_another_dtype_does_not_declare_the_model(
        net: Net, tmp_path: Path):
    """The registry serves the model in fp32; a bf16 ML node's participant is not registered
    (the chain would refuse its declaration too: tests/test_serving_dtype.py)."""
    nodes = MlNodes(tmp_path, 1, dtype="bfloat16")
    config = ApiNodeConfig(home=tmp_path, chain_id=CHAIN_ID)

    async def scenario(channel: grpc.aio.Channel) -> None:
        chain = ChainQueries(channel)
        async with MlNodeClient(f"127.0.0.1:{nodes.ports[0]}") as mlnode:
            assert (await mlnode.info()).dtype == "bfloat16"
            with pytest.raises(RuntimeError, match="in bfloat16; the registry fixes float32"):
                await register(config, net.sender(channel, 9), chain, mlnode)
        assert await chain.participant(net.actors[9].address) is None

    try:
        net.run(scenario)
    finally:
        nodes.close()


def test_several_messages_go_in_one_tx(net: Net):
    async def scenario(channel: grpc.aio.Channel) -> None:
        sender = net.sender(channel, 3)
        before = await sender.chain.auth_account(sender.address)
        to = [fresh_address(), fresh_address()]
        tx_hash = await sender.send([send_msg(sender.address, to[0], 1000),
                                     send_msg(sender.address, to[1], 2000)])
        assert await landed(sender, tx_hash) == (0, "")
        assert [(await sender.chain.account(a)).balance for a in to] == [1000, 2000]
        after = await sender.chain.auth_account(sender.address)
        assert after.sequence == before.sequence + 1  # one tx, one signature

    net.run(scenario)


def test_a_tx_that_would_fail_is_not_broadcast(net: Net):
    async def scenario(channel: grpc.aio.Channel) -> None:
        sender = net.sender(channel, 4)
        bad = MsgRegisterParticipant(creator=sender.address, url="http://127.0.0.1:1",
                                     node_pubkey=bytes(32),
                                     models=[ServedModel(model_id="no-such-model")])
        with pytest.raises(SimulationFailed) as failed:
            await sender.send([send_msg(sender.address, fresh_address(), 1), bad])
        assert "no-such-model" in failed.value.log
        assert (await sender.chain.auth_account(sender.address)).sequence == 0
        with pytest.raises(TxRejected) as unfunded:
            await TxSender(channel, PrivateKey(), CHAIN_ID).send(
                [send_msg(fresh_address(), fresh_address(), 1)])
        assert unfunded.value.code == UnknownAddress.code

    net.run(scenario)


def test_sender_recovers_from_a_wrong_sequence(net: Net):
    async def scenario(channel: grpc.aio.Channel) -> None:
        sender, other = net.sender(channel, 5), net.sender(channel, 5)
        to = fresh_address()
        assert await landed(sender, await sender.send([send_msg(sender.address, to, 1)])) \
            == (0, "")
        # Another process signs with the same key: this sender's sequence falls behind.
        assert await landed(other, await other.send([send_msg(other.address, to, 1)])) \
            == (0, "")
        assert await landed(sender, await sender.send([send_msg(sender.address, to, 1)])) \
            == (0, "")
        # Ahead of the chain (say, after txs that never reached a block).
        sender._sequence += 3
        assert await landed(sender, await sender.send([send_msg(sender.address, to, 1)])) \
            == (0, "")
        # Back to back, the second simulated while the first is still in the mempool.
        first = await sender.send([send_msg(sender.address, to, 1)])
        second = await sender.send([send_msg(sender.address, to, 1)])
        assert [await landed(sender, h) for h in (first, second)] == [(0, "")] * 2
        assert (await sender.chain.account(to)).balance == 6
        assert (await sender.chain.auth_account(sender.address)).sequence == 6

    net.run(scenario)


def test_a_tx_the_mempool_lost_is_declared_dead_once_another_takes_its_sequence_or_its_timeout(
        tmp_path: Path):
    """A node restarted between a broadcast and its block forgets its mempool: once the
    sender's next tx takes the lost one's sequence, or, for a sender with nothing more to
    send, once the chain commits the lost tx's timeout height, the outbox's confirm says the
    lost tx failed (so its entries go out again) instead of waiting out the confirm timeout."""
    keys = funded_keys(2)
    port = free_port()
    # Slow blocks: the kill right after the broadcast lands before the next block.
    info = layout_solo(template(keys), tmp_path / "home", grpc_port=port,
                       block_interval_ms=3000)
    node = ChainNode(info.home, port).start()
    to = fresh_address()

    async def scenario(channel: grpc.aio.Channel) -> None:
        sender = TxSender(channel, keys[0].private_key_hex, CHAIN_ID)
        confirm = outbox_confirm(sender)
        lost = await lost_with_the_mempool(sender, to)
        # Still nothing took its sequence and its timeout height is blocks away: only unseen.
        assert not await sender.never_lands(lost)
        assert await confirm(lost, None) is None
        taken = await sender.send([send_msg(sender.address, to, 2)])
        assert await landed(sender, taken) == (0, "")
        assert await sender.never_lands(lost)
        assert await confirm(lost, None) is False
        assert not await sender.never_lands(taken)
        assert await confirm(taken, None) is True
        # A hash this sender never broadcast is never declared dead.
        assert not await sender.never_lands("AB" * 32)
        assert (await sender.chain.account(to)).balance == 2

        # A sender with nothing more to send: its lost tx is dead once its timeout passed.
        # A process started since (the same key) knows it only by the timeout height kept.
        quiet = TxSender(channel, keys[1].private_key_hex, CHAIN_ID, timeout_blocks=2)
        kept_by_hash: dict[str, int] = {}
        lost = await lost_with_the_mempool(quiet, to, kept_by_hash)
        kept = kept_by_hash[lost]
        restarted = TxSender(channel, keys[1].private_key_hex, CHAIN_ID, timeout_blocks=2)
        while (found := await outbox_confirm(restarted)(lost, kept)) is None:
            await asyncio.sleep(0.5)
        assert found is False and await quiet.chain.latest_height() >= kept
        assert await outbox_confirm(quiet)(lost, None) is False
        assert await outbox_confirm(restarted)(lost, kept) is False
        assert await outbox_confirm(restarted)(lost, None) is None

    async def lost_with_the_mempool(sender: TxSender, to: str,
                                    kept: dict[str, int] | None = None) -> str:
        """A tx broadcast and lost with the node's mempool; its timeout height, told before
        the broadcast, goes into ``kept`` by hash, as the outbox keeps it."""
        async def keep(tx_hash: str, timeout_height: int) -> None:
            if kept is not None:
                kept[tx_hash] = timeout_height

        for _ in range(5):  # until a broadcast tx is lost with the mempool
            lost = await sender.send([send_msg(sender.address, to, 1)], before_broadcast=keep)
            node.kill()
            node.start().wait_height(node.height() + 1)
            if await sender.tx_result(lost) is None:
                return lost
        pytest.fail("every broadcast tx reached a block before the node was killed")

    try:
        node.wait_height(2)
        Net(port, keys).run(scenario)
    finally:
        node.close()


def test_already_done_only_in_the_mempool_through_its_own_pending_tx_is_not_done(
        tmp_path: Path):
    """The simulation runs on the mempool's state: once an entry's own tx is broadcast, its
    message simulates as "already done" before any block carries it. A chain node whose
    consensus halted answers so until it restarts and forgets the tx, so the outbox waits for
    that tx (retrying the entry) and counts the entry done only once its tx is in a block."""
    keys = funded_keys(1)
    port = free_port()
    # Slow blocks: the second submit comes while the first tx waits for its block.
    info = layout_solo(template(keys, models=genesis_models()), tmp_path / "home",
                       grpc_port=port, block_interval_ms=6000)
    node = ChainNode(info.home, port).start()

    async def scenario(channel: grpc.aio.Channel) -> None:
        sender = TxSender(channel, keys[0].private_key_hex, CHAIN_ID)
        db = Database.open(str(tmp_path / "outbox.db"))
        outbox = Outbox(db)
        submit = outbox_submit(sender)
        key = f"register:{sender.address}"
        outbox.enqueue(key, MsgRegisterParticipant(
            creator=sender.address, url="http://127.0.0.1:1",
            node_pubkey=SigningKey.generate().verify_key.encode(),
            models=[ServedModel(model_id=MODEL_ID, weights_sha256=WEIGHTS, dtype="float32")]))
        entry, = outbox.claim_batch(1)
        first = await submit([entry], recorder(outbox))
        assert first.tx_hash and not first.done
        assert outbox.get(key).tx_hash == first.tx_hash  # recorded before it went out
        # Its confirm timed out, say: the entry goes out again while its tx is pending.
        outbox.mark_retry([entry.id], "not found on chain")
        again, = outbox.claim_batch(1, now=utc_now() + timedelta(minutes=5))
        assert await sender.tx_result(first.tx_hash) is None
        waiting = await submit([again], recorder(outbox))
        assert (waiting.tx_hash, waiting.done) == (None, frozenset())
        assert first.tx_hash in waiting.rejected[entry.id]
        # Once the tx is in a block, the refusal means what it says.
        assert await landed(sender, first.tx_hash) == (0, "")
        assert await submit([again], recorder(outbox)) == \
            SubmitResult(None, {}, frozenset({entry.id}))
        db.close()

    try:
        node.wait_height(2)
        Net(port, keys).run(scenario)
    finally:
        node.close()


def test_a_tx_broadcast_by_a_process_that_died_at_once_is_found_and_sent_again_once_lost(
        tmp_path: Path):
    """A process dies right after broadcasting a tx, before any step of its own: the tx's
    hash and timeout height were recorded with its entry before it went out, so the entry is
    sent, not leased and hashless. While the tx is pending its message already simulates as
    done (a registration the mempool holds), which a hashless entry claimed again would have
    taken for done; then a chain node restart drops the tx. The successor process, on the
    same outbox with the same key, waits for the kept hash, finds it lost once the chain is
    past its timeout height, and sends the message again: it lands."""
    keys = funded_keys(5)
    port = free_port()
    # Slow blocks: the kill right after the broadcast lands before the next block.
    info = layout_solo(template(keys, models=genesis_models()), tmp_path / "home",
                       grpc_port=port, block_interval_ms=6000)
    node = ChainNode(info.home, port).start()

    def registration(address: str) -> MsgRegisterParticipant:
        return MsgRegisterParticipant(
            creator=address, url="http://127.0.0.1:1",
            node_pubkey=SigningKey.generate().verify_key.encode(),
            models=[ServedModel(model_id=MODEL_ID, weights_sha256=WEIGHTS, dtype="float32")])

    async def scenario(channel: grpc.aio.Channel) -> None:
        for i, account in enumerate(keys):  # until a broadcast tx is lost with the mempool
            path = str(tmp_path / f"outbox-{i}.db")
            dying = TxSender(channel, account.private_key_hex, CHAIN_ID, timeout_blocks=2)
            key = f"register:{dying.address}"
            outbox = Outbox(Database.open(path))
            outbox.enqueue(key, registration(dying.address))
            entry, = outbox.claim_batch(1)
            lost = (await outbox_submit(dying)([entry], recorder(outbox))).tx_hash
            outbox.db.close()  # the process is gone
            kept = Outbox(Database.open(path)).get(key)
            assert (kept.state, kept.tx_hash) == (OutboxState.SENT, lost)
            assert kept.timeout_height is not None
            successor = TxSender(channel, account.private_key_hex, CHAIN_ID, timeout_blocks=2)
            with pytest.raises(SimulationFailed) as pending:
                await successor.simulate([registration(dying.address)])
            assert "already" in pending.value.log
            node.kill()
            node.start().wait_height(node.height() + 1)
            if await successor.tx_result(lost) is None:
                break
        else:
            pytest.fail("every broadcast tx reached a block before the node was killed")
        outbox = Outbox(Database.open(path), base_delay_s=0.05)
        worker = OutboxWorker(outbox, outbox_submit(successor), outbox_confirm(successor),
                              interval_s=0.2, confirm_timeout_s=3600)
        task = asyncio.create_task(worker.run())
        await drained([outbox], [key], timeout_s=90)
        worker.stop()
        await task
        done = outbox.get(key)
        assert done.state == OutboxState.COMMITTED and done.tx_hash != lost
        assert await successor.tx_result(done.tx_hash) == (0, "")
        assert await successor.tx_result(lost) is None
        assert (await successor.chain.participant(successor.address)).address == \
            successor.address
        outbox.db.close()

    try:
        node.wait_height(2)
        Net(port, keys).run(scenario)
    finally:
        node.close()


def test_outbox_commits_a_batch_and_fails_only_the_bad_entry(net: Net, tmp_path: Path):
    async def scenario(channel: grpc.aio.Channel) -> None:
        sender = net.sender(channel, 6)
        db = Database.open(str(tmp_path / "outbox.db"))
        outbox = Outbox(db, max_attempts=2, base_delay_s=0.05)
        to = [fresh_address(), fresh_address()]
        bad = MsgRegisterParticipant(creator=sender.address, url="http://127.0.0.1:1",
                                     node_pubkey=bytes(32),
                                     models=[ServedModel(model_id="no-such-model",
                                                         weights_sha256=WEIGHTS)])
        outbox.enqueue("send:a", send_msg(sender.address, to[0], 100))
        outbox.enqueue("register:bad", bad)
        outbox.enqueue("send:b", send_msg(sender.address, to[1], 200))
        worker = OutboxWorker(outbox, outbox_submit(sender), outbox_confirm(sender),
                              interval_s=0.05)
        task = asyncio.create_task(worker.run())
        await drained([outbox] * 3, ["send:a", "register:bad", "send:b"])
        worker.stop()
        await task
        sent = [outbox.get("send:a"), outbox.get("send:b")]
        assert [e.state for e in sent] == [OutboxState.COMMITTED] * 2
        assert sent[0].tx_hash == sent[1].tx_hash  # the two good ones went in one tx
        failed = outbox.get("register:bad")
        assert (failed.state, failed.attempts) == (OutboxState.FAILED, 2)
        assert "no-such-model" in failed.last_error
        assert [(await sender.chain.account(a)).balance for a in to] == [100, 200]
        db.close()

    net.run(scenario)


def test_two_copies_in_one_batch_land_once_and_neither_fails(net: Net, tmp_path: Path):
    """One message queued under two keys (a validator's check and its vote on one inference):
    each copy passes alone but not after the other. The first goes out; the second waits an
    attempt, then finds its message on chain and counts as committed, instead of the pair
    being retried together until both fail."""
    async def scenario(channel: grpc.aio.Channel) -> None:
        actor, sender = net.actors[12], net.sender(channel, 12)
        db = Database.open(str(tmp_path / "outbox.db"))
        outbox = Outbox(db, max_attempts=2, base_delay_s=0.05)
        outbox.enqueue("register:check", actor.register())
        outbox.enqueue("register:vote", actor.register())
        worker = OutboxWorker(outbox, outbox_submit(sender), outbox_confirm(sender),
                              interval_s=0.05)
        task = asyncio.create_task(worker.run())
        await drained([outbox] * 2, ["register:check", "register:vote"])
        worker.stop()
        await task
        first, second = outbox.get("register:check"), outbox.get("register:vote")
        assert (first.state, first.attempts) == (OutboxState.COMMITTED, 1)
        assert await sender.tx_result(first.tx_hash) == (0, "")
        assert (second.state, second.attempts, second.tx_hash) == (
            OutboxState.COMMITTED, 2, None)
        assert "would fail after another message of its batch" in second.last_error
        assert (await sender.chain.participant(actor.address)).address == actor.address
        db.close()

    net.run(scenario)


def test_a_start_the_chain_refuses_for_its_draw_is_counted_as_a_mismatch(net: Net,
                                                                         tmp_path: Path):
    async def scenario(channel: grpc.aio.Channel) -> None:
        chain = ChainQueries(channel)
        agent, other = net.actors[10], net.actors[11]
        for i, actor in ((10, agent), (11, other)):
            sender = net.sender(channel, i)
            assert await landed(sender, await sender.send([actor.register()])) == (0, "")
        now = int(time.time())
        draw = await request_draw(chain, request_id(agent, net.actors[0], "mismatch-1", now),
                                  now)
        # The second pick named as the first: the chain's draw disagrees.
        start = start_msg(agent, net.actors[0], "mismatch-1", draw.order[1], draw.draw_height,
                          now, [10, 11, 12], max_tokens=8)
        outbox = Outbox(Database.open(str(tmp_path / "ta.db")), max_attempts=1)
        outbox.enqueue("start_inference:mismatch-1", start)
        audit = DrawAudit()
        worker = OutboxWorker(outbox, outbox_submit(net.sender(channel, 10),
                                                    audit.outbox_refusal),
                              outbox_confirm(net.sender(channel, 10)), interval_s=0.05)
        await worker.step()
        entry = outbox.get("start_inference:mismatch-1")
        assert entry.state == OutboxState.FAILED and "picks" in entry.last_error
        assert audit.counts() == {"refused_starts": 1, "refused_forwards": 0}

    net.run(scenario)


async def request_draw(chain: ChainQueries, inference_id: str, timestamp: int) -> Draw:
    """The draw of a request stamped ``timestamp``, once the chain has its draw block."""
    while True:
        try:
            return await chain.draw(inference_id, MODEL_ID, request_timestamp=timestamp)
        except ChainQueryError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(0.2)


def test_start_and_finish_through_two_outboxes_are_charged_on_chain(net: Net, tmp_path: Path):
    async def scenario(channel: grpc.aio.Channel) -> None:
        chain = ChainQueries(channel)
        developer, mine = net.actors[0], [net.actors[7], net.actors[8]]
        for i, actor in zip((7, 8), mine, strict=True):
            sender = net.sender(channel, i)
            assert await landed(sender, await sender.send([actor.register()])) == (0, "")
        # The draw picks a genesis participant: those registered here have no weight.
        agent, now = mine[0], int(time.time())
        draw = await request_draw(chain, request_id(agent, developer, "outbox-1", now), now)
        executor = next(a for a in net.actors if a.address == draw.order[0])
        start = start_msg(agent, developer, "outbox-1", executor.address, draw.draw_height,
                          now, [10, 11, 12], max_tokens=8)
        finish = finish_msg(executor, start, [5, 6])
        before = await chain.account(developer.address)

        workers, outboxes = [], []
        for name, actor, kind, message in [("ta", agent, "start_inference", start),
                                           ("executor", executor, "finish_inference", finish)]:
            outbox = Outbox(Database.open(str(tmp_path / f"{name}.db")))
            outbox.enqueue(f"{kind}:outbox-1", message)
            sender = TxSender(channel, net.key_of(actor.address), CHAIN_ID)
            workers.append(OutboxWorker(outbox, outbox_submit(sender),
                                        outbox_confirm(sender), interval_s=0.05))
            outboxes.append(outbox)
        tasks = [asyncio.create_task(w.run()) for w in workers]
        await drained(outboxes, ["start_inference:outbox-1", "finish_inference:outbox-1"])
        for worker in workers:
            worker.stop()
        await asyncio.gather(*tasks)
        assert [o.pending_count() for o in outboxes] == [0, 0]
        assert outboxes[0].get("start_inference:outbox-1").state == OutboxState.COMMITTED
        assert outboxes[1].get("finish_inference:outbox-1").state == OutboxState.COMMITTED

        found = await chain.inference(start.inference_id)
        assert (found.status, found.executor, found.transfer_agent, found.cost) == (
            FINISHED, executor.address, agent.address, 5 * PRICE)
        assert (found.starter, found.agent_fee) == (agent.address, AGENT_FEE)
        after = await chain.account(developer.address)
        assert (before.balance - after.balance, after.escrow) == (5 * PRICE + AGENT_FEE, 0)

        # A crash after broadcasting but before recording it resends the finish: the chain
        # says it is already there, and the outbox counts it committed rather than failed.
        resend = Outbox(Database.open(str(tmp_path / "resend.db")))
        resend.enqueue("finish_inference:outbox-1", finish)
        sender = TxSender(channel, net.key_of(executor.address), CHAIN_ID)
        worker = OutboxWorker(resend, outbox_submit(sender), outbox_confirm(sender))
        await worker.step()
        entry = resend.get("finish_inference:outbox-1")
        assert (entry.state, entry.tx_hash) == (OutboxState.COMMITTED, None)
        for outbox in [*outboxes, resend]:
            outbox.db.close()

    net.run(scenario)
