"""The chain's state: committed blocks in SQLite, the block being executed in an Overlay.

A block runs in `begin_block()`'s overlay; FinalizeBlock reports `app_hash_of(overlay)`, and
Commit calls `commit(overlay, height)`, which writes the block's changes, the touched bucket hashes,
the new height and app hash, and the node's metadata in one SQLite transaction: after a crash the
file holds the previous block or the new one, never a mix. Every change is also kept as a history
row (key, height, value or NULL), so queries can read any height that `prune` has not dropped.
"""

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from types import TracebackType

from chain import failpoint
from chain.store.errors import HeightUnavailable, RestoreMismatch, StaleOverlay, StoreCorrupted
from chain.store.merkle import EMPTY_BUCKET_HASH, BucketTree, bucket_hash, bucket_of
from chain.store.overlay import Overlay, merge
from chain.store.schema import connect

# Range reads fetch this many rows per statement instead of holding a cursor open for as long as
# the caller takes, which would keep the lock and block commits.
_PAGE = 512
# Under SQLite's default limit of 32,766 parameters per statement.
_BUCKETS_PER_STATEMENT = 500
# What one committed-state layer remembers of its reads (keys plus scanned entries) at most.
_MAX_REMEMBERED = 200_000
# What the remembered reads answer for a key not read yet (None is a key known absent).
_UNREAD = object()
# The latest values the store keeps in memory across blocks at most, and the largest it keeps:
# params, participants, accounts and balances are read by nearly every block, while large
# values (an inference's record and artifact) are rarely read again once their block is done.
_LATEST_MAX_ENTRIES = 65_536
_LATEST_MAX_VALUE = 4_096

_LATEST = "SELECT key, value FROM state WHERE key >= :start {upper} ORDER BY key LIMIT :page"
# SQLite takes the bare `value` from the row holding MAX(height): the key's value as of :height.
_AT_HEIGHT = """SELECT key, value, MAX(height) FROM history
    WHERE key >= :start {upper} AND height <= :height GROUP BY key ORDER BY key LIMIT :page"""
# Pruning up to :cutoff drops the rows that a newer row at or before :cutoff supersedes; rows
# superseded at or before the previous cutoff :old went at the previous prune.
_PRUNE_SUPERSEDED = """DELETE FROM history WHERE (key, height) IN (
    SELECT older.key, older.height FROM history AS newer
    JOIN history AS older ON older.key = newer.key AND older.height < newer.height
    WHERE newer.height > :old AND newer.height <= :cutoff)"""
# A deletion left as a key's last row before :cutoff reads the same as no row at all.
_PRUNE_TOMBSTONES = """DELETE FROM history
    WHERE value IS NULL AND height >= :old AND height < :cutoff"""


def _prefix_end(prefix: bytes) -> bytes | None:
    """The least key above every key that starts with `prefix`; None when there is none."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class _Committed:
    """The bottom layer of a block overlay: the committed state at the height it was begun on.

    Reads fail once another block is committed, rather than silently mixing two states.
    Since that state cannot change under it, what it read is remembered for the layer's life
    (one block, or one mempool's check state until the next Commit): a block reads the same
    params, participants and accounts at almost every tx, and SQLite is then asked once. A
    prefix is remembered only once it was iterated to its end.
    """

    def __init__(self, store: "Store", height: int) -> None:
        self.store = store
        self.height = height
        self._reads: dict[bytes, bytes | None] = {}
        self._scans: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self._remembered = 0

    def check(self) -> None:
        if self.store.height != self.height:
            raise StaleOverlay(f"overlay begun at height {self.height}, "
                               f"store is at {self.store.height}")

    def get(self, key: bytes) -> bytes | None:
        self.check()
        value = self._reads.get(key, _UNREAD)
        if value is not _UNREAD:
            return value
        value = self.store.get(key)
        if self._remember(1):
            self._reads[key] = value
        return value

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        self.check()
        known = self._scans.get(prefix)
        if known is not None:
            for entry in known:
                self.check()
                yield entry
            return
        rows = []
        for key, value in self.store._scan(_LATEST, prefix):
            self.check()
            rows.append((key, value))
            yield key, value
        if self._remember(len(rows) + 1):
            self._scans[prefix] = rows

    def _remember(self, entries: int) -> bool:
        """Whether ``entries`` more fit under _MAX_REMEMBERED; a check state that lives long
        over a large state stops remembering rather than holding the state in memory."""
        if self._remembered + entries > _MAX_REMEMBERED:
            return False
        self._remembered += entries
        return True


@dataclass(frozen=True)
class _Preview:
    """An overlay's app hash and the tree nodes behind it, kept so commit need not rehash."""

    overlay: Overlay
    revision: int
    buckets: dict[int, bytes]
    nodes: dict[int, bytes]
    app_hash: bytes


class Store:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._lock = threading.RLock()
        self._height, self._app_hash, self._earliest = db.execute(
            "SELECT height, app_hash, earliest FROM head").fetchone()
        self._tree = BucketTree(dict(db.execute("SELECT bucket, hash FROM buckets")))
        if self._tree.root != self._app_hash:
            raise StoreCorrupted(f"bucket hashes give {self._tree.root.hex()}, "
                                 f"head says {self._app_hash.hex()}")
        self._preview_cache: _Preview | None = None
        # Committed values by key (None: absent), kept equal to the state by every commit and
        # restore: each block's first read of a hot key would otherwise ask SQLite again.
        self._latest: dict[bytes, bytes | None] = {}

    @classmethod
    def open(cls, path: Path) -> "Store":
        return cls(connect(str(path)))

    @classmethod
    def memory(cls) -> "Store":
        """A throwaway store for unit tests: the same code on an in-memory database."""
        return cls(connect(":memory:"))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    @property
    def height(self) -> int:
        return self._height

    @property
    def app_hash(self) -> bytes:
        return self._app_hash

    @property
    def earliest_height(self) -> int:
        """The lowest height `get_at` and `iterate_at` still answer for; `prune` raises it."""
        return self._earliest

    def begin_block(self) -> Overlay:
        return Overlay(_Committed(self, self._height))

    def app_hash_of(self, overlay: Overlay) -> bytes:
        return self._preview(overlay).app_hash

    def commit(self, overlay: Overlay, height: int,
               meta: Mapping[str, bytes] | None = None) -> bytes:
        """Persists the block and `meta` atomically and returns the new app hash.

        The first commit may be at any height >= 1 (CometBFT's genesis initial_height); each later
        one must be the next height.
        """
        in_sequence = height >= 1 if self._height == 0 else height == self._height + 1
        if type(height) is not int or not in_sequence:
            raise ValueError(f"cannot commit height {height!r} after height {self._height}")
        with self._lock:
            preview = self._preview(overlay)
            self._write_block(overlay.changes, height, preview.buckets, preview.app_hash,
                              meta or {})
            # Only once SQLite has committed, so a failed commit leaves the store as it was.
            self._tree.apply(preview.nodes)
            self._height, self._app_hash = height, preview.app_hash
            self._preview_cache = None
            for key, value in overlay.changes.items():
                if key in self._latest:
                    self._remember_latest(key, value)
        return preview.app_hash

    def restore(self, height: int, app_hash: bytes, entries: Iterable[tuple[bytes, bytes]],
                meta: Mapping[str, bytes]) -> None:
        """Fills an empty store with the state at `height` (state sync), if it hashes to
        `app_hash`; otherwise raises RestoreMismatch and the store stays empty.

        Everything is written in one SQLite transaction, checked against the recomputed root
        before it commits; keys must come in ascending order. History starts at `height`.
        """
        if type(height) is not int or height < 1:
            raise ValueError(f"cannot restore height {height!r}")
        with self._lock:
            if self._height != 0:
                raise ValueError(f"cannot restore into a store at height {self._height}: "
                                 "state sync needs an empty store")
            with self._transaction() as db:
                for page in _pages(entries):
                    db.executemany("INSERT INTO state (key, value, bucket) VALUES (?, ?, ?)",
                                   [(k, v, bucket_of(k)) for k, v in page])
                    db.executemany("INSERT INTO history (key, height, value) VALUES (?, ?, ?)",
                                   [(k, height, v) for k, v in page])
                rows = db.execute("SELECT bucket, key, value FROM state ORDER BY bucket, key")
                buckets = {bucket: bucket_hash((key, value) for _, key, value in group)
                           for bucket, group in groupby(rows, key=lambda row: row[0])}
                tree = BucketTree(buckets)
                if tree.root != app_hash:
                    raise RestoreMismatch(f"the restored state hashes to {tree.root.hex()}, "
                                          f"not the trusted {app_hash.hex()}")
                db.executemany("INSERT INTO buckets (bucket, hash) VALUES (?, ?)",
                               buckets.items())
                db.execute("UPDATE head SET height = ?, app_hash = ?, earliest = ?",
                           (height, app_hash, height))
                for name, value in meta.items():
                    _put_meta(db, name, value)
            self._tree = tree
            self._height, self._app_hash, self._earliest = height, app_hash, height
            self._preview_cache = None
            self._latest.clear()

    def get(self, key: bytes) -> bytes | None:
        """The latest committed value."""
        with self._lock:
            value = self._latest.get(key, _UNREAD)
            if value is _UNREAD:
                row = self._db.execute("SELECT value FROM state WHERE key = ?",
                                       (key,)).fetchone()
                value = None if row is None else row[0]
                self._remember_latest(key, value)
        return value

    def _remember_latest(self, key: bytes, value: bytes | None) -> None:
        """Keeps ``value`` as ``key``'s latest, or forgets the key when the value is too large
        to keep; a full memory starts over, which only costs SQLite reads."""
        if value is not None and len(value) > _LATEST_MAX_VALUE:
            self._latest.pop(key, None)
            return
        if len(self._latest) >= _LATEST_MAX_ENTRIES and key not in self._latest:
            self._latest.clear()
        self._latest[key] = value

    def get_at(self, key: bytes, height: int) -> bytes | None:
        with self._lock:
            self._check_readable(height)
            row = self._db.execute(
                "SELECT value FROM history WHERE key = ? AND height <= ? "
                "ORDER BY height DESC LIMIT 1", (key, height)).fetchone()
        return None if row is None else row[0]

    def iterate_at(self, prefix: bytes, height: int) -> Iterator[tuple[bytes, bytes]]:
        """Ascending keys under `prefix` as committed at `height`.

        History at or below a committed height never changes, so the pages agree with each other
        even if blocks are committed meanwhile.
        """
        with self._lock:
            self._check_readable(height)
        return ((key, value) for key, value, _ in self._scan(_AT_HEIGHT, prefix, height=height)
                if value is not None)

    def prune(self, keep_recent: int) -> int:
        """Drops history so that only the last `keep_recent` heights stay readable.

        Each key keeps its last row at or before the new earliest height, so reads there still
        work. Returns the number of history rows deleted.
        """
        if keep_recent < 1:
            raise ValueError(f"keep_recent must be at least 1, got {keep_recent}")
        with self._lock:
            cutoff = self._height - keep_recent + 1
            if cutoff <= self._earliest:
                return 0
            bounds = {"old": self._earliest, "cutoff": cutoff}
            with self._transaction() as db:
                deleted = db.execute(_PRUNE_SUPERSEDED, bounds).rowcount
                deleted += db.execute(_PRUNE_TOMBSTONES, bounds).rowcount
                db.execute("UPDATE head SET earliest = ?", (cutoff,))
            self._earliest = cutoff
        return deleted

    def footprint(self) -> dict[str, int]:
        """Rows and key + value bytes of the current state, its history and the node's
        bookkeeping (tx results): what the store holds beside SQLite's own overhead."""
        with self._lock:
            figures = {}
            for table, name_column in (("state", "key"), ("history", "key"),
                                       ("node_meta", "name")):
                rows, size = self._db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(LENGTH({name_column}) + "
                    f"COALESCE(LENGTH(value), 0)), 0) FROM {table}").fetchone()
                figures[f"{table}_rows"], figures[f"{table}_bytes"] = rows, size
            return figures

    def put_meta(self, name: str, value: bytes) -> None:
        """Saves node bookkeeping at once; pass `meta` to `commit` to save it with a block."""
        with self._transaction() as db:
            _put_meta(db, name, value)

    def meta_between(self, start: str, end: str) -> list[tuple[str, bytes]]:
        """The bookkeeping entries whose names sort in [start, end)."""
        with self._lock:
            return self._db.execute(
                "SELECT name, value FROM node_meta WHERE name >= ? AND name < ? ORDER BY name",
                (start, end)).fetchall()

    def drop_meta(self, names: Iterable[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM node_meta WHERE name = ?", [(n,) for n in names])

    def get_meta(self, name: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM node_meta WHERE name = ?",
                                   (name,)).fetchone()
        return None if row is None else row[0]

    def verify(self) -> None:
        """Rehashes every row and checks the stored bucket hashes and app hash against them.

        Reads the whole state: meant for tests and for an operator who suspects the disk.
        """
        with self._lock:
            stored = dict(self._db.execute("SELECT bucket, hash FROM buckets"))
            (recorded,) = self._db.execute("SELECT app_hash FROM head").fetchone()
            computed: dict[int, bytes] = {}
            rows = self._db.execute("SELECT bucket, key, value FROM state ORDER BY bucket, key")
            for bucket, group in groupby(rows, key=lambda row: row[0]):
                entries = [(key, value) for _, key, value in group]
                for key, _ in entries:
                    if bucket_of(key) != bucket:
                        raise StoreCorrupted(f"key {key.hex()} filed under bucket {bucket}")
                computed[bucket] = bucket_hash(entries)
        for bucket in stored.keys() | computed.keys():
            if stored.get(bucket, EMPTY_BUCKET_HASH) != computed.get(bucket, EMPTY_BUCKET_HASH):
                raise StoreCorrupted(f"bucket {bucket} does not match its rows")
        root = BucketTree(computed).root
        if root != recorded or root != self._app_hash:
            raise StoreCorrupted(f"rows hash to {root.hex()}, head says {recorded.hex()}")

    def _preview(self, overlay: Overlay) -> _Preview:
        base = overlay.parent
        if not isinstance(base, _Committed) or base.store is not self:
            raise TypeError("pass the overlay that this store's begin_block() returned")
        base.check()
        cached = self._preview_cache
        if cached and cached.overlay is overlay and cached.revision == overlay.revision:
            return cached
        by_bucket: dict[int, dict[bytes, bytes | None]] = {}
        for key, value in overlay.changes.items():
            by_bucket.setdefault(bucket_of(key), {})[key] = value
        committed = self._bucket_rows(by_bucket)
        buckets: dict[int, bytes] = {}
        for bucket, changes in by_bucket.items():
            rows = committed.get(bucket, [])
            held = {key for key, _ in rows}
            # A deletion of a key the state never held (a record made and dropped within the
            # block: an expiry, an escrow, a status index) changes nothing; a bucket of only
            # such deletions keeps its hash, and its 16 tree nodes need no rehash.
            effective = sorted((k, v) for k, v in changes.items() if v is not None or k in held)
            if effective:
                buckets[bucket] = bucket_hash(merge(iter(rows), effective) if rows else effective)
        app_hash, nodes = self._tree.preview(buckets)
        self._preview_cache = _Preview(overlay, overlay.revision, buckets, nodes, app_hash)
        return self._preview_cache

    def _bucket_rows(self, buckets: Iterable[int]) -> dict[int, list[tuple[bytes, bytes]]]:
        """The committed rows of these buckets, each bucket's in key order, read a few
        hundred buckets per statement: a block touches a bucket for nearly every key it
        changes, and one statement per bucket cost more than hashing them."""
        found: dict[int, list[tuple[bytes, bytes]]] = {}
        ordered = sorted(buckets)
        with self._lock:
            for first in range(0, len(ordered), _BUCKETS_PER_STATEMENT):
                chunk = ordered[first:first + _BUCKETS_PER_STATEMENT]
                rows = self._db.execute(
                    f"SELECT bucket, key, value FROM state WHERE bucket IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY bucket, key", chunk)
                for bucket, key, value in rows:
                    found.setdefault(bucket, []).append((key, value))
        return found

    def _write_block(self, changes: Mapping[bytes, bytes | None], height: int,
                     buckets: dict[int, bytes], app_hash: bytes,
                     meta: Mapping[str, bytes]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO state (key, value, bucket) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, v, bucket_of(k)) for k, v in changes.items() if v is not None])
            db.executemany("DELETE FROM state WHERE key = ?",
                           [(k,) for k, v in changes.items() if v is None])
            db.executemany("INSERT INTO history (key, height, value) VALUES (?, ?, ?)",
                           [(k, height, v) for k, v in changes.items()])
            db.executemany("INSERT OR REPLACE INTO buckets (bucket, hash) VALUES (?, ?)",
                           buckets.items())
            db.execute("UPDATE head SET height = ?, app_hash = ?", (height, app_hash))
            for name, value in meta.items():
                _put_meta(db, name, value)
            failpoint.hit(failpoint.INSIDE_COMMIT, height)

    def _check_readable(self, height: int) -> None:
        if not self._earliest <= height <= self._height:
            raise HeightUnavailable(f"height {height} is outside the readable "
                                    f"{self._earliest}..{self._height}")

    def _scan(self, query: str, prefix: bytes, **params: int) -> Iterator[tuple]:
        """Runs a key-range query page by page; see _PAGE."""
        end = _prefix_end(prefix)
        sql = query.format(upper="" if end is None else "AND key < :end")
        start = prefix
        while True:
            with self._lock:
                rows = self._db.execute(
                    sql, {**params, "start": start, "end": end, "page": _PAGE}).fetchall()
            yield from rows
            if len(rows) < _PAGE:
                return
            start = rows[-1][0] + b"\x00"  # the least key above the last one read

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise


def _pages(entries: Iterable[tuple[bytes, bytes]]) -> Iterator[list[tuple[bytes, bytes]]]:
    """Entries in lists of _PAGE * 16, so a large restore is never held in memory at once."""
    page: list[tuple[bytes, bytes]] = []
    for entry in entries:
        page.append(entry)
        if len(page) == _PAGE * 16:
            yield page
            page = []
    if page:
        yield page


def _put_meta(db: sqlite3.Connection, name: str, value: bytes) -> None:
    if type(name) is not str or type(value) is not bytes:
        raise TypeError(f"meta is str -> bytes, got {name!r} -> {type(value).__name__}")
    db.execute("INSERT OR REPLACE INTO node_meta (name, value) VALUES (?, ?)", (name, value))
