"""Brings a database written by an older API node up to the current schema, in place.

Two steps. Columns a table gained since (nullable ones, such as the delivery a payload row
keeps) are added empty to an older table, which the rows' readers take as "not recorded".
And outbox entries used to name their message by a kind of the node's own
("start_inference") in a ``kind`` column; they now carry the message's protobuf type URL
("/inference.v1.MsgStartInference") in ``type_url``, which decodes them without a hand-kept
table. The step adds ``type_url``, fills it from each old row's kind and drops ``kind``, in one
transaction that holds the table's lock, so API node processes that share a database and start
together upgrade it once; entries keep their keys, states and attempts.
"""

from sqlalchemy import Column, Connection, Engine, Table, inspect, text

# The kinds older nodes wrote, with the message each one named: fixed history, not a registry.
LEGACY_KINDS = {
    "start_inference": "/inference.v1.MsgStartInference",
    "finish_inference": "/inference.v1.MsgFinishInference",
    "commit_seed": "/inference.v1.MsgCommitSeed",
    "claim_rewards": "/inference.v1.MsgClaimRewards",
    "validation": "/inference.v1.MsgValidation",
    "poc": "/inference.v1.MsgSubmitPoc",
    "poc_check": "/inference.v1.MsgPocValidation",
}


def upgrade_outbox(engine: Engine, type_url: Column[str]) -> None:
    """Moves an outbox with a ``kind`` column to ``type_url`` (the column as the schema
    declares it); a current outbox is left alone."""
    if "kind" not in _columns(engine, "outbox"):
        return
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE (store.py), the write lock
        if postgres:
            connection.execute(text("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"))
        if "kind" not in _columns(connection, "outbox"):
            return  # another process upgraded it while this one waited for the lock
        column_type = type_url.type.compile(dialect=engine.dialect)
        connection.execute(text(f"ALTER TABLE outbox ADD COLUMN type_url {column_type}"))
        cases = " ".join(f"WHEN :kind{i} THEN :url{i}" for i in range(len(LEGACY_KINDS)))
        names = {f"kind{i}": kind for i, kind in enumerate(LEGACY_KINDS)}
        urls = {f"url{i}": url for i, url in enumerate(LEGACY_KINDS.values())}
        # A kind no node wrote stays as it was: it decodes as no message, and the outbox
        # fails the entry with that reason instead of losing it silently.
        connection.execute(text(f"UPDATE outbox SET type_url = CASE kind {cases} ELSE kind END"),
                           {**names, **urls})
        if postgres:
            connection.execute(text("ALTER TABLE outbox ALTER COLUMN type_url SET NOT NULL"))
        connection.execute(text("ALTER TABLE outbox DROP COLUMN kind"))


def add_missing_columns(engine: Engine, table: Table) -> None:
    """Adds the columns of ``table`` (as the schema declares it) that the database's table
    lacks; each must be nullable, so the rows already there need no value. Under the table's
    lock, and looked at again once it is held, like the outbox's step."""
    if not _missing(engine, table):
        return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"LOCK TABLE {table.name} IN ACCESS EXCLUSIVE MODE"))
        for column in _missing(connection, table):
            if not column.nullable:
                raise ValueError(f"{table.name}.{column.name} is not nullable: rows already "
                                 f"stored would need a value, so this step cannot add it")
            column_type = column.type.compile(dialect=engine.dialect)
            connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} "
                                    f"{column_type}"))


def _missing(bind: Engine | Connection, table: Table) -> list[Column]:
    present = _columns(bind, table.name)
    return [column for column in table.columns if column.name not in present]


def _columns(bind: Engine | Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(bind).get_columns(table)}
