"""The PoC worker's own logic: sprints, batches and keys, budgets, restarts, the window's end,
checks of other members, and the "fabricate" fault.

Real parts: the outbox on SQLite, the API node's ML node client, and the ML node's gRPC
service (``mlnode.server.MLNodeService``) in this process, computing and verifying real
nonces on the CPU (a small shape, so a test takes seconds). The chain is a fake that answers
the worker's queries and applies what the outbox would send under the chain's rules (window,
target, no nonce twice); the real chain is the end-to-end test's job.
"""

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import grpc
import pytest

from apinode.chain_queries import EpochInfo
from apinode.config import ApiNodeConfig, write_home
from apinode.mlnode_client import MlNodeClient
from apinode.outbox import Outbox, type_url
from apinode.outbox_chain import ALREADY_DONE
from apinode.poc.sprint import fabricated_claims, split
from apinode.poc.worker import PocWorker
from apinode.store import Database, OutboxState
from chain.epochs.errors import DuplicateNonce, DuplicateVerdict
from inferchain_pb.inference.v1.epochs_pb2 import (
    INFERENCE,
    POC,
    POC_VALIDATION,
    Epoch,
    MsgPocValidation,
    MsgSubmitPoc,
    PocSubmission,
    PocVerdict,
)
from inferchain_pb.inference.v1.epochs_pb2 import PocNonce as ChainPocNonce
from inferchain_pb.inference.v1.validation_pb2 import EpochMember, EpochMembers
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc
from mlnode.engine import Load
from mlnode.poc import PocModel, compute, poc_seed
from mlnode.poc.target import target_for_acceptance
from mlnode.server import MLNodeService
from mlnode.types import EngineInfo, PocModelSpec, PocNonce

ME, HONEST, FORGER = "infer1me", "infer1honest", "infer1forger"
LENGTH, WINDOW, CHECKS = 100, 40, 20  # epoch e: PoC 1+100e … 40+100e, checks … 60+100e
# A small shape (milliseconds per 512 nonces) with a target accepting ~5 %.
SPEC = PocModelSpec(hidden=32, layers=1, heads=2, ffn=64, seq_len=16)
TARGET_MICRO = round(target_for_acceptance(0.05, SPEC.hidden) * 1e6)
TARGET = TARGET_MICRO / 1e6
SAMPLE = 16
PARAMS = {"epoch_length_blocks": LENGTH, "poc_window_blocks": WINDOW,
          "poc_validation_window_blocks": CHECKS, "poc_hidden": SPEC.hidden,
          "poc_layers": SPEC.layers, "poc_heads": SPEC.heads, "poc_ffn": SPEC.ffn,
          "poc_seq_len": SPEC.seq_len, "poc_target_distance_micro": TARGET_MICRO,
          "poc_sample_size": SAMPLE, "poc_tolerance_nano": 10_000,
          "max_weight_share_ppm": 1_000_000}


def block_hash(epoch: int) -> bytes:
    return hashlib.sha256(f"first block of epoch {epoch}".encode()).digest()


def sample_seed(epoch: int) -> bytes:
    return hashlib.sha256(f"first block after the PoC window of {epoch}".encode()).digest()


def honest_claims(address: str, epoch: int, count: int) -> list[PocNonce]:
    """What an honest prover finds among nonces 0 … count − 1, computed here directly."""
    model = PocModel(SPEC, poc_seed(block_hash(epoch), address))
    return [PocNonce(n.nonce, n.distance) for n in compute(model, range(count), TARGET)]


class FakeChain:
    """The worker's queries, and the chain's PoC rules for what the outbox delivers."""

    def __init__(self, height: int) -> None:
        self.height = height
        self.params_json = dict(PARAMS)
        self.weights = {ME: 10, HONEST: 10, FORGER: 10}
        self.submissions: dict[int, dict[str, PocSubmission]] = {}
        self.nonces: dict[tuple[int, str], list[ChainPocNonce]] = {}

    def current(self) -> Epoch:
        number = (self.height - 1) // LENGTH
        start = 1 + number * LENGTH
        poc_end, checks_end = start + WINDOW - 1, start + WINDOW + CHECKS - 1
        stage = POC if self.height <= poc_end else \
            POC_VALIDATION if self.height <= checks_end else INFERENCE
        return Epoch(number=number, start_height=start, length=LENGTH, stage=stage,
                     poc_end_height=poc_end, poc_validation_end_height=checks_end,
                     poc_block_hash=block_hash(number),
                     poc_sample_seed=sample_seed(number) if self.height > poc_end else b"")

    async def params(self, module: str) -> dict:
        assert module == "epochs"
        return self.params_json

    async def latest_height(self) -> int:
        return self.height

    async def epoch(self, number: int | None = None) -> EpochInfo:
        current = self.current()
        members = [EpochMember(address=a, weight=w) for a, w in self.weights.items() if w]
        return EpochInfo(current, EpochMembers(
            epoch=current.number if number is None else number, members=members,
            total_weight=sum(m.weight for m in members)))

    async def poc_submissions(self, epoch: int) -> list[PocSubmission]:
        return list(self.submissions.get(epoch, {}).values())

    async def poc_nonces(self, epoch: int, participant: str) -> list[ChainPocNonce]:
        return list(self.nonces.get((epoch, participant), []))

    def submit(self, message: MsgSubmitPoc) -> None:
        """The chain's MsgSubmitPoc rules; a breach fails the test."""
        current = self.current()
        assert message.epoch == current.number and current.stage == POC, "window closed"
        assert 0 < len(message.nonces) <= 4096
        held = self.nonces.setdefault((message.epoch, message.creator), [])
        claimed = {n.nonce for n in held}
        for nonce in message.nonces:
            assert nonce.distance <= TARGET, nonce
            if nonce.nonce in claimed:
                raise DuplicateNonce(f"nonce {nonce.nonce} already claimed")
            claimed.add(nonce.nonce)
        held.extend(message.nonces)
        submission = self.submissions.setdefault(message.epoch, {}).setdefault(
            message.creator, PocSubmission(epoch=message.epoch, participant=message.creator))
        submission.nonces += len(message.nonces)
        submission.batches += 1
        submission.last_nonce = max(submission.last_nonce,
                                    max(n.nonce for n in message.nonces))

    def validate(self, message: MsgPocValidation) -> None:
        current = self.current()
        assert message.epoch == current.number and current.stage == POC_VALIDATION
        assert message.participant != message.creator
        submission = self.submissions[message.epoch][message.participant]
        if any(v.validator == message.creator for v in submission.verdicts):
            raise DuplicateVerdict("already checked")
        submission.verdicts.append(PocVerdict(
            validator=message.creator, passed=message.passed, checked=message.checked,
            failed=message.failed, weight=self.weights[message.creator], height=self.height))

    def deliver(self, outbox: Outbox) -> None:
        """Sends every due entry, as the outbox worker would, one tx per entry."""
        for entry in outbox.claim_batch(1000):
            if entry.type_url == type_url(MsgSubmitPoc):
                self.submit(MsgSubmitPoc.FromString(entry.payload))
            elif entry.type_url == type_url(MsgPocValidation):
                self.validate(MsgPocValidation.FromString(entry.payload))
            outbox.mark_committed([entry.id])


class IdleEngine:
    """An inference engine with nothing to do: the ML node's PoC runs flat out beside it."""

    info = EngineInfo(model_id="none", weights_sha256="", dtype="float32", device="cpu",
                      engine="test", context_length=0, vocab_size=0, max_top_logprobs=0,
                      eos_token_id=0)

    def load(self) -> Load:
        return Load(0, 0)

    def close(self) -> None:
        pass


class CountingClient(MlNodeClient):
    """The real client, recording where each proof-of-compute stream starts."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.streams: list[tuple[int, int]] = []
        self.verified: list[str] = []

    async def proof_of_compute(self, shape, seed, nonce_start, nonce_count, target_distance,
                               **kw):
        self.streams.append((nonce_start, nonce_count))
        async for progress in super().proof_of_compute(shape, seed, nonce_start, nonce_count,
                                                       target_distance, **kw):
            yield progress

    async def verify_proof_of_compute(self, shape, seed, *args, **kw):
        self.verified.append(seed.hex())
        return await super().verify_proof_of_compute(shape, seed, *args, **kw)


@asynccontextmanager
async def ml_node() -> AsyncIterator[CountingClient]:
    """The ML node's real gRPC service on a loopback port, and a client of it."""
    server = grpc.aio.server()
    service = MLNodeService(IdleEngine())
    ml_grpc.add_MLNodeServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = CountingClient(f"127.0.0.1:{port}")
    try:
        yield client
    finally:
        await client.close()
        await server.stop(None)
        service.close()


@pytest.fixture
def outbox(tmp_path) -> Iterator[Outbox]:
    db = Database.open(f"sqlite:///{tmp_path / 'node.db'}")
    yield Outbox(db)
    db.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


def queued(outbox: Outbox, epoch: int) -> list[MsgSubmitPoc]:
    entries = outbox.with_prefix(f"poc:{epoch}:")
    for entry in entries:
        message = MsgSubmitPoc.FromString(entry.payload)
        assert entry.key == f"poc:{epoch}:{message.nonces[0].nonce}"
    return [MsgSubmitPoc.FromString(e.payload) for e in entries]


def claims_of(messages: list[MsgSubmitPoc]) -> list[PocNonce]:
    return [PocNonce(n.nonce, n.distance) for m in messages for n in m.nonces]


def test_a_budget_is_computed_once_and_every_accepted_nonce_submitted_once(outbox,
                                                                             monkeypatch):
    """Nonces 0 … budget − 1 on the ML node; batches of at most MAX_BATCH_NONCES (made small
    here so that a flush splits), keyed by their first nonce, each nonce exactly once."""
    monkeypatch.setattr("apinode.poc.sprint.MAX_BATCH_NONCES", 40)
    budget = 4000
    chain = FakeChain(height=2)

    async def scenario() -> None:
        async with ml_node() as mlnode:
            worker = PocWorker(ME, chain, mlnode, outbox, max_nonces=budget)
            await worker.step()  # starts the sprint
            sprint = worker._sprint
            await until(lambda: mlnode.streams, "a stream started")
            assert sprint is not None and sprint.epoch == 0 and mlnode.streams == [(0, budget)]
            await until(lambda: sprint.next_nonce >= 1500, "half the budget computed")
            chain.height += WINDOW // 4  # a quarter of the window on: a flush is due
            await worker.step()
            chain.deliver(outbox)
            first = queued(outbox, 0)
            assert first and not sprint.closed
            await until(lambda: sprint.budget_spent, "the budget computed")
            chain.height += 1
            await worker.step()  # spent: flushes the rest and closes
            assert sprint.closed
            chain.deliver(outbox)
            for _ in range(3):  # nothing more in this window
                chain.height += 5
                await worker.step()
            assert mlnode.streams == [(0, budget)]

    asyncio.run(scenario())
    messages = queued(outbox, 0)
    assert all(0 < len(m.nonces) <= 40 and m.creator == ME and m.epoch == 0 for m in messages)
    assert claims_of(messages) == honest_claims(ME, 0, budget)  # in order, each once
    assert len(chain.nonces[(0, ME)]) == len(claims_of(messages))
    assert len(messages) > 2


def test_a_restarted_node_resumes_after_what_it_queued(outbox):
    """A node stopped mid-sprint queues what it found; the next one starts after the highest
    queued nonce, and together they submit exactly what one uninterrupted run would."""
    budget = 6000
    chain = FakeChain(height=2)

    async def scenario() -> None:
        async with ml_node() as mlnode:
            first = PocWorker(ME, chain, mlnode, outbox, max_nonces=budget, interval_s=0.05)
            running = asyncio.create_task(first.run())
            await until(lambda: first._sprint is not None and first._sprint.accepted > 0
                        and first._sprint.next_nonce >= 1000, "some nonces found")
            first.stop()
            await running
            assert first._sprint.closed and not first._sprint.budget_spent
            chain.deliver(outbox)
            resumed_at = max(c.nonce for c in claims_of(queued(outbox, 0))) + 1

            second = PocWorker(ME, chain, mlnode, outbox, max_nonces=budget)
            await second.step()
            await until(lambda: len(mlnode.streams) == 2, "a second stream")
            assert mlnode.streams[-1] == (resumed_at, budget - resumed_at)
            await until(lambda: second._sprint.budget_spent, "the rest computed")
            await second.step()
            chain.deliver(outbox)

            # Only the nonces after the last accepted one are computed again, and they find
            # nothing new.
            batches = len(queued(outbox, 0))
            last = max(c.nonce for c in claims_of(queued(outbox, 0)))
            third = PocWorker(ME, chain, mlnode, outbox, max_nonces=budget)
            await third.step()
            await until(lambda: third._sprint.budget_spent, "the tail computed")
            await third.step()
            assert mlnode.streams[2] == (last + 1, budget - last - 1)
            assert third._sprint.closed and len(queued(outbox, 0)) == batches

    asyncio.run(scenario())
    assert claims_of(queued(outbox, 0)) == honest_claims(ME, 0, budget)


def test_without_a_budget_it_computes_until_the_margin_before_the_window_ends(outbox):
    chain = FakeChain(height=2)

    async def scenario() -> None:
        async with ml_node() as mlnode:
            worker = PocWorker(ME, chain, mlnode, outbox, submit_margin_blocks=3)
            await worker.step()
            sprint = worker._sprint
            await until(lambda: sprint.next_nonce >= 2000, "nonces computed")
            chain.height = WINDOW - 4  # one block before the cutoff: still computing
            await worker.step()
            assert sprint.running and not sprint.closed
            chain.height = WINDOW - 3
            await worker.step()
            assert sprint.closed and not sprint.running and not sprint.pending
            computed = sprint.next_nonce
            chain.deliver(outbox)  # lands by the window's last height
            chain.height = WINDOW
            await worker.step()
            assert mlnode.streams == [(0, 1 << 40)]
            await asyncio.sleep(0.2)
            assert sprint.next_nonce == computed  # the stream is over
            chain.height = WINDOW + 1  # checks open; nothing more of ours is queued
            await worker.step()
            return computed

    computed = asyncio.run(scenario())
    assert claims_of(queued(outbox, 0)) == honest_claims(ME, 0, computed)


def test_a_node_started_after_the_cutoff_waits_for_the_next_window(outbox):
    chain = FakeChain(height=WINDOW - 2)

    async def scenario() -> None:
        async with ml_node() as mlnode:
            worker = PocWorker(ME, chain, mlnode, outbox, max_nonces=1000)
            await worker.step()
            assert worker._sprint is None and not mlnode.streams
            chain.height = LENGTH + 1  # epoch 1's window
            await worker.step()
            await until(lambda: mlnode.streams, "a stream started")
            assert worker._sprint.epoch == 1 and mlnode.streams == [(0, 1000)]
            await until(lambda: worker._sprint.budget_spent, "budget computed")
            await worker.step()

    asyncio.run(scenario())
    assert claims_of(queued(outbox, 1)) == honest_claims(ME, 1, 1000)
    assert not queued(outbox, 0)


def test_members_check_every_other_submission_once(outbox):
    """An honest submission passes, a fabricated one fails, its own is not checked, and one
    already checked (queued, or a verdict on chain) is not checked again."""
    chain = FakeChain(height=2)
    honest = honest_claims(HONEST, 0, 3000)
    forged = fabricated_claims(60, TARGET)
    mine = honest_claims(ME, 0, 1000)
    for creator, claims in ((HONEST, honest), (FORGER, forged), (ME, mine)):
        for batch in split(claims):
            chain.submit(MsgSubmitPoc(creator=creator, epoch=0, nonces=[
                ChainPocNonce(nonce=c.nonce, distance=c.distance) for c in batch]))
    chain.height = WINDOW  # the window's last height: the sample seed is not out yet

    async def scenario() -> None:
        async with ml_node() as mlnode:
            worker = PocWorker(ME, chain, mlnode, outbox)
            await worker.step()
            assert not mlnode.verified
            chain.height = WINDOW + 1
            await worker.step()
            assert sorted(mlnode.verified) == sorted(
                poc_seed(block_hash(0), p).hex() for p in (HONEST, FORGER))
            await worker.step()  # all done: asks nothing again
            chain.deliver(outbox)
            restarted = PocWorker(ME, chain, mlnode, outbox)
            await restarted.step()  # the verdicts are on chain (and queued)
            assert len(mlnode.verified) == 2

    asyncio.run(scenario())
    verdicts = {p: list(s.verdicts) for p, s in chain.submissions[0].items()}
    assert not verdicts[ME]
    (good,), (bad,) = verdicts[HONEST], verdicts[FORGER]
    assert (good.validator, good.passed, good.checked, good.failed) == (ME, True, SAMPLE, 0)
    assert (bad.validator, bad.passed, bad.checked) == (ME, False, SAMPLE)
    assert bad.failed >= SAMPLE // 2  # ~95 % of random nonces are over the target
    assert outbox.get(f"poc_check:0:{HONEST}").state == OutboxState.COMMITTED


def test_a_participant_without_weight_checks_nothing(outbox):
    chain = FakeChain(height=WINDOW + 1)
    chain.weights[ME] = 0
    chain.submissions[0] = {HONEST: PocSubmission(epoch=0, participant=HONEST, nonces=1)}
    chain.nonces[(0, HONEST)] = [ChainPocNonce(nonce=1, distance=0.1)]

    async def scenario() -> None:
        async with ml_node() as mlnode:
            await PocWorker(ME, chain, mlnode, outbox).step()
            assert not mlnode.verified

    asyncio.run(scenario())
    assert outbox.get(f"poc_check:0:{HONEST}") is None


def test_the_fabricate_fault_submits_made_up_nonces_without_computing(outbox, caplog):
    chain = FakeChain(height=2)

    async def scenario() -> None:
        # An ML node nobody listens on: the fault never computes.
        async with MlNodeClient("127.0.0.1:9") as mlnode:
            worker = PocWorker(FORGER, chain, mlnode, outbox, max_nonces=20_000,
                               fault="fabricate")
            for _ in range(3):
                await worker.step()
                chain.height += 1
            chain.deliver(outbox)
            again = PocWorker(FORGER, chain, mlnode, outbox, max_nonces=20_000,
                              fault="fabricate")
            await again.step()  # after a restart: already done this window

    asyncio.run(scenario())
    claims = claims_of(queued(outbox, 0))
    assert len(claims) == 600 and len({c.nonce for c in claims}) == 600
    assert all(0.99 * TARGET <= c.distance < TARGET for c in claims)
    assert "FAULT INJECTION 'fabricate'" in caplog.text
    with pytest.raises(ValueError, match="fault"):
        PocWorker(ME, chain, None, outbox, fault="lie")


def test_resent_batches_and_verdicts_count_as_delivered():
    assert ("epochs", DuplicateNonce.code) in ALREADY_DONE
    assert ("epochs", DuplicateVerdict.code) in ALREADY_DONE


def test_poc_settings(tmp_path):
    write_home(tmp_path, {"chain_id": "c", "poc_max_nonces": 12_000, "poc_fault": "fabricate",
                          "poc_dtype": "bfloat16"}, "11" * 32)
    config = ApiNodeConfig.load(tmp_path)
    assert (config.poc, config.poc_max_nonces, config.poc_dtype, config.poc_fault) == \
        (True, 12_000, "bfloat16", "fabricate")
    assert ApiNodeConfig(home=tmp_path, chain_id="c").poc_max_nonces == 0
