"""State-sync snapshots in-process, through the application's real ABCI methods: a node takes
snapshots as it commits, a fresh node restores one chunk by chunk and then agrees with it at
every later block, and every hostile snapshot or chunk is refused with the node's state kept."""

import dataclasses
import json
import zlib
from pathlib import Path

import pytest
from chain_client import TxSpec, send_msg, signed_tx
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from test_chain_app import CHAIN_ID, genesis, run_block, wallet

from chain.app import Application
from chain.snapshots.format import Metadata, chunk_hash, snapshot_hash
from chain.snapshots.store import SnapshotSettings, SnapshotStore
from chain.store import EMPTY_APP_HASH, RestoreMismatch, Store

Offer = abci.ResponseOfferSnapshot
Apply = abci.ResponseApplySnapshotChunk
SETTINGS = SnapshotSettings(interval=3, keep_recent=2, chunk_bytes=1024)
WALLETS = [wallet(seed) for seed in range(1, 60)]


def node(root: Path, name: str, chain_id: str = CHAIN_ID) -> Application:
    return Application(Store.open(root / f"{name}.sqlite"),
                       snapshots=SnapshotStore(root / f"{name}-snapshots", SETTINGS),
                       network_chain_id=chain_id)


def transfer(sequence: int, amount: int) -> bytes:
    alice, bob = WALLETS[0], WALLETS[1]
    return signed_tx(alice, TxSpec([send_msg(str(alice.address()), str(bob.address()), amount)],
                                   sequence=sequence, account_number=0)).tx.SerializeToString()


def run_chain(app: Application, blocks: int, amount: int = 1) -> dict[int, bytes]:
    """Genesis and ``blocks`` blocks of one transfer each; the app hash after each height."""
    app.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1,
                                         app_state_bytes=genesis(*WALLETS)))
    hashes = {}
    for height in range(1, blocks + 1):
        run_block(app, height, [transfer(height - 1, amount)])
        hashes[height] = app.store.app_hash
        # A snapshot still being written when the next one falls due skips that one (a node
        # on a loaded machine does so too); these tests want every one taken.
        app.snapshots.wait()
    return hashes


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Application, dict[int, bytes]]:
    app = node(tmp_path_factory.mktemp("source"), "source")
    return app, run_chain(app, 7)


def latest(app: Application) -> abci.Snapshot:
    return app.list_snapshots(abci.RequestListSnapshots()).snapshots[0]


def chunks_of(app: Application, snapshot: abci.Snapshot) -> list[bytes]:
    return [app.load_snapshot_chunk(abci.RequestLoadSnapshotChunk(
        height=snapshot.height, format=snapshot.format, chunk=i)).chunk
        for i in range(snapshot.chunks)]


def offer(app: Application, snapshot: abci.Snapshot, app_hash: bytes) -> int:
    return app.offer_snapshot(abci.RequestOfferSnapshot(snapshot=snapshot,
                                                        app_hash=app_hash)).result


def apply(app: Application, index: int, chunk: bytes, sender: str = "peer-a"
          ) -> abci.ResponseApplySnapshotChunk:
    return app.apply_snapshot_chunk(abci.RequestApplySnapshotChunk(index=index, chunk=chunk,
                                                                   sender=sender))


def restore(app: Application, snapshot: abci.Snapshot, chunks: list[bytes],
            app_hash: bytes) -> list[int]:
    assert offer(app, snapshot, app_hash) == Offer.ACCEPT
    return [apply(app, i, chunk).result for i, chunk in enumerate(chunks)]


def offered(source: tuple[Application, dict[int, bytes]], root: Path
            ) -> tuple[Application, list[bytes]]:
    """A fresh node that has accepted the source's latest snapshot, and that snapshot's chunks."""
    app, hashes = source
    snapshot = latest(app)
    joiner = node(root, "joiner")
    assert offer(joiner, snapshot, hashes[snapshot.height]) == Offer.ACCEPT
    return joiner, chunks_of(app, snapshot)


def assert_untouched(app: Application) -> None:
    assert (app.store.height, app.store.app_hash) == (0, EMPTY_APP_HASH)
    assert app.info(abci.RequestInfo()).last_block_height == 0
    app.store.verify()


def forged(snapshot: abci.Snapshot, chunks: list[bytes] | None = None,
           **changes: object) -> tuple[abci.Snapshot, list[bytes] | None]:
    """The snapshot with its metadata changed (and chunks replaced), consistently re-hashed."""
    metadata = Metadata.decode(snapshot.metadata)
    if chunks is not None:
        changes["chunk_hashes"] = tuple(chunk_hash(c) for c in chunks)
    data = dataclasses.replace(metadata, **changes).encode()
    fake = abci.Snapshot(height=snapshot.height, format=snapshot.format,
                         chunks=len(Metadata.decode(data).chunk_hashes), metadata=data,
                         hash=snapshot_hash(data))
    return fake, chunks


def test_snapshots_are_taken_every_interval_and_only_the_last_ones_kept(source):
    app, hashes = source
    listed = app.list_snapshots(abci.RequestListSnapshots()).snapshots
    assert [s.height for s in listed] == [6, 3]
    for snapshot in listed:
        metadata = Metadata.decode(snapshot.metadata)
        assert snapshot.hash == snapshot_hash(snapshot.metadata)
        assert metadata.app_hash == hashes[snapshot.height]
        assert snapshot.chunks == len(metadata.chunk_hashes) > 1
        assert [chunk_hash(c) for c in chunks_of(app, snapshot)] == list(metadata.chunk_hashes)
    assert sorted(p.name for p in app.snapshots.root.iterdir()) == ["3", "6"]


def test_a_fresh_node_restores_a_snapshot_and_then_agrees_at_every_height(source, tmp_path):
    app, hashes = source
    snapshot = latest(app)
    joiner = node(tmp_path, "joiner")
    assert restore(joiner, snapshot, chunks_of(app, snapshot), hashes[6]) == \
        [Apply.ACCEPT] * snapshot.chunks
    info = joiner.info(abci.RequestInfo())
    assert (info.last_block_height, info.last_block_app_hash) == (6, hashes[6])
    joiner.store.verify()
    assert joiner.chain_id == CHAIN_ID and joiner.last_block["height"] == 6
    # The next block, replayed on the restored node, gives the source's app hash.
    run_block(joiner, 7, [transfer(6, 1)])
    assert joiner.store.app_hash == hashes[7]
    bob = bytes(WALLETS[1].address())
    state, source_state = joiner.store.begin_block(), app.store.begin_block()
    assert joiner.modules.bank.balance(state, bob, "ninfer") == \
        app.modules.bank.balance(source_state, bob, "ninfer") == 1_000_000 + 7


def test_a_tampered_chunk_is_refetched_from_another_peer_and_its_sender_rejected(source,
                                                                                 tmp_path):
    joiner, chunks = offered(source, tmp_path)
    assert apply(joiner, 0, chunks[0]).result == Apply.ACCEPT
    tampered = bytes([chunks[1][0] ^ 1]) + chunks[1][1:]
    answer = apply(joiner, 1, tampered, sender="peer-evil")
    assert (answer.result, list(answer.refetch_chunks), list(answer.reject_senders)) == \
        (Apply.RETRY, [1], ["peer-evil"])
    assert joiner.store.height == 0
    results = [apply(joiner, i, chunks[i], sender="peer-b").result
               for i in range(1, len(chunks))]
    assert results == [Apply.ACCEPT] * (len(chunks) - 1)
    assert joiner.store.app_hash == source[1][6]


def test_a_forged_state_that_misses_the_trusted_app_hash_is_rejected_and_nothing_kept(
        source, tmp_path):
    app, hashes = source
    other = node(tmp_path, "other")
    run_chain(other, 6, amount=2)  # another history: same height, different state
    genuine = latest(app)
    fake, chunks = forged(latest(other), chunks_of(other, latest(other)), app_hash=hashes[6])
    joiner = node(tmp_path, "joiner")
    assert restore(joiner, fake, chunks[:-1], hashes[6]) == [Apply.ACCEPT] * (len(chunks) - 1)
    last = apply(joiner, len(chunks) - 1, chunks[-1], sender="peer-b")
    assert (last.result, list(last.reject_senders)) == (Apply.REJECT_SNAPSHOT,
                                                        ["peer-a", "peer-b"])
    assert_untouched(joiner)
    # The genuine snapshot still restores afterwards.
    assert restore(joiner, genuine, chunks_of(app, genuine), hashes[6])[-1] == Apply.ACCEPT
    assert joiner.store.app_hash == hashes[6]


def test_a_stream_that_is_not_format_one_is_rejected_after_its_hashes_check_out(source,
                                                                               tmp_path):
    app, hashes = source
    genuine = latest(app)
    joiner = node(tmp_path, "joiner")
    bad_streams = {
        "not zlib": [b"\x00" * 100],
        "unordered": [zlib.compress(b"".join(
            len(k).to_bytes(4, "big") + k + (1).to_bytes(4, "big") + b"v" for k in (b"b", b"a")))],
        "truncated": [zlib.compress(b"\x00\x00\x00\x05abc")],
        "empty key": [zlib.compress(b"\x00\x00\x00\x00\x00\x00\x00\x00")],
        "trailing": [zlib.compress(b"") + b"junk"],
    }
    for name, chunks in bad_streams.items():
        fake, _ = forged(genuine, chunks)
        assert restore(joiner, fake, chunks, hashes[6]) == [Apply.REJECT_SNAPSHOT], name
        assert_untouched(joiner)


def test_hostile_offers_are_refused_and_leave_the_node_as_it_was(source, tmp_path):
    app, hashes = source
    genuine = latest(app)
    joiner = node(tmp_path, "joiner")
    wrong_chain, _ = forged(genuine, chain_id="inferchain-other")
    other_format = abci.Snapshot()
    other_format.CopyFrom(genuine)
    other_format.format = 2
    huge = abci.Snapshot(height=6, format=1, chunks=1, metadata=b"{" * (2 << 20))
    huge.hash = snapshot_hash(huge.metadata)
    garbage = abci.Snapshot(height=6, format=1, chunks=1, metadata=b"\xff\x00not json")
    garbage.hash = snapshot_hash(garbage.metadata)
    extra_field = json.loads(genuine.metadata) | {"extra": 1}
    extra = abci.Snapshot(height=6, format=1, chunks=genuine.chunks,
                          metadata=json.dumps(extra_field, sort_keys=True).encode())
    extra.hash = snapshot_hash(extra.metadata)
    wrong_hash = abci.Snapshot()
    wrong_hash.CopyFrom(genuine)
    wrong_hash.hash = bytes(32)
    wrong_count = abci.Snapshot()
    wrong_count.CopyFrom(genuine)
    wrong_count.chunks += 1
    wrong_height = abci.Snapshot()
    wrong_height.CopyFrom(genuine)
    wrong_height.height = 5
    cases = [(other_format, hashes[6], Offer.REJECT_FORMAT), (huge, hashes[6], Offer.REJECT),
             (garbage, hashes[6], Offer.REJECT), (extra, hashes[6], Offer.REJECT),
             (wrong_hash, hashes[6], Offer.REJECT), (wrong_count, hashes[6], Offer.REJECT),
             (wrong_height, hashes[6], Offer.REJECT), (wrong_chain, hashes[6], Offer.REJECT),
             (genuine, hashes[5], Offer.REJECT)]
    for snapshot, trusted, expected in cases:
        assert offer(joiner, snapshot, trusted) == expected
        # A chunk after a refused offer is refused too.
        assert apply(joiner, 0, chunks_of(app, genuine)[0]).result == Apply.REJECT_SNAPSHOT
        assert_untouched(joiner)
    # A node that already has state never restores over it.
    assert offer(app, genuine, hashes[6]) == Offer.REJECT
    assert app.store.app_hash == hashes[7]


def test_chunks_out_of_order_restart_the_snapshot(source, tmp_path):
    joiner, chunks = offered(source, tmp_path)
    assert apply(joiner, 1, chunks[1]).result == Apply.RETRY_SNAPSHOT
    assert [apply(joiner, i, c).result for i, c in enumerate(chunks)][-1] == Apply.ACCEPT
    assert joiner.store.app_hash == source[1][6]


def test_a_chunk_corrupt_on_disk_withdraws_its_snapshot_and_joiners_refuse_it(tmp_path):
    app = node(tmp_path, "server")
    hashes = run_chain(app, 6)
    newest = latest(app)
    path = app.snapshots.root / str(newest.height) / "chunk-0"
    corrupt = bytes([path.read_bytes()[0] ^ 1]) + path.read_bytes()[1:]
    path.write_bytes(corrupt)
    # Served as it is on disk, so the joiner's check names this sender at once.
    assert chunks_of(app, newest)[0] == corrupt
    joiner = node(tmp_path, "joiner")
    assert offer(joiner, newest, hashes[6]) == Offer.ACCEPT
    assert list(apply(joiner, 0, corrupt, sender="server").reject_senders) == ["server"]
    assert [s.height for s in app.list_snapshots(abci.RequestListSnapshots()).snapshots] == [3]
    # Its sound chunks still reach a joiner that is fetching it.
    assert chunks_of(app, newest)[1:] == [
        (path.parent / f"chunk-{i}").read_bytes() for i in range(1, newest.chunks)]
    # Unknown snapshots, formats and chunk indexes get an empty chunk, not an error.
    for height, format_, index in [(3, 2, 0), (3, 1, 10_000), (99, 1, 0)]:
        assert app.load_snapshot_chunk(abci.RequestLoadSnapshotChunk(
            height=height, format=format_, chunk=index)).chunk == b""


def test_snapshots_survive_a_restart_and_partial_ones_are_cleared(source, tmp_path):
    app, _ = source
    partial = app.snapshots.root / ".9.partial"
    partial.mkdir()
    reopened = SnapshotStore(app.snapshots.root, SETTINGS)
    assert [s.height for s in reopened.list()] == [6, 3] and not partial.exists()


def test_the_store_restores_only_into_an_empty_store_and_keeps_a_mismatch_out(source):
    app, hashes = source
    entries = list(app.store.iterate_at(b"", 6))
    with pytest.raises(ValueError, match="cannot restore into a store at height 7"):
        app.store.restore(6, hashes[6], entries, {})
    assert app.store.app_hash == hashes[7]
    empty = Store.memory()
    with pytest.raises(RestoreMismatch, match="not the trusted"):
        empty.restore(6, hashes[6], entries[:-1], {"chain_id": b"x"})
    assert (empty.height, empty.app_hash, empty.get_meta("chain_id")) == (0, EMPTY_APP_HASH, None)
    assert list(empty.iterate_at(b"", 0)) == []
    empty.restore(6, hashes[6], entries, {})
    assert (empty.height, empty.earliest_height, empty.app_hash) == (6, 6, hashes[6])
    empty.verify()
