"""The API node's store and outbox on a real database: SQLite always, PostgreSQL when
INFERCHAIN_TEST_POSTGRES_URL names one (.ci/run starts one). The chain is faked here: this is the
storage layer's test; the devnet end-to-end tests drive the outbox against a real chain."""

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
)

from apinode.chain_queries import ChainUnavailable
from apinode.outbox import Entry, Outbox
from apinode.outbox_worker import OutboxWorker, Record, SubmitResult
from apinode.store import (
    Base,
    Database,
    OutboxRow,
    OutboxState,
    Payload,
    RequestLog,
    UTCDateTime,
    utc_now,
)
from inferchain_pb.inference.v1.epochs_pb2 import MsgSubmitPoc
from inferchain_pb.inference.v1.inference_pb2 import MsgFinishInference, MsgStartInference

POSTGRES_URL = os.environ.get("INFERCHAIN_TEST_POSTGRES_URL", "")
NO_POSTGRES = ("INFERCHAIN_TEST_POSTGRES_URL is not set: point it at a PostgreSQL database the "
               "tests may wipe, e.g. postgresql+psycopg://postgres:postgres@127.0.0.1:5432/"
               "inferchain_test (.ci/run starts one)")
POSTGRES = pytest.param("postgresql", marks=pytest.mark.skipif(not POSTGRES_URL,
                                                                reason=NO_POSTGRES))
T0 = datetime(2030, 1, 1, tzinfo=UTC)  # later than any enqueue time, so everything is due


def drop_tables(url: str) -> None:
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", POSTGRES])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(backend: str, tmp_path) -> str:
    return POSTGRES_URL if backend == "postgresql" else f"sqlite:///{tmp_path / 'node.db'}"


@pytest.fixture
def open_db(backend: str, url: str) -> Iterator[Callable[[], Database]]:
    """Opens Databases on one fresh database; each call is a new engine, as a new process has."""
    if backend == "postgresql":
        drop_tables(url)
    opened: list[Database] = []

    def open_() -> Database:
        opened.append(Database.open(url))
        return opened[-1]

    yield open_
    for db in opened:
        db.close()
    if backend == "postgresql":
        drop_tables(url)


@pytest.fixture
def db(open_db: Callable[[], Database]) -> Database:
    return open_db()


def keys(entries: list[Entry]) -> list[str]:
    return [e.key for e in entries]


def fill(outbox: Outbox, n: int) -> list[str]:
    added = [f"start_inference:inf-{i:03d}" for i in range(n)]
    for key in added:
        assert outbox.enqueue(key, MsgStartInference(inference_id=key))
    return added


# --- tables ---------------------------------------------------------------------------------


def test_payload_crud(db: Database):
    with db.session() as s:
        s.add(Payload(inference_id="inf-1", prompt_token_ids=[1, 2, 3],
                      prompt={"messages": [{"role": "user", "content": "hi"}]}))
    with db.session() as s:
        row = s.get(Payload, "inf-1")
        assert row.prompt["messages"][0]["content"] == "hi"
        assert row.output_token_ids == [] and row.artifact is None
        assert row.created_at.tzinfo is not None
        created = row.created_at
        row.output_text, row.output_token_ids, row.artifact = "hello", [7, 8], b"\x00\x01art"
    with db.session() as s:
        row = s.get(Payload, "inf-1")
        assert (row.output_text, row.output_token_ids, row.artifact) == ("hello", [7, 8],
                                                                         b"\x00\x01art")
        assert row.updated_at >= created
        s.delete(row)
    with db.session() as s:
        assert s.get(Payload, "inf-1") is None


def test_request_log_crud(db: Database):
    with db.session() as s:
        s.add_all([
            RequestLog(inference_id="inf-1", developer="infer1dev", model="smollm2", status="ok",
                       http_status=200, prompt_tokens=12, completion_tokens=30, latency_ms=41.5),
            RequestLog(developer="infer1dev", model="nope", status="error", http_status=404,
                       error="unknown model"),
            RequestLog(status="error", http_status=401, error="bad key"),
        ])
    with db.session() as s:
        rows = s.scalars(select(RequestLog).where(RequestLog.developer == "infer1dev")
                         .order_by(RequestLog.id)).all()
        assert [r.http_status for r in rows] == [200, 404]
        assert rows[0].id < rows[1].id and rows[0].completion_tokens == 30
        assert rows[1].inference_id is None and rows[1].error == "unknown model"
        s.delete(rows[1])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(RequestLog)) == 2


def test_outbox_row_crud_and_aware_times(db: Database):
    outbox = Outbox(db)
    finish = MsgFinishInference(inference_id="inf-1", output_ids=[7, 8])
    assert outbox.enqueue("finish_inference:inf-1", finish)
    entry = outbox.get("finish_inference:inf-1")
    assert (entry.type_url, entry.payload, entry.state, entry.attempts) == (
        "/inference.v1.MsgFinishInference", finish.SerializeToString(), OutboxState.PENDING, 0)
    assert entry.message() == finish
    with db.session() as s:
        row = s.get(OutboxRow, entry.id)
        assert row.next_attempt_at.tzinfo is not None and row.created_at <= datetime.now(UTC)
        s.delete(row)
    assert outbox.get("finish_inference:inf-1") is None


def test_an_error_rolls_the_whole_session_back(db: Database):
    """Payload and its outbox message are kept together or not at all."""
    outbox = Outbox(db)
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(Payload(inference_id="inf-1", prompt={}, prompt_token_ids=[1]))
        outbox.enqueue("finish_inference:inf-1", MsgFinishInference(inference_id="inf-1"),
                       session=s)
        raise RuntimeError("crash before commit")
    with db.session() as s:
        assert s.get(Payload, "inf-1") is None
    assert outbox.get("finish_inference:inf-1") is None and outbox.pending_count() == 0


# --- outbox queue ---------------------------------------------------------------------------


def test_enqueue_is_idempotent_on_key(db: Database):
    outbox = Outbox(db)
    first, second = MsgStartInference(seed=1), MsgStartInference(seed=2)
    assert outbox.enqueue("start_inference:inf-1", first)
    assert not outbox.enqueue("start_inference:inf-1", second)
    assert outbox.pending_count() == 1
    assert outbox.get("start_inference:inf-1").payload == first.SerializeToString()


def test_a_held_back_entry_falls_due_later(db: Database):
    outbox = Outbox(db, lease_s=30)
    assert outbox.enqueue("relay_start:inf-1", MsgStartInference(seed=1), delay_s=5)
    assert outbox.claim_batch(10) == []
    later = utc_now() + timedelta(seconds=6)
    assert [e.key for e in outbox.claim_batch(10, now=later)] == ["relay_start:inf-1"]


def test_an_outbox_of_kinds_is_upgraded_to_type_urls_in_place(url: str,
                                                              open_db: Callable[[], Database]):
    """A database an older node wrote: entries named by kind keep their place and decode."""
    old = Table("outbox", MetaData(),
                Column("id", Integer, primary_key=True, autoincrement=True),
                Column("kind", String(64), nullable=False),
                Column("key", String(256), unique=True, nullable=False),
                Column("payload", LargeBinary, nullable=False),
                Column("state", String(16), nullable=False),
                Column("attempts", Integer, nullable=False),
                Column("last_error", String),
                Column("next_attempt_at", UTCDateTime, nullable=False),
                Column("tx_hash", String(128)), Column("sent_at", UTCDateTime),
                Column("created_at", UTCDateTime), Column("updated_at", UTCDateTime))
    start = MsgStartInference(inference_id="inf-1", seed=7)
    batch = MsgSubmitPoc(epoch=3)
    engine = create_engine(url)
    old.create(engine)
    due = utc_now()
    with engine.begin() as connection:
        connection.execute(insert(old), [
            {"kind": "start_inference", "key": "start_inference:inf-1",
             "payload": start.SerializeToString(), "state": "pending", "attempts": 0,
             "last_error": None, "next_attempt_at": due},
            {"kind": "poc", "key": "poc:3:0", "payload": batch.SerializeToString(),
             "state": "failed", "attempts": 10, "last_error": "out of attempts",
             "next_attempt_at": due},
            {"kind": "no_such_kind", "key": "odd:1", "payload": b"", "state": "pending",
             "attempts": 2, "last_error": None, "next_attempt_at": due}])
    engine.dispose()

    outbox = Outbox(open_db())
    entry = outbox.get("start_inference:inf-1")
    assert (entry.type_url, entry.state, entry.attempts, entry.timeout_height) == (
        "/inference.v1.MsgStartInference", OutboxState.PENDING, 0, None)
    assert entry.message() == start
    kept = outbox.get("poc:3:0")
    assert (kept.type_url, kept.state, kept.attempts, kept.last_error) == (
        "/inference.v1.MsgSubmitPoc", OutboxState.FAILED, 10, "out of attempts")
    assert kept.message() == batch
    assert outbox.get("odd:1").type_url == "no_such_kind"
    assert outbox.enqueue("finish_inference:inf-1", MsgFinishInference(inference_id="inf-1"))
    assert keys(Outbox(open_db()).claim_batch(10, now=T0)) == [
        "start_inference:inf-1", "odd:1", "finish_inference:inf-1"]  # opened again: unchanged


def test_payloads_of_an_older_node_gain_the_delivery_columns_empty(
        url: str, open_db: Callable[[], Database]):
    """A payloads table from before the delivery was kept: its rows stay and read as "no
    delivery recorded"; the columns are added once, however often the store is opened."""
    old = Table("payloads", MetaData(),
                Column("inference_id", String(128), primary_key=True),
                Column("prompt", JSON), Column("prompt_token_ids", JSON),
                Column("output_text", String), Column("output_token_ids", JSON),
                Column("artifact", LargeBinary), Column("created_at", UTCDateTime),
                Column("updated_at", UTCDateTime))
    engine = create_engine(url)
    old.create(engine)
    with engine.begin() as connection:
        connection.execute(insert(old), [{
            "inference_id": "inf-1", "prompt": {"prompt": "hi"}, "prompt_token_ids": [1, 2],
            "output_text": "yo", "output_token_ids": [3], "artifact": b"art",
            "created_at": utc_now(), "updated_at": utc_now()}])
    engine.dispose()

    open_db()
    db = open_db()
    with db.session() as session:
        row = session.get(Payload, "inf-1")
        assert (row.output_token_ids, row.artifact, row.delivered_tokens,
                row.delivery_signature) == ([3], b"art", None, None)
        row.delivered_tokens, row.delivery_signature = 1, b"sig"
    with db.session() as session:
        row = session.get(Payload, "inf-1")
        assert (row.delivered_tokens, row.delivery_signature) == (1, b"sig")


def test_claim_takes_due_entries_oldest_first_and_leases_them(db: Database):
    outbox = Outbox(db, lease_s=30)
    added = fill(outbox, 5)
    first = outbox.claim_batch(2, now=T0)
    assert keys(first) == added[:2] and [e.attempts for e in first] == [1, 1]
    assert keys(outbox.claim_batch(10, now=T0)) == added[2:]  # leased ones are skipped
    assert outbox.claim_batch(10, now=T0 + timedelta(seconds=29)) == []
    # a worker that died holding a lease: its entries fall due again when the lease ends
    again = outbox.claim_batch(2, now=T0 + timedelta(seconds=30))
    assert keys(again) == added[:2] and [e.attempts for e in again] == [2, 2]


def test_retry_backs_off_exponentially_up_to_the_cap(db: Database):
    outbox = Outbox(db)
    assert [outbox.backoff_s(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    (key,) = fill(outbox, 1)
    now = T0
    for delay in (1, 2, 4):
        (entry,) = outbox.claim_batch(1, now=now)
        assert outbox.mark_retry([entry.id], "chain unreachable", now=now) == []
        assert outbox.claim_batch(1, now=now + timedelta(seconds=delay - 0.01)) == []
        now += timedelta(seconds=delay)
    entry = outbox.get(key)
    assert (entry.state, entry.attempts, entry.last_error) == (
        OutboxState.PENDING, 3, "chain unreachable")
    assert keys(outbox.claim_batch(1, now=now)) == [key]


def test_entry_fails_after_max_attempts_and_keeps_its_error(db: Database):
    outbox = Outbox(db, max_attempts=3)
    (key,) = fill(outbox, 1)
    now = T0
    for attempt in range(1, 4):
        (entry,) = outbox.claim_batch(1, now=now)
        failed = outbox.mark_retry([entry.id], f"rejected #{attempt}", now=now)
        now += timedelta(minutes=5)
    assert keys(failed) == [key]
    entry = outbox.get(key)
    assert (entry.state, entry.attempts, entry.last_error) == (OutboxState.FAILED, 3,
                                                               "rejected #3")
    assert outbox.claim_batch(1, now=now) == [] and outbox.pending_count() == 0


def test_sent_and_committed_states(db: Database):
    outbox = Outbox(db)
    fill(outbox, 3)
    batch = outbox.claim_batch(3, now=T0)
    outbox.mark_sent([e.id for e in batch[:2]], "TXHASH")
    assert [(e.key, e.tx_hash) for e in outbox.sent(10)] == [(k, "TXHASH") for k in keys(batch[:2])]
    assert outbox.pending_count() == 3  # sent is still owed until committed
    outbox.mark_committed([e.id for e in batch[:2]])
    assert outbox.sent(10) == [] and outbox.pending_count() == 1
    assert outbox.get(batch[0].key).state == OutboxState.COMMITTED


# --- worker ---------------------------------------------------------------------------------


class FakeChain:
    """Broadcasts into a dict: ``fail_next`` submits raise, txs never broadcast are not found."""

    def __init__(self, fail_next: int = 0, unreachable_next: int = 0) -> None:
        self.fail_next = fail_next
        self.unreachable_next = unreachable_next
        self.txs: dict[str, list[str]] = {}
        self.signed = 0
        self.failed_on_chain: set[str] = set()
        self.reject: dict[str, str] = {}
        self.height = 0  # the latest committed height
        self.lock = threading.Lock()

    async def submit(self, entries: list[Entry], record: Record) -> SubmitResult:
        with self.lock:
            if self.unreachable_next:
                self.unreachable_next -= 1
                raise ChainUnavailable("/cosmos.tx.v1beta1.Service/Simulate",
                                       grpc.StatusCode.UNAVAILABLE, "connection refused")
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("broadcast: connection refused")
            rejected = {e.id: self.reject[e.key] for e in entries if e.key in self.reject}
            tx_hash = f"TX{self.signed:04d}"
            self.signed += 1
            carried = [e for e in entries if e.id not in rejected]
        await record([e.id for e in carried], tx_hash, None)  # then the tx goes out
        self.txs[tx_hash] = [e.key for e in carried]
        return SubmitResult(tx_hash, rejected)

    async def confirm(self, tx_hash: str, timeout_height: int | None) -> bool | None:
        if tx_hash not in self.txs:
            # Lost for good once the chain is past its timeout height, if the caller knows it.
            return False if timeout_height is not None and self.height >= timeout_height \
                else None
        return tx_hash not in self.failed_on_chain

    def submitted(self) -> Counter[str]:
        return Counter(key for entries in self.txs.values() for key in entries)


async def drain(outbox: Outbox, *workers: OutboxWorker, timeout_s: float = 20) -> None:
    """Runs the workers until nothing is owed to the chain, then stops them."""
    tasks = [asyncio.create_task(w.run()) for w in workers]
    deadline = time.monotonic() + timeout_s
    while await asyncio.to_thread(outbox.pending_count):
        assert time.monotonic() < deadline, "outbox not drained"
        await asyncio.sleep(0.02)
    for w in workers:
        w.stop()
    await asyncio.gather(*tasks)


def worker(outbox: Outbox, chain: FakeChain, **kw: float) -> OutboxWorker:
    return OutboxWorker(outbox, chain.submit, chain.confirm, **{"interval_s": 0.02, **kw})


def test_worker_retries_a_failed_submit_then_commits(db: Database,
                                                     caplog: pytest.LogCaptureFixture):
    outbox = Outbox(db, base_delay_s=0.05)
    added = fill(outbox, 5)
    chain = FakeChain(fail_next=1)
    caplog.set_level("INFO", logger="apinode.outbox_worker")
    asyncio.run(drain(outbox, worker(outbox, chain, batch_size=3)))
    assert chain.submitted() == Counter(added)
    assert {outbox.get(k).state for k in added} == {OutboxState.COMMITTED}
    assert outbox.get(added[0]).attempts == 2 and outbox.get(added[4]).attempts == 1
    assert "submit failed: broadcast: connection refused" in outbox.get(added[0]).last_error
    log = caplog.text
    assert "will retry 3 entries: MsgStartInference×3" in log and "committed (3 entries" in log


def test_an_unreachable_chain_node_costs_no_attempt_and_no_backoff(db: Database):
    """A chain node down for longer than the entries have attempts: nothing judged them, so
    they are tried again at the worker's pace, never failed, and land once it is back."""
    outbox = Outbox(db, base_delay_s=30, max_attempts=3)
    added = fill(outbox, 2)
    chain = FakeChain(unreachable_next=8)
    asyncio.run(drain(outbox, worker(outbox, chain)))
    assert chain.submitted() == Counter(added)
    entry = outbox.get(added[0])
    assert (entry.state, entry.attempts) == (OutboxState.COMMITTED, 1)
    assert "chain node unreachable" in entry.last_error


def test_rejected_entry_is_retried_alone_and_fails_without_sinking_the_batch(db: Database):
    outbox = Outbox(db, base_delay_s=0.01, max_attempts=2)
    added = fill(outbox, 3)
    chain = FakeChain()
    chain.reject[added[1]] = "inference already exists"
    asyncio.run(drain(outbox, worker(outbox, chain)))
    assert chain.submitted() == Counter([added[0], added[2]])
    bad = outbox.get(added[1])
    assert (bad.state, bad.last_error) == (OutboxState.FAILED, "rejected: inference already exists")


def test_tx_failed_on_chain_is_resubmitted(db: Database):
    outbox = Outbox(db, base_delay_s=0.01)
    (key,) = fill(outbox, 1)
    chain = FakeChain()
    chain.failed_on_chain.add("TX0000")
    asyncio.run(drain(outbox, worker(outbox, chain)))
    assert chain.submitted()[key] == 2 and outbox.get(key).tx_hash == "TX0001"
    assert outbox.get(key).last_error == "tx TX0000 failed on chain or can never land"


# --- restarts and concurrent workers --------------------------------------------------------


def test_restart_picks_up_pending_leased_and_sent_entries(open_db: Callable[[], Database]):
    first = Outbox(open_db(), lease_s=0.2)
    committed, lost, leased, pending = fill(first, 4)
    (a,) = first.claim_batch(1)
    first.mark_sent([a.id], "TX-OLD-COMMITTED")
    (b,) = first.claim_batch(1)
    first.mark_sent([b.id], "TX-OLD-LOST", now=datetime.now(UTC) - timedelta(seconds=10))
    first.claim_batch(1)  # then the process dies before broadcasting it
    first.db.close()

    second = Outbox(open_db(), base_delay_s=0.01)
    chain = FakeChain()
    chain.txs["TX-OLD-COMMITTED"] = [committed]  # it did land before the crash
    asyncio.run(drain(second, worker(second, chain, confirm_timeout_s=5)))
    assert chain.submitted() == Counter([committed, lost, leased, pending])  # each just once
    assert {second.get(k).state for k in (committed, lost, leased, pending)} == {
        OutboxState.COMMITTED}
    assert second.get(committed).tx_hash == "TX-OLD-COMMITTED"
    assert second.get(lost).last_error == "tx TX-OLD-LOST not found on chain after 5s"


def test_a_restarted_worker_resends_at_once_a_tx_whose_kept_timeout_height_passed(
        open_db: Callable[[], Database]):
    """The process that broadcast a tx died with it unlanded: its successor knows from the
    timeout height kept with the entries that it never will, once the chain is past it, and
    sends them again without waiting out the confirm timeout."""
    first = Outbox(open_db())
    (lost,) = fill(first, 1)
    (entry,) = first.claim_batch(1)
    first.mark_sent([entry.id], "TX-LOST", 12)
    first.db.close()

    second = Outbox(open_db(), base_delay_s=0.01)
    assert second.get(lost).timeout_height == 12
    chain = FakeChain()
    chain.height = 12
    asyncio.run(drain(second, worker(second, chain, confirm_timeout_s=3600)))
    assert chain.submitted() == Counter([lost]) and second.get(lost).tx_hash == "TX0000"
    assert second.get(lost).state == OutboxState.COMMITTED


def test_two_workers_on_two_connections_never_submit_an_entry_twice(
        open_db: Callable[[], Database]):
    one, two = Outbox(open_db()), Outbox(open_db())
    added = fill(one, 120)
    chain = FakeChain()
    asyncio.run(drain(one, worker(one, chain, batch_size=4), worker(two, chain, batch_size=4)))
    assert chain.submitted() == Counter(added)  # each exactly once


@pytest.mark.timeout(30)  # without SKIP LOCKED the claim below would wait forever
@pytest.mark.parametrize("backend", [POSTGRES])
def test_claim_skips_rows_locked_by_another_worker_on_postgresql(
        open_db: Callable[[], Database]):
    one, two = Outbox(open_db()), Outbox(open_db())
    added = fill(one, 5)
    with one.db.session() as s:  # worker one is mid-claim: it holds row locks on the first two
        s.scalars(select(OutboxRow).order_by(OutboxRow.id).limit(2).with_for_update()).all()
        started = time.monotonic()
        assert keys(two.claim_batch(5, now=T0)) == added[2:]
        assert time.monotonic() - started < 2  # skipped, not waited for
    assert keys(two.claim_batch(5, now=T0)) == added[:2]


@pytest.mark.parametrize("backend", [POSTGRES])
def test_concurrent_claims_from_many_threads_are_disjoint_on_postgresql(
        open_db: Callable[[], Database]):
    outboxes = [Outbox(open_db()) for _ in range(4)]
    added = fill(outboxes[0], 200)
    claimed: list[str] = []

    def claim_all(outbox: Outbox) -> None:
        while batch := outbox.claim_batch(3, now=T0):
            claimed.extend(keys(batch))

    threads = [threading.Thread(target=claim_all, args=(o,)) for o in outboxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == added  # every entry claimed, none twice
