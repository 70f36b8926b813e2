"""The persistent outbox: chain messages the node owes the chain, kept until a tx carries them.

A request handler enqueues a message and answers the developer at once; the worker
(``apinode.outbox_worker``) batches due entries into one tx, and the outbox remembers each
entry's state across restarts, so nothing enqueued is lost. A tx's hash and timeout height are
recorded with its entries (``mark_sent``) before it is broadcast, so a worker that dies right
after a broadcast leaves the tx to be looked for, and its entries go out again only once it is
known lost. Delivery is at least once (a tx declared lost after a confirm timeout may land
late, a lease may run out while its worker still submits), so the submitter must treat
"already on chain" as success.

Life of an entry::

    held --release--+
      |             v
      |          pending --claim--> (leased) --mark_sent--> sent --mark_committed--> committed
      |             ^                  |                     |
      |             +---- mark_retry --+---------------------+
      |                    (failed once attempts reach max_attempts)
      +--abandon--> failed

An entry is enqueued held when the chain would refuse it for now and only its owner can tell
when that ends (a validator's opening of a sealed report, due once the sealing is over). It is
stored like any other, in the transaction of what it goes with, and survives restarts, but is
never claimed until its owner releases it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from apinode.store import Database, OutboxRow, OutboxState, utc_now

MAX_ERROR_CHARS = 2000


class Undecodable(Exception):
    """An entry whose type URL names no message this process knows, or whose payload is not
    one: the outbox can never send it."""


def type_url(message: Message | type[Message]) -> str:
    """The protobuf type URL of a message (or message class), as a tx's ``Any`` names it."""
    return "/" + message.DESCRIPTOR.full_name


@dataclass(frozen=True)
class Entry:
    """A detached snapshot of one outbox row, safe to hand to code outside any session."""

    id: int
    type_url: str
    key: str
    payload: bytes
    state: OutboxState
    attempts: int
    last_error: str | None
    tx_hash: str | None
    sent_at: datetime | None
    timeout_height: int | None

    @classmethod
    def of(cls, row: OutboxRow) -> Entry:
        return cls(id=row.id, type_url=row.type_url, key=row.key, payload=row.payload,
                   state=row.state, attempts=row.attempts, last_error=row.last_error,
                   tx_hash=row.tx_hash, sent_at=row.sent_at, timeout_height=row.timeout_height)

    @property
    def message_name(self) -> str:
        """``MsgStartInference`` for ``/inference.v1.MsgStartInference``, for log lines."""
        return self.type_url.rsplit(".", 1)[-1]

    def message(self) -> Message:
        """The queued message, decoded by its type URL (any message type this process has
        loaded, as every module that enqueues one has); ``Undecodable`` otherwise."""
        try:
            descriptor = descriptor_pool.Default().FindMessageTypeByName(
                self.type_url.removeprefix("/"))
        except KeyError:
            raise Undecodable(f"no message type {self.type_url!r}") from None
        message_type = message_factory.GetMessageClass(descriptor)
        try:
            return message_type.FromString(self.payload)
        except DecodeError as exc:
            raise Undecodable(f"payload is not a {message_type.__name__}: {exc}") from exc


class Outbox:
    """Queue operations on the ``outbox`` table; every method is one short transaction.

    A claim counts as an attempt and leases the entry for ``lease_s`` by pushing its
    ``next_attempt_at`` forward: other workers skip it meanwhile, and if this worker dies before
    ``mark_sent`` the entry falls due again by itself. Counting at claim time also means an entry
    that crashes the worker every time still ends ``failed`` instead of looping forever.

    The lease is short because what it holds back can expire: a finish claimed by a worker
    that was killed waits out the lease before the restarted node sends it, and an inference
    expires ``expiration_blocks`` after its start (20 by default, half a minute or so). A
    lease that runs out while its worker is still submitting (a slow chain node) only lets
    another process on the same database send the entry too, which the chain takes once
    (delivery is at least once anyway).
    """

    def __init__(self, db: Database, *, max_attempts: int = 10, base_delay_s: float = 1.0,
                 max_delay_s: float = 60.0, lease_s: float = 10.0) -> None:
        self.db = db
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.lease_s = lease_s

    def enqueue(self, key: str, message: Message, *, session: Session | None = None,
                delay_s: float = 0.0, held: bool = False) -> bool:
        """Add ``message`` unless an entry with ``key`` exists; True when it was added.

        Pass ``session`` to enqueue in the caller's transaction, so that e.g. an executor's
        stored payload and its MsgFinishInference are kept together or not at all; ``delay_s``
        holds the entry back that long, so another node's copy of the message can land first;
        ``held`` keeps it back until ``release``.
        """
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        state = OutboxState.HELD if held else OutboxState.PENDING
        stmt = (dialect.insert(OutboxRow)
                .values(type_url=type_url(message), key=key,
                        payload=message.SerializeToString(), state=state,
                        attempts=0, next_attempt_at=utc_now() + timedelta(seconds=delay_s))
                .on_conflict_do_nothing(index_elements=[OutboxRow.key])
                .returning(OutboxRow.id))
        if session is not None:
            return session.execute(stmt).first() is not None
        with self.db.session() as own:
            return own.execute(stmt).first() is not None

    def release(self, key: str, now: datetime | None = None) -> bool:
        """Makes the held entry ``key`` pending and due at once; False if it is not held."""
        return self._update_held(key, state=OutboxState.PENDING,
                                 next_attempt_at=now or utc_now())

    def abandon(self, key: str, error: str) -> bool:
        """Fails the held entry ``key`` for ``error`` (it can never be released); False if it
        is not held. The row stays, so its key is not enqueued again."""
        return self._update_held(key, state=OutboxState.FAILED,
                                 last_error=error[:MAX_ERROR_CHARS])

    def discard(self, key: str) -> bool:
        """Deletes the held entry ``key``, a message that turned out not to be owed; False if
        it is not held."""
        with self.db.session() as session:
            return session.execute(
                delete(OutboxRow)
                .where(OutboxRow.key == key, OutboxRow.state == OutboxState.HELD)).rowcount == 1

    def claim_batch(self, limit: int, now: datetime | None = None) -> list[Entry]:
        """Lease up to ``limit`` due pending entries, oldest first.

        ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite has no row locks and serializes writers
        with BEGIN IMMEDIATE instead) lets concurrent workers each take different rows without
        waiting on one another.
        """
        now = now or utc_now()
        with self.db.session() as session:
            rows = session.scalars(
                select(OutboxRow)
                .where(OutboxRow.state == OutboxState.PENDING, OutboxRow.next_attempt_at <= now)
                .order_by(OutboxRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True)).all()
            for row in rows:
                row.attempts += 1
                row.next_attempt_at = now + timedelta(seconds=self.lease_s)
            session.flush()
            return [Entry.of(row) for row in rows]

    def mark_sent(self, ids: Iterable[int], tx_hash: str, timeout_height: int | None = None,
                  now: datetime | None = None) -> None:
        """Record that a broadcast tx carries these entries; the worker then confirms it. The
        tx's ``timeout_height`` (None: it has none) lets any process tell when it is lost."""
        self._update(ids, state=OutboxState.SENT, tx_hash=tx_hash,
                     timeout_height=timeout_height, sent_at=now or utc_now())

    def rewrite(self, entry_id: int, message: Message) -> None:
        """Stores ``message`` as the entry's payload again, in place of bytes that no longer
        decode; its key, state and attempts stay."""
        self._update([entry_id], type_url=type_url(message), payload=message.SerializeToString())

    def mark_committed(self, ids: Iterable[int]) -> None:
        self._update(ids, state=OutboxState.COMMITTED)

    def mark_retry(self, ids: Iterable[int], error: str,
                   now: datetime | None = None) -> list[Entry]:
        """Schedule another attempt with exponential backoff, or fail entries out of attempts.

        Returns the entries that became ``failed``, for the caller to report.
        """
        now = now or utc_now()
        failed = []
        with self.db.session() as session:
            rows = session.scalars(select(OutboxRow).where(OutboxRow.id.in_(list(ids)))).all()
            for row in rows:
                row.last_error = error[:MAX_ERROR_CHARS]
                row.sent_at = None
                if row.attempts >= self.max_attempts:
                    row.state = OutboxState.FAILED
                    failed.append(row)
                else:
                    row.state = OutboxState.PENDING
                    row.next_attempt_at = now + timedelta(seconds=self.backoff_s(row.attempts))
            session.flush()
            return [Entry.of(row) for row in failed]

    def postpone(self, ids: Iterable[int], error: str, delay_s: float,
                 now: datetime | None = None) -> None:
        """Hands claimed entries back, due again in ``delay_s``, without counting the claim as
        an attempt: the chain node could not be reached, so nothing judged them. Backing off
        instead would leave a finish waiting long after its chain node is back, while its
        inference nears its expiry, and a long outage would fail entries for good."""
        now = now or utc_now()
        with self.db.session() as session:
            for row in session.scalars(select(OutboxRow).where(OutboxRow.id.in_(list(ids)))):
                row.last_error = error[:MAX_ERROR_CHARS]
                row.attempts = max(row.attempts - 1, 0)
                row.state = OutboxState.PENDING
                row.next_attempt_at = now + timedelta(seconds=delay_s)
            session.flush()

    def backoff_s(self, attempts: int) -> float:
        """Delay after the ``attempts``-th failed attempt: base, 2×base, 4×base, ... up to cap."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** max(attempts - 1, 0))

    def sent(self, limit: int) -> list[Entry]:
        """Entries in broadcast txs not yet confirmed, oldest tx first."""
        with self.db.session() as session:
            rows = session.scalars(select(OutboxRow)
                                   .where(OutboxRow.state == OutboxState.SENT)
                                   .order_by(OutboxRow.sent_at, OutboxRow.id)
                                   .limit(limit)).all()
            return [Entry.of(row) for row in rows]

    def get(self, key: str) -> Entry | None:
        with self.db.session() as session:
            row = session.scalar(select(OutboxRow).where(OutboxRow.key == key))
            return Entry.of(row) if row else None

    def with_prefix(self, prefix: str, state: OutboxState | None = None) -> list[Entry]:
        """Every entry whose key starts with ``prefix``, in ``state`` (None: in any state),
        oldest first."""
        query = select(OutboxRow).where(OutboxRow.key.startswith(prefix, autoescape=True))
        if state is not None:
            query = query.where(OutboxRow.state == state)
        with self.db.session() as session:
            return [Entry.of(row) for row in session.scalars(query.order_by(OutboxRow.id))]

    def pending_count(self) -> int:
        """Entries still owed to the chain: pending, held or sent, but not yet committed or
        failed."""
        owed = [OutboxState.PENDING, OutboxState.HELD, OutboxState.SENT]
        with self.db.session() as session:
            return session.scalar(select(func.count()).select_from(OutboxRow).where(
                OutboxRow.state.in_(owed))) or 0

    def depth(self) -> tuple[dict[OutboxState, int], datetime | None]:
        """Entries per state, and when the oldest entry still owed (pending or sent) was
        enqueued (None when none is). A held entry waits on purpose, for as long as its
        owner needs: counting its age would read as a chain that takes no txs."""
        owed = [OutboxState.PENDING, OutboxState.SENT]
        with self.db.session() as session:
            counts = dict(session.execute(select(OutboxRow.state, func.count())
                                          .group_by(OutboxRow.state)).all())
            oldest = session.scalar(select(func.min(OutboxRow.created_at))
                                    .where(OutboxRow.state.in_(owed)))
            return counts, oldest

    def _update_held(self, key: str, **values: object) -> bool:
        with self.db.session() as session:
            return session.execute(
                update(OutboxRow)
                .where(OutboxRow.key == key, OutboxRow.state == OutboxState.HELD)
                .values(**values)).rowcount == 1

    def _update(self, ids: Iterable[int], **values: object) -> None:
        with self.db.session() as session:
            session.execute(update(OutboxRow).where(OutboxRow.id.in_(list(ids))).values(**values))
