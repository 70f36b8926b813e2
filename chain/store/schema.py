"""The SQLite file layout, and the settings that make a commit survive kill -9 and power loss."""

import sqlite3

from chain.store.merkle import EMPTY_APP_HASH

SCHEMA_VERSION = 1

# state: the latest value of every live key, with its bucket so a bucket can be rehashed alone.
# history: every change, (key, height, value or NULL for a deletion), for reads at past heights.
# buckets: bucket hashes, so opening the store does not rescan the state.
# head: the last committed height and app hash, and the earliest height still readable.
# node_meta: the node's own bookkeeping, outside the app hash.
_SCHEMA = f"""
BEGIN;
CREATE TABLE head (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    height INTEGER NOT NULL,
    app_hash BLOB NOT NULL,
    earliest INTEGER NOT NULL
);
INSERT INTO head VALUES (0, 0, X'{EMPTY_APP_HASH.hex()}', 0);
CREATE TABLE state (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    bucket INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX state_by_bucket ON state (bucket, key);
CREATE TABLE history (
    key BLOB NOT NULL,
    height INTEGER NOT NULL,
    value BLOB,
    PRIMARY KEY (key, height)
) WITHOUT ROWID;
CREATE INDEX history_by_height ON history (height);
CREATE TABLE buckets (bucket INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE node_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""


def connect(target: str) -> sqlite3.Connection:
    """Opens (creating if new) a store database; `target` is a file path or ":memory:"."""
    # isolation_level=None: the store issues BEGIN/COMMIT itself, so a block is one transaction.
    # check_same_thread=False: queries may come from server threads; the store serializes them.
    db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if target != ":memory:" and mode != "wal":
        raise RuntimeError(f"{target}: SQLite refused WAL mode (got {mode})")
    # FULL fsyncs the WAL at every commit: a block reported committed is on disk.
    db.execute("PRAGMA synchronous = FULL")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        db.executescript(_SCHEMA)
    elif version != SCHEMA_VERSION:
        raise RuntimeError(f"{target}: store schema {version}, this code reads {SCHEMA_VERSION}")
    return db
