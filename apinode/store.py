"""The API node's local storage: payloads, request log, API keys, the developers' signed requests
already taken, the outbox of pending chain txs and the validator's epoch seeds.

One SQLAlchemy schema serves SQLite (the default: a file next to the node's config, nothing to
install) and PostgreSQL (several API node processes sharing one database). Tables are created on
open (a table an older database lacks, such as ``used_requests``, is added then); the schema is
small and nearly additive, so there is no migrations framework: the few steps that change an
existing table of an older database (a renamed column, a column added since) are in
``apinode/store_upgrade.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Engine,
    Enum,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from apinode.store_upgrade import add_missing_columns, upgrade_outbox

SQLITE_BUSY_TIMEOUT_MS = 10_000


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend.

    SQLite has no time zones and hands back naive values; storing naive UTC there and tagging it
    UTC on the way out keeps comparisons (``next_attempt_at <= now``) right on both backends.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one, e.g. datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[int]: JSON()}


class Payload(Base):
    """What an executor (or TA) keeps of one inference to serve validators that ask for it later.

    The chain holds only hashes of the prompt and output plus the artifact; the full texts live
    here, so a validator can re-score ``prompt_token_ids ‖ output_token_ids``.
    """

    __tablename__ = "payloads"

    inference_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    prompt: Mapped[dict[str, Any]]  # the request as the developer sent it (messages or prompt)
    prompt_token_ids: Mapped[list[int]]
    output_text: Mapped[str] = mapped_column(Text, default="")
    output_token_ids: Mapped[list[int]] = mapped_column(default=list)
    artifact: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The transfer agent's delivery the executor's finish was made with, written with that
    # finish: with the output above it makes the finish (and the relay) again, byte for byte,
    # should their outbox rows be damaged.
    delivered_tokens: Mapped[int | None]
    delivery_signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class RequestLog(Base):
    """One row per API request, refused ones included, for operators and usage accounting."""

    __tablename__ = "request_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    inference_id: Mapped[str | None] = mapped_column(String(128), index=True)
    developer: Mapped[str | None] = mapped_column(String(128), index=True)
    model: Mapped[str | None] = mapped_column(String(256))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(32))  # e.g. "ok", "error", "executor_failed"
    http_status: Mapped[int]
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)


class OwedDelivery(Base):
    """A transfer agent's closing delivery signature (of the whole output, or of the part a
    stream that broke off passed on) not yet handed to its executor. The developer already
    has that output and the signature is what the executor is paid for, so it is kept until
    the executor took or refused it, and an agent that restarts meanwhile hands it over."""

    __tablename__ = "owed_deliveries"

    inference_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    executor: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    output_tokens: Mapped[int]
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)


class ApiKeyRow(Base):
    """A bearer API key this transfer agent issued: only its sha256 is kept."""

    __tablename__ = "api_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    developer: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class UsedRequest(Base):
    """A developer's signed request this transfer agent took (apinode/request_auth.py), kept
    until its timestamp is out of the freshness window, so the request is never taken twice:
    not after a restart, nor by another API node process on the same database."""

    __tablename__ = "used_requests"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the message
    developer: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class OutboxState(enum.StrEnum):
    PENDING = "pending"  # waiting to be (re)submitted once next_attempt_at has passed
    HELD = "held"  # kept back until its owner releases it (the opening of a sealed report)
    SENT = "sent"  # in a broadcast tx; waiting to see that tx on chain
    COMMITTED = "committed"  # the tx is in a block and succeeded
    FAILED = "failed"  # gave up after max attempts; last_error says why


class OutboxRow(Base):
    """A chain message the node owes the chain, kept until a committed tx carries it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # The message's protobuf type URL, e.g. "/inference.v1.MsgStartInference".
    type_url: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(256), unique=True)  # dedupe: "finish_inference:<id>"
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the serialized message
    # A plain VARCHAR (no native enum, no CHECK constraint): a state added later needs no
    # migration, though a node older than that state cannot read the rows in it.
    state: Mapped[OutboxState] = mapped_column(
        Enum(OutboxState, native_enum=False, length=16,
             values_callable=lambda states: [s.value for s in states]),
        default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utc_now)
    tx_hash: Mapped[str | None] = mapped_column(String(128), index=True)
    sent_at: Mapped[datetime | None]
    # The sent tx's timeout height: once the chain has committed it without the tx, the tx can
    # never land, which a process restarted since sending can tell only from this.
    timeout_height: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class ValidatorSeed(Base):
    """The secret seed a validator commits to for one epoch (docs/design.md §6.1).

    Written before its hash is queued for the chain: a node that restarts after committing
    still knows which inferences the seed assigns it and can reveal it once the epoch is over.
    Keyed by validator too, so a database shared by several API node processes, or reused
    with another key, never hands one participant's seed to another.
    """

    __tablename__ = "validator_seeds"

    validator: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


def _configure_sqlite(engine: Engine) -> None:
    """WAL so readers never block the writer, a busy timeout so writers queue instead of failing,
    and BEGIN IMMEDIATE so a read-then-write transaction (an outbox claim) takes the write lock
    up front: a deferred one could not upgrade after another process wrote, and two processes on
    one file could claim the same entry."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not the driver, emits BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine plus a session factory; the one handle the API node passes around."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Database:
        """Open (and create the tables of) ``sqlite:///PATH``, ``postgresql+psycopg://...``,
        or a bare file path, which means SQLite."""
        if "://" not in url:
            url = f"sqlite:///{url}"
        engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        Base.metadata.create_all(engine)
        upgrade_outbox(engine, OutboxRow.__table__.c.type_url)
        add_missing_columns(engine, Payload.__table__)
        add_missing_columns(engine, OutboxRow.__table__)
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block exits, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
