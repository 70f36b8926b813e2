"""The node's own snapshots on disk: taken in the background, listed and served in chunks.

Layout: ``DIR/<height>/metadata`` (the exact metadata bytes) and ``DIR/<height>/chunk-<i>``.
A snapshot is written into ``DIR/.<height>.partial`` and renamed into place once whole, so a
crash while writing leaves nothing that looks like a snapshot (partial folders are removed at
start). Taking one reads the store at its height through ``iterate_at``, page by page, in a
thread of its own: Commit only starts the thread, and blocks keep committing meanwhile, since
history at a committed height never changes.
"""

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from chain.snapshots.format import (
    FORMAT,
    MalformedSnapshot,
    Metadata,
    chunk_hash,
    encode_entries,
    snapshot_hash,
)
from chain.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    height: int
    metadata: bytes
    parsed: Metadata

    @property
    def hash(self) -> bytes:
        return snapshot_hash(self.metadata)

    @property
    def chunks(self) -> int:
        return len(self.parsed.chunk_hashes)


@dataclass(frozen=True)
class SnapshotSettings:
    """What app.toml says about snapshots (docs/chain.md, "State sync")."""

    interval: int
    keep_recent: int
    chunk_bytes: int


class SnapshotStore:
    def __init__(self, root: Path, settings: SnapshotSettings) -> None:
        self.root = root
        self.settings = settings
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._writing: int | None = None
        root.mkdir(parents=True, exist_ok=True)
        for partial in root.glob(".*.partial"):
            shutil.rmtree(partial)
        self._snapshots: dict[int, Snapshot] = {}
        # Heights found corrupt: no longer listed, still served to a joiner already fetching.
        self._withdrawn: set[int] = set()
        for folder in root.iterdir():
            if folder.name.isdigit():
                self._load(folder)

    def _load(self, folder: Path) -> None:
        try:
            data = (folder / "metadata").read_bytes()
            parsed = Metadata.decode(data)
        except (OSError, MalformedSnapshot) as exc:
            log.warning("ignoring snapshot folder %s: %s", folder, exc)
            return
        self._snapshots[parsed.height] = Snapshot(parsed.height, data, parsed)

    def due(self, height: int) -> bool:
        return self.settings.interval > 0 and height % self.settings.interval == 0

    def take(self, store: Store, height: int, chain_id: str, last_block: dict) -> bool:
        """Starts writing the snapshot of ``height`` in the background; False (and a log line)
        when the previous one is still being written, as the node never waits for it."""
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                log.warning("snapshot of height %d skipped: the previous one is still being "
                            "written (raise snapshot_interval)", height)
                return False
            self._worker = threading.Thread(
                target=self._write, args=(store, height, store.app_hash, chain_id, last_block),
                name=f"snapshot-{height}", daemon=True)
            self._writing = height
            self._worker.start()
        return True

    def writing(self) -> int | None:
        """The height of the snapshot being written: its state history must stay readable
        until it is done."""
        with self._lock:
            return self._writing

    def oldest(self) -> int | None:
        """The lowest height this node offers a snapshot of."""
        with self._lock:
            return min(self._snapshots, default=None)

    def wait(self) -> None:
        """Waits for a snapshot being written; for shutdown and tests."""
        worker = self._worker
        if worker is not None:
            worker.join()

    def _write(self, store: Store, height: int, app_hash: bytes, chain_id: str,
               last_block: dict) -> None:
        try:
            self._write_folder(store, height, app_hash, chain_id, last_block)
        finally:
            with self._lock:
                self._writing = None

    def _write_folder(self, store: Store, height: int, app_hash: bytes, chain_id: str,
                      last_block: dict) -> None:
        started = time.perf_counter()
        partial = self.root / f".{height}.partial"
        try:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            hashes: list[bytes] = []
            for part in encode_entries(store.iterate_at(b"", height),
                                       self.settings.chunk_bytes):
                if isinstance(part, tuple):
                    entries, state_bytes = part
                    break
                (partial / f"chunk-{len(hashes)}").write_bytes(part)
                hashes.append(chunk_hash(part))
            summary = {k: last_block[k] for k in ("height", "time_ns", "hash", "proposer",
                                                   "app_hash")}
            metadata = Metadata(height, app_hash, chain_id, tuple(hashes), entries,
                                state_bytes, summary)
            data = metadata.encode()
            (partial / "metadata").write_bytes(data)
            partial.rename(self.root / str(height))
        except Exception:
            # The node goes on without this snapshot; the next one may well succeed.
            log.exception("writing the snapshot of height %d failed", height)
            shutil.rmtree(partial, ignore_errors=True)
            return
        snapshot = Snapshot(height, data, metadata)
        size = sum(p.stat().st_size for p in (self.root / str(height)).iterdir())
        with self._lock:
            self._snapshots[height] = snapshot
            for old in sorted(self._snapshots)[:-self.settings.keep_recent]:
                del self._snapshots[old]
                self._withdrawn.discard(old)
                shutil.rmtree(self.root / str(old), ignore_errors=True)
        log.info("snapshot of height %d written: %d entries, %d bytes of state, %d chunk(s) "
                 "of %d bytes in all, in %.2fs", height, entries, state_bytes, len(hashes),
                 size, time.perf_counter() - started)

    def list(self) -> list[Snapshot]:
        with self._lock:
            return [self._snapshots[h] for h in sorted(self._snapshots, reverse=True)
                    if h not in self._withdrawn]

    def load_chunk(self, height: int, format_: int, index: int) -> bytes:
        """The chunk's bytes on disk; b"" for an unknown one.

        A chunk that no longer matches its hash is still served as it is (CometBFT drops an
        empty answer and would ask again and again; the joiner's own check refuses these bytes
        at once, rejects this node as a sender and fetches the chunk from another peer), but
        the snapshot is withdrawn from the list, so no later joiner is offered it; its other
        chunks are still served to a joiner that is fetching them.
        """
        with self._lock:
            snapshot = self._snapshots.get(height)
        if format_ != FORMAT or snapshot is None or not 0 <= index < snapshot.chunks:
            return b""
        try:
            chunk = (self.root / str(height) / f"chunk-{index}").read_bytes()
        except OSError as exc:
            log.error("snapshot %d chunk %d unreadable (%s); no longer offering that snapshot",
                      height, index, exc)
            self._withdraw(height)
            return b""
        if chunk_hash(chunk) != snapshot.parsed.chunk_hashes[index]:
            log.error("snapshot %d chunk %d does not match its hash on disk; no longer "
                      "offering that snapshot", height, index)
            self._withdraw(height)
        return chunk

    def _withdraw(self, height: int) -> None:
        with self._lock:
            self._withdrawn.add(height)
