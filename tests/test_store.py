"""The chain store: overlays, the app hash, atomic commits, crash recovery and versioned reads."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from chain.store import (
    EMPTY_APP_HASH,
    HeightUnavailable,
    Overlay,
    StaleOverlay,
    Store,
    StoreCorrupted,
)

TESTS = Path(__file__).resolve().parent


def committed(store: Store, changes: dict[bytes, bytes | None], meta: dict | None = None) -> bytes:
    overlay = store.begin_block()
    for key, value in changes.items():
        if value is None:
            overlay.delete(key)
        else:
            overlay.set(key, value)
    return store.commit(overlay, store.height + 1, meta=meta)


def hash_after(*blocks: dict[bytes, bytes | None]) -> bytes:
    store = Store.memory()
    for block in blocks:
        committed(store, block)
    return store.app_hash


# --- overlays -------------------------------------------------------------------------------


def test_empty_store_has_the_documented_hash():
    store = Store.memory()
    assert store.height == 0
    assert store.app_hash == EMPTY_APP_HASH == bytes.fromhex(
        "d83389ac9a207fb7dbdc492fbb56b9482f19170699e224be64694cc885a3a2a2")
    assert store.get(b"a") is None
    store.verify()


def test_overlay_reads_its_writes_over_committed_state_until_commit():
    store = Store.memory()
    committed(store, {b"a": b"1", b"b": b"2"})
    block = store.begin_block()
    block.set(b"b", b"3")
    block.delete(b"a")
    block.set(b"c", b"")
    assert (block.get(b"a"), block.get(b"b"), block.get(b"c")) == (None, b"3", b"")
    assert (store.get(b"a"), store.get(b"b"), store.get(b"c")) == (b"1", b"2", None)
    store.commit(block, 2)
    assert (store.get(b"a"), store.get(b"b"), store.get(b"c")) == (None, b"3", b"")


def test_nested_branches_write_into_their_parent_and_dropped_ones_vanish():
    store = Store.memory()
    committed(store, {b"a": b"1"})
    block = store.begin_block()
    tx = block.branch()
    call = tx.branch()
    call.set(b"a", b"inner")
    call.delete(b"z")
    assert tx.get(b"a") == b"1"
    call.write()
    assert tx.get(b"a") == b"inner"
    assert block.get(b"a") == b"1"
    del tx, call  # a failed transaction: its branch is dropped

    assert block.get(b"a") == b"1"
    assert block.changes == {}
    tx = block.branch()
    tx.branch().set(b"b", b"2")  # written nowhere: dropped
    inner = tx.branch()
    inner.delete(b"a")
    inner.write()
    tx.write()
    assert block.get(b"a") is None
    assert block.get(b"b") is None
    assert dict(block.changes) == {b"a": None}
    assert tx.changes == {}  # write() empties the branch; it reads through to the parent


def test_a_block_overlay_is_committed_not_written():
    block = Store.memory().begin_block()
    with pytest.raises(TypeError):
        block.write()


@pytest.mark.parametrize("key, value", [("a", b"1"), (b"", b"1"), (bytearray(b"a"), b"1"),
                                        (b"a", "1"), (b"a", None)])
def test_keys_and_values_must_be_bytes(key, value):
    with pytest.raises(TypeError):
        Store.memory().begin_block().set(key, value)


def test_iterate_merges_layers_in_key_order_and_hides_deletions():
    store = Store.memory()
    committed(store, {b"p": b"-", b"p/1": b"1", b"p/3": b"3", b"p/5": b"5", b"p0": b"-",
                      b"p/\xff": b"ff"})
    block = store.begin_block()
    block.set(b"p/2", b"2")
    block.delete(b"p/3")
    block.set(b"p/5", b"five")
    tx = block.branch()
    tx.set(b"p/0", b"0")
    tx.delete(b"p/2")
    tx.delete(b"p/1")
    tx.set(b"p/1", b"one")
    assert list(tx.iterate(b"p/")) == [(b"p/0", b"0"), (b"p/1", b"one"), (b"p/5", b"five"),
                                      (b"p/\xff", b"ff")]
    assert list(block.iterate(b"p/")) == [(b"p/1", b"1"), (b"p/2", b"2"), (b"p/5", b"five"),
                                         (b"p/\xff", b"ff")]
    assert [k for k, _ in block.iterate(b"")] == [b"p", b"p/1", b"p/2", b"p/5", b"p/\xff", b"p0"]


def test_iterate_handles_prefixes_of_ff_bytes():
    store = Store.memory()
    committed(store, {b"\xfe": b"1", b"\xff": b"2", b"\xff\x00": b"3", b"\xff\xff": b"4"})
    block = store.begin_block()
    assert [k for k, _ in block.iterate(b"\xff")] == [b"\xff", b"\xff\x00", b"\xff\xff"]
    assert [k for k, _ in block.iterate(b"\xff\xff")] == [b"\xff\xff"]
    assert [k for k, _ in store.iterate_at(b"\xff", 1)] == [b"\xff", b"\xff\x00", b"\xff\xff"]


def test_iterate_sees_the_state_as_of_the_call():
    store = Store.memory()
    committed(store, {b"a": b"1"})
    block = store.begin_block()
    block.set(b"b", b"2")
    entries = block.iterate(b"")
    block.set(b"c", b"3")
    block.delete(b"b")
    assert list(entries) == [(b"a", b"1"), (b"b", b"2")]


def test_iterate_spans_many_pages():
    store = Store.memory()
    keys = [b"k%05d" % i for i in range(1300)]
    committed(store, {k: k for k in reversed(keys)})
    block = store.begin_block()
    block.delete(keys[700])
    expected = [(k, k) for k in keys if k != keys[700]]
    assert list(block.iterate(b"k")) == expected
    assert [k for k, _ in store.iterate_at(b"k", 1)] == keys


# --- the app hash ---------------------------------------------------------------------------


def test_app_hash_depends_only_on_the_final_key_value_set():
    reference = hash_after({b"a": b"1", b"b": b"2"})
    assert reference == hash_after({b"b": b"2", b"a": b"1"})
    assert reference == hash_after({b"c": b"3"}, {b"b": b"2"}, {b"a": b"1", b"c": None})
    assert reference == hash_after({b"a": b"0", b"b": b"2"}, {b"a": b"1", b"x": None})
    assert reference != EMPTY_APP_HASH
    assert hash_after({b"a": b"1"}, {b"a": None}) == EMPTY_APP_HASH


@pytest.mark.parametrize("other", [{b"a": b"1", b"b": b"3"}, {b"a": b"1"},
                                   {b"a": b"1", b"b": b"2", b"c": b""},
                                   {b"a": b"1", b"B": b"2"}, {b"a1": b"", b"b": b"2"}])
def test_app_hash_changes_when_the_state_does(other):
    assert hash_after(other) != hash_after({b"a": b"1", b"b": b"2"})


def test_a_block_touching_thousands_of_buckets_hashes_as_its_rows_do():
    """A block's touched buckets are read from SQLite a few hundred per statement; updates,
    deletions and new keys side by side in those buckets must hash as the rows themselves do
    (verify rehashes every row) and as the same state built in one block of new keys."""
    rng = random.Random(7)
    keys = [f"key-{i}".encode() for i in range(3_000)]
    store = Store.memory()
    committed(store, {key: b"first" for key in keys[:2_000]})
    changes = {key: None if rng.random() < 0.3 else str(rng.random()).encode()
               for key in rng.sample(keys, 1_500)}
    committed(store, changes)
    store.verify()
    final = {**{key: b"first" for key in keys[:2_000]}, **changes}
    assert store.app_hash == hash_after({k: v for k, v in final.items() if v is not None})


def test_app_hash_of_previews_the_commit_without_making_it():
    store = Store.memory()
    committed(store, {b"a": b"1"})
    before = store.app_hash
    block = store.begin_block()
    block.set(b"b", b"2")
    first = store.app_hash_of(block)
    assert (store.height, store.app_hash, store.get(b"b")) == (1, before, None)
    tx = block.branch()
    tx.set(b"c", b"3")
    tx.write()  # the overlay changed after the preview: the preview must not be reused
    second = store.app_hash_of(block)
    assert second not in (first, before)
    assert store.commit(block, 2) == second == store.app_hash
    assert second == hash_after({b"a": b"1", b"b": b"2", b"c": b"3"})


def test_commit_refuses_out_of_order_heights_and_foreign_or_stale_overlays():
    store = Store.memory()
    with pytest.raises(ValueError):
        store.commit(store.begin_block(), 0)
    store.commit(store.begin_block(), 5)  # a genesis initial_height above 1
    for height in (5, 7, True):
        with pytest.raises(ValueError):
            store.commit(store.begin_block(), height)
    block = store.begin_block()
    with pytest.raises(TypeError):
        store.commit(block.branch(), 6)
    with pytest.raises(TypeError):
        Store.memory().app_hash_of(block)
    stale = store.begin_block()
    store.commit(block, 6)
    with pytest.raises(StaleOverlay):
        store.commit(stale, 7)
    with pytest.raises(StaleOverlay):
        stale.get(b"a")
    with pytest.raises(StaleOverlay):
        list(stale.branch().iterate(b""))


def test_a_failed_commit_leaves_the_store_as_it_was(tmp_path):
    class Exploding(Mapping):
        """Fails after the block's rows are written, inside the SQLite transaction."""

        def __iter__(self) -> Iterator[str]:
            yield "ok"
            raise OSError("disk on fire")

        def __getitem__(self, name: str) -> bytes:
            return b"x"

        def __len__(self) -> int:
            return 2

    with Store.open(tmp_path / "state.db") as store:
        committed(store, {b"a": b"1"})
        height, app_hash = store.height, store.app_hash
        block = store.begin_block()
        block.set(b"a", b"2")
        with pytest.raises(OSError):
            store.commit(block, 2, meta=Exploding())
        assert (store.height, store.app_hash, store.get(b"a")) == (height, app_hash, b"1")
        assert store.get_meta("ok") is None
        with pytest.raises(TypeError):
            store.commit(block, 2, meta={"bad": "not bytes"})
        assert store.get_meta("bad") is None
        store.verify()
        assert store.commit(block, 2) == hash_after({b"a": b"2"})
    with Store.open(tmp_path / "state.db") as store:
        assert (store.height, store.get(b"a")) == (2, b"2")


# --- persistence ----------------------------------------------------------------------------


def test_reopen_restores_height_hash_values_and_meta(tmp_path):
    blocks = [{b"a": b"1", b"b": b"2"}, {b"a": None, b"c": b"3"}, {b"d": b"4"}]
    with Store.open(tmp_path / "state.db") as store:
        for i, block in enumerate(blocks[:2]):
            committed(store, block, meta={"results": b"block %d" % i})
        store.put_meta("node", b"n1")
        height, app_hash = store.height, store.app_hash
    with Store.open(tmp_path / "state.db") as store:
        assert (store.height, store.app_hash) == (height, app_hash)
        assert [store.get(k) for k in (b"a", b"b", b"c")] == [None, b"2", b"3"]
        assert (store.get_meta("results"), store.get_meta("node")) == (b"block 1", b"n1")
        assert store.get_meta("missing") is None
        store.verify()
        # Bucket hashes persisted by the first process carry on correctly in the second.
        committed(store, blocks[2])
        assert store.app_hash == hash_after(*blocks)


def test_the_latest_values_kept_in_memory_follow_every_commit(tmp_path):
    """The store answers hot keys from memory across blocks; after any mix of updates,
    deletions, creations and values too large to keep, every read must say what SQLite says
    (a second process opened on the same file reads SQLite afresh)."""
    rng = random.Random(3)
    keys = [f"key-{i}".encode() for i in range(200)]
    with Store.open(tmp_path / "state.db") as store:
        for _ in range(30):
            for key in rng.sample(keys, 50):
                store.get(key)  # absent keys are remembered as absent too
            values = [None, b"small", b"x" * 5_000, str(rng.random()).encode()]
            committed(store, {key: rng.choice(values) for key in rng.sample(keys, 40)})
            with Store.open(tmp_path / "state.db") as fresh:
                assert [store.get(key) for key in keys] == [fresh.get(key) for key in keys]


def test_verify_detects_rows_changed_behind_the_stores_back(tmp_path):
    with Store.open(tmp_path / "state.db") as store:
        committed(store, {b"a": b"1", b"b": b"2"})
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE state SET value = ? WHERE key = ?", (b"9", b"a"))
    db.close()
    with Store.open(tmp_path / "state.db") as store, pytest.raises(StoreCorrupted):
        store.verify()


def apply_block(overlay: Overlay, height: int) -> None:
    """A deterministic block for the crash test: sets, overwrites and deletes, through a branch."""
    overlay.set(b"height", b"%d" % height)
    overlay.set(b"k/%02d" % (height % 37), height.to_bytes(8, "big"))
    overlay.delete(b"k/%02d" % (height * 7 % 37))
    tx = overlay.branch()
    tx.set(b"t/%d" % (height % 5), b"x" * (height % 50))
    tx.write()


def commit_forever(path: str) -> None:
    """The crash test's child process: commits blocks and reports each one once it is durable."""
    store = Store.open(Path(path))
    while True:
        height = store.height + 1
        block = store.begin_block()
        apply_block(block, height)
        store.commit(block, height, meta={"last": b"%d" % height})
        print(height, flush=True)


def test_sigkill_at_a_random_moment_leaves_a_consistent_store(tmp_path):
    path = tmp_path / "state.db"
    replica = Store.memory()
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c",
             f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_store; "
             f"test_store.commit_forever({str(path)!r})"],
            cwd=TESTS.parent, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first, "the child exited before committing"
        delay = random.uniform(0, 0.1)
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        reported = [first, *child.stdout]
        child.wait()
        last_reported = int(reported[-1])

        with Store.open(path) as store:
            store.verify()
            # Every reported block is durable; at most the one in flight may also have landed.
            assert last_reported <= store.height <= last_reported + 1, delay
            assert store.get_meta("last") == b"%d" % store.height
            while replica.height < store.height:
                block = replica.begin_block()
                apply_block(block, replica.height + 1)
                replica.commit(block, replica.height + 1)
            assert store.app_hash == replica.app_hash
            assert list(store.iterate_at(b"", store.height)) == list(
                replica.iterate_at(b"", store.height))


# --- versioned reads and pruning ------------------------------------------------------------


def test_reads_at_past_heights():
    store = Store.memory()
    committed(store, {b"a": b"1", b"b": b"1"})
    committed(store, {b"a": b"2"})
    committed(store, {b"a": None, b"c": b"3"})
    committed(store, {b"a": b"4"})
    assert [store.get_at(b"a", h) for h in range(5)] == [None, b"1", b"2", None, b"4"]
    assert [store.get_at(b"b", h) for h in range(5)] == [None, b"1", b"1", b"1", b"1"]
    assert list(store.iterate_at(b"", 3)) == [(b"b", b"1"), (b"c", b"3")]
    assert list(store.iterate_at(b"", 2)) == [(b"a", b"2"), (b"b", b"1")]
    assert list(store.iterate_at(b"", 0)) == []
    assert store.get(b"a") == store.get_at(b"a", 4)
    with pytest.raises(HeightUnavailable):
        store.get_at(b"a", 5)
    with pytest.raises(HeightUnavailable):
        store.iterate_at(b"", 5)


def test_prune_keeps_every_height_in_the_window_readable():
    rng = random.Random(7)
    store = Store.memory()
    keys = [b"k%d" % i for i in range(6)]
    snapshots: dict[int, dict[bytes, bytes]] = {0: {}}
    deleted = 0
    for height in range(1, 41):
        state = dict(snapshots[height - 1])
        block = store.begin_block()
        for key in rng.sample(keys, 3):
            if rng.random() < 0.3:
                block.delete(key)
                state.pop(key, None)
            else:
                value = b"%d" % rng.randrange(5)
                block.set(key, value)
                state[key] = value
        store.commit(block, height)
        snapshots[height] = state
        if height % 7 == 0:
            deleted += store.prune(keep_recent=rng.choice([1, 3, 5]))
            assert store.prune(keep_recent=100) == 0  # never widens the window back
        for h in range(store.earliest_height, height + 1):
            assert dict(store.iterate_at(b"", h)) == snapshots[h], (height, h)
            assert [store.get_at(k, h) for k in keys] == [snapshots[h].get(k) for k in keys]
        if store.earliest_height > 0:
            with pytest.raises(HeightUnavailable):
                store.get_at(keys[0], store.earliest_height - 1)
    assert deleted > 0
    store.verify()  # pruning history never touches the current state


def test_prune_drops_a_deletion_at_the_edge_but_keeps_the_value_before_it():
    store = Store.memory()
    committed(store, {b"gone": b"1", b"kept": b"1"})
    committed(store, {b"gone": None})
    committed(store, {b"other": b"1"})
    assert store.prune(keep_recent=1) == 2  # gone@1 and the tombstone gone@2
    assert store.earliest_height == 3
    assert (store.get_at(b"gone", 3), store.get_at(b"kept", 3)) == (None, b"1")
    with pytest.raises(ValueError):
        store.prune(keep_recent=0)
