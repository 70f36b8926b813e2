"""Snapshot benchmark: how big state-sync snapshots are and how long writing and restoring take.

For a genesis of N funded accounts (two store entries each), an ``Application`` over a SQLite
store commits the genesis block and writes a snapshot of it; a second, empty one restores that
snapshot through the ABCI methods (OfferSnapshot, then ApplySnapshotChunk for every chunk, the
last one rebuilding and checking the app hash). The baseline, measured in the same run, is the
Commit of the same state: restoring over committing is what a joiner pays for a state against
what the network paid to write it once. Progress goes to stderr, the report to stdout. Run
``python bench/snapshot_bench.py --help``.
"""

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.timestamp_pb2 import Timestamp
from report import bench_parser, environment, parse_bench_args, progress, publish, section, table

from chain.app import Application
from chain.snapshots.store import SnapshotSettings, SnapshotStore
from chain.store import Store
from genesis.account_keys import generate_account_keys

CHAIN_ID = "snapshot-bench"
SETTINGS = SnapshotSettings(interval=1, keep_recent=1, chunk_bytes=1 << 20)


@dataclass(frozen=True)
class Row:
    accounts: int
    entries: int
    state_bytes: int
    sqlite_bytes: int
    snapshot_bytes: int
    chunks: int
    commit_s: float
    write_s: float
    restore_s: float


def node(root: Path, name: str) -> Application:
    return Application(Store.open(root / f"{name}.sqlite"),
                       snapshots=SnapshotStore(root / name, SETTINGS), network_chain_id=CHAIN_ID)


def measure(accounts: int, root: Path) -> Row:
    keys = generate_account_keys(accounts)
    balances = [{"address": k.address, "coins": [{"denom": "ninfer", "amount": "1000000"}]}
                for k in keys]
    source = node(root, "source")
    source.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1, app_state_bytes=(
        json.dumps({"auth": {"params": {}}, "bank": {"balances": balances}}).encode())))
    source.finalize_block(abci.RequestFinalizeBlock(height=1, time=Timestamp(seconds=1),
                                                    hash=bytes(32)))
    started = time.perf_counter()
    source.commit(abci.RequestCommit())
    commit_s = time.perf_counter() - started
    source.snapshots.wait()
    write_s = time.perf_counter() - started - commit_s
    snapshot = source.list_snapshots(abci.RequestListSnapshots()).snapshots[0]
    chunks = [source.load_snapshot_chunk(abci.RequestLoadSnapshotChunk(
        height=1, format=snapshot.format, chunk=i)).chunk for i in range(snapshot.chunks)]
    joiner = node(root, "joiner")
    started = time.perf_counter()
    offered = joiner.offer_snapshot(abci.RequestOfferSnapshot(
        snapshot=snapshot, app_hash=source.store.app_hash)).result
    results = [joiner.apply_snapshot_chunk(abci.RequestApplySnapshotChunk(
        index=i, chunk=chunk, sender="bench")).result for i, chunk in enumerate(chunks)]
    restore_s = time.perf_counter() - started
    if offered != abci.ResponseOfferSnapshot.ACCEPT or set(results) != {
            abci.ResponseApplySnapshotChunk.ACCEPT} or \
            joiner.store.app_hash != source.store.app_hash:
        raise RuntimeError(f"restore failed: offer {offered}, chunks {results}")
    metadata = json.loads(snapshot.metadata)
    return Row(accounts, metadata["entries"], metadata["state_bytes"],
               sum(p.stat().st_size for p in root.glob("source.sqlite*")),
               sum(map(len, chunks)), len(chunks), commit_s, write_s, restore_s)


def size_table(rows: Sequence[Row]) -> list[str]:
    return section("Snapshot sizes", table(
        ["accounts", "entries", "state bytes", "SQLite files", "snapshot bytes", "chunks",
         "snapshot/state"],
        [[f"{r.accounts:,}", f"{r.entries:,}", f"{r.state_bytes:,}", f"{r.sqlite_bytes:,}",
          f"{r.snapshot_bytes:,}", str(r.chunks), f"{r.snapshot_bytes / r.state_bytes:.2f}"]
         for r in rows]),
        "State bytes are the entries as the snapshot stream writes them (keys, values, 8 bytes "
        "of lengths each); the SQLite files (database and write-ahead log) also hold history, "
        "bucket hashes and indexes. Chunks are 1 MiB.")


def time_table(rows: Sequence[Row]) -> list[str]:
    return section("Writing and restoring, against committing the same state", table(
        ["accounts", "Commit (baseline)", "snapshot written", "restored", "restore/Commit"],
        [[f"{r.accounts:,}", f"{r.commit_s:.2f} s", f"{r.write_s:.2f} s",
          f"{r.restore_s:.2f} s", f"{r.restore_s / r.commit_s:.2f}"] for r in rows]),
        "The snapshot is written in a background thread after Commit returns; restoring is "
        "OfferSnapshot and every ApplySnapshotChunk, the last of which writes the state in one "
        "transaction and rehashes it against the trusted app hash.")


def main(argv: Sequence[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 50_000],
                        help="genesis sizes to measure (default: 10000 50000)")
    args = parse_bench_args(parser, "genesis sizes of 1,000 and 5,000 accounts", argv)
    sizes = [1_000, 5_000] if args.quick else args.accounts
    load_before = os.getloadavg()[0]
    rows = []
    for accounts in sizes:
        progress(f"{accounts:,} accounts")
        with tempfile.TemporaryDirectory(prefix="snapshot-bench-") as tmp:
            rows.append(measure(accounts, Path(tmp)))
    publish([*environment(load_before, ("cosmpy", "protobuf")), "", *size_table(rows), "",
             *time_table(rows)], args.out)


if __name__ == "__main__":
    main()
