"""Restoring a peer's snapshot into an empty store: OfferSnapshot, then ApplySnapshotChunk.

An offer is accepted only if its metadata is well formed, hashes to the offered snapshot hash,
names this network's chain and the app hash CometBFT's light client trusts for that height.
Chunks arrive in order; each is checked against its hash in the metadata before it is kept
(in ``DIR/restoring/``, not in memory), and a bad one is refetched with its sender rejected.
After the last chunk the entries go into the store in one transaction that commits only if
they hash to the trusted app hash; anything else leaves the store as it was.
"""

import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cosmpy.protos.tendermint.abci import types_pb2 as abci

from chain.snapshots.format import (
    FORMAT,
    MAX_METADATA_BYTES,
    MalformedSnapshot,
    Metadata,
    chunk_hash,
    decode_entries,
    snapshot_hash,
)
from chain.store import RestoreMismatch, Store

log = logging.getLogger(__name__)

Offer = abci.ResponseOfferSnapshot
Apply = abci.ResponseApplySnapshotChunk


@dataclass
class _Accepted:
    metadata: Metadata
    next_index: int = 0
    senders: set[str] = field(default_factory=set)
    chunk_bytes: int = 0


class Restorer:
    """One node's state sync, driven by CometBFT's snapshot connection (never concurrent)."""

    def __init__(self, staging: Path, chain_id: str,
                 node_meta: Callable[[Metadata], Mapping[str, bytes]]) -> None:
        """``node_meta`` gives the node bookkeeping to store with the restored state (the app
        knows its names), so both land in the same transaction."""
        self.staging = staging
        self.chain_id = chain_id
        self._node_meta = node_meta
        self._accepted: _Accepted | None = None
        self.restored: Metadata | None = None

    def offer(self, store: Store, req: abci.RequestOfferSnapshot) -> int:
        self._accepted = None
        shutil.rmtree(self.staging, ignore_errors=True)
        snapshot = req.snapshot
        where = f"snapshot of height {snapshot.height} (format {snapshot.format})"
        if store.height != 0:
            log.error("refusing %s: this node already has state at height %d; state sync "
                      "only fills an empty node", where, store.height)
            return Offer.REJECT
        if snapshot.format != FORMAT:
            log.warning("refusing %s: this node restores format %d only", where, FORMAT)
            return Offer.REJECT_FORMAT
        if len(snapshot.metadata) > MAX_METADATA_BYTES:
            log.warning("refusing %s: %d bytes of metadata", where, len(snapshot.metadata))
            return Offer.REJECT
        if snapshot_hash(snapshot.metadata) != snapshot.hash:
            log.warning("refusing %s: its metadata does not hash to the snapshot hash", where)
            return Offer.REJECT
        try:
            metadata = Metadata.decode(snapshot.metadata)
        except MalformedSnapshot as exc:
            log.warning("refusing %s: %s", where, exc)
            return Offer.REJECT
        problem = self._mismatch(metadata, snapshot.height, snapshot.chunks, req.app_hash)
        if problem:
            log.warning("refusing %s: %s", where, problem)
            return Offer.REJECT
        self._accepted = _Accepted(metadata)
        self.staging.mkdir(parents=True)
        log.info("restoring %s: %d chunk(s), %d entries, app hash %s", where, snapshot.chunks,
                 metadata.entries, req.app_hash.hex()[:16])
        return Offer.ACCEPT

    def _mismatch(self, metadata: Metadata, height: int, chunks: int,
                  trusted: bytes) -> str | None:
        if metadata.height != height:
            return f"its metadata is of height {metadata.height}"
        if len(metadata.chunk_hashes) != chunks:
            return f"it has {chunks} chunks but its metadata lists {len(metadata.chunk_hashes)}"
        if metadata.chain_id != self.chain_id:
            return f"it is of chain {metadata.chain_id!r}, this node is on {self.chain_id!r}"
        if metadata.app_hash != trusted:
            return (f"it claims app hash {metadata.app_hash.hex()}, the light client trusts "
                    f"{trusted.hex()}")
        return None

    def apply(self, store: Store, req: abci.RequestApplySnapshotChunk
              ) -> abci.ResponseApplySnapshotChunk:
        accepted = self._accepted
        if accepted is None:
            log.warning("chunk %d from %s with no snapshot accepted; refusing it", req.index,
                        req.sender)
            return Apply(result=Apply.REJECT_SNAPSHOT)
        hashes = accepted.metadata.chunk_hashes
        if req.index != accepted.next_index:
            log.warning("chunk %d arrived while chunk %d was expected; restarting the "
                        "snapshot", req.index, accepted.next_index)
            accepted.next_index = 0
            return Apply(result=Apply.RETRY_SNAPSHOT)
        if chunk_hash(req.chunk) != hashes[req.index]:
            log.warning("chunk %d of snapshot %d from peer %s does not match its hash; "
                        "refetching it from another peer", req.index,
                        accepted.metadata.height, req.sender or "?")
            return Apply(result=Apply.RETRY, refetch_chunks=[req.index],
                         reject_senders=[req.sender] if req.sender else [])
        (self.staging / f"chunk-{req.index}").write_bytes(req.chunk)
        if req.sender:
            accepted.senders.add(req.sender)
        accepted.next_index += 1
        accepted.chunk_bytes += len(req.chunk)
        if accepted.next_index < len(hashes):
            return Apply(result=Apply.ACCEPT)
        return self._finish(store, accepted)

    def _finish(self, store: Store, accepted: _Accepted) -> abci.ResponseApplySnapshotChunk:
        metadata = accepted.metadata
        started = time.perf_counter()
        try:
            store.restore(metadata.height, metadata.app_hash,
                          decode_entries(self._staged(len(metadata.chunk_hashes))),
                          self._node_meta(metadata))
        except (MalformedSnapshot, RestoreMismatch) as exc:
            log.error("snapshot of height %d from peer(s) %s refused after its last chunk: "
                      "%s; rejecting those peers as senders, the node's state is untouched",
                      metadata.height, ", ".join(sorted(accepted.senders)) or "?", exc)
            self._accepted = None
            shutil.rmtree(self.staging, ignore_errors=True)
            return Apply(result=Apply.REJECT_SNAPSHOT, reject_senders=sorted(accepted.senders))
        self._accepted = None
        shutil.rmtree(self.staging, ignore_errors=True)
        self.restored = metadata
        log.info("restored height %d from a snapshot: %d entries, %d bytes of state from %d "
                 "chunk(s) of %d bytes in all, app hash %s, in %.2fs", metadata.height,
                 metadata.entries, metadata.state_bytes, len(metadata.chunk_hashes),
                 accepted.chunk_bytes, metadata.app_hash.hex()[:16],
                 time.perf_counter() - started)
        return Apply(result=Apply.ACCEPT)

    def _staged(self, count: int) -> Iterator[bytes]:
        for index in range(count):
            yield (self.staging / f"chunk-{index}").read_bytes()

