"""State-sync snapshot format 1: what a snapshot's chunks and metadata hold (docs/chain.md).

The state at height H is every (key, value) of the store, ascending by key, each written as
len(key) (4 bytes, big-endian) || key || len(value) (4 bytes, big-endian) || value. That
stream is zlib-compressed (level 6) and cut into chunks of ``chunk_bytes`` (the last one
shorter); entries may span chunks. The metadata is canonical JSON (sorted keys, no spaces):

    {"app_hash": hex, "chain_id": str, "chunk_hashes": [sha256 hex of each chunk],
     "entries": N, "format": 1, "height": H, "last_block": {...}, "state_bytes": B}

and the snapshot's hash is sha256(metadata). So the hash binds every chunk, a joiner checks each
chunk against its hash as it arrives (one tampered chunk is refetched from another peer), and
two nodes with the same state at H serve the same snapshot, chunks from either one fitting.
Nothing in a snapshot is trusted until the restored state hashes to the app hash CometBFT's
light client verified; ``last_block`` (time and hash of block H, which the app hash does not
cover) serves only the node's status and mempool checks until its next block commits.
"""

import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

FORMAT = 1
# Far above any real metadata (67 bytes a chunk: 15,000 chunks) yet small enough to parse
# at once; CometBFT's p2p snapshot messages stop at 4 MB anyway.
MAX_METADATA_BYTES = 1 << 20
# Per entry: a key or value longer than this is malformed, whatever the metadata says.
MAX_KEY_BYTES = 1 << 16
MAX_VALUE_BYTES = 64 << 20
_LAST_BLOCK_FIELDS = {"height": int, "time_ns": int, "hash": str, "proposer": str,
                      "app_hash": str}


class MalformedSnapshot(ValueError):
    """Metadata or chunk contents that do not follow format 1."""


@dataclass(frozen=True)
class Metadata:
    height: int
    app_hash: bytes
    chain_id: str
    chunk_hashes: tuple[bytes, ...]
    entries: int
    state_bytes: int
    last_block: dict

    def encode(self) -> bytes:
        return json.dumps({
            "app_hash": self.app_hash.hex(), "chain_id": self.chain_id,
            "chunk_hashes": [h.hex() for h in self.chunk_hashes], "entries": self.entries,
            "format": FORMAT, "height": self.height, "last_block": self.last_block,
            "state_bytes": self.state_bytes,
        }, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> "Metadata":
        """Parses metadata strictly: any extra, missing or mistyped field is malformed."""
        if len(data) > MAX_METADATA_BYTES:
            raise MalformedSnapshot(f"metadata of {len(data)} bytes is over the "
                                    f"{MAX_METADATA_BYTES}-byte limit")
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedSnapshot(f"metadata is not JSON: {exc}") from None
        fields = {"app_hash": str, "chain_id": str, "chunk_hashes": list, "entries": int,
                  "format": int, "height": int, "last_block": dict, "state_bytes": int}
        _check_fields(raw, fields, "metadata")
        if raw["format"] != FORMAT:
            raise MalformedSnapshot(f"metadata says format {raw['format']}, not {FORMAT}")
        _check_fields(raw["last_block"], _LAST_BLOCK_FIELDS, "metadata last_block")
        if min(raw["height"], raw["entries"], raw["state_bytes"]) < 0 or raw["height"] == 0:
            raise MalformedSnapshot("metadata height, entries and state_bytes must be "
                                    "positive")
        metadata = cls(raw["height"], _hash(raw["app_hash"]), raw["chain_id"],
                       tuple(_hash(h) for h in raw["chunk_hashes"]), raw["entries"],
                       raw["state_bytes"], raw["last_block"])
        if not metadata.chunk_hashes:
            raise MalformedSnapshot("metadata lists no chunks")
        if metadata.encode() != data:
            raise MalformedSnapshot("metadata is not in canonical form")
        return metadata


def _check_fields(raw: object, fields: dict[str, type], what: str) -> None:
    if not isinstance(raw, dict) or set(raw) != set(fields):
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise MalformedSnapshot(f"{what} must have exactly {sorted(fields)}, got {got}")
    for name, kind in fields.items():
        # bool is an int to Python, never to this format.
        if type(raw[name]) is not kind:
            raise MalformedSnapshot(f"{what} field {name} must be {kind.__name__}")


def _hash(text: object) -> bytes:
    if type(text) is not str or len(text) != 64:
        raise MalformedSnapshot(f"{text!r:.80} is not a sha256 in hex")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise MalformedSnapshot(f"{text!r:.80} is not a sha256 in hex") from None


def snapshot_hash(metadata: bytes) -> bytes:
    return hashlib.sha256(metadata).digest()


def chunk_hash(chunk: bytes) -> bytes:
    return hashlib.sha256(chunk).digest()


def encode_entries(entries: Iterable[tuple[bytes, bytes]], chunk_bytes: int
                   ) -> Iterator[bytes | tuple[int, int]]:
    """The compressed stream cut into chunks; last, a (entries, state_bytes) pair."""
    packer = zlib.compressobj(6)
    pending = bytearray()
    count = size = 0
    for key, value in entries:
        record = (len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
        count += 1
        size += len(record)
        pending += packer.compress(record)
        while len(pending) >= chunk_bytes:
            yield bytes(pending[:chunk_bytes])
            del pending[:chunk_bytes]
    pending += packer.flush()
    while pending:
        yield bytes(pending[:chunk_bytes])
        del pending[:chunk_bytes]
    yield count, size


def decode_entries(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """The entries of a compressed stream, each checked: strictly ascending, non-empty keys,
    sizes within bounds, nothing after the stream's end."""
    unpacker = zlib.decompressobj()
    buffer = bytearray()
    previous = b""
    for chunk in chunks:
        if unpacker.eof:
            raise MalformedSnapshot("bytes after the end of the compressed stream")
        pending = chunk
        while pending:
            try:
                # Bounded per call, so a small chunk cannot inflate to gigabytes in memory.
                buffer += unpacker.decompress(pending, MAX_VALUE_BYTES)
            except zlib.error as exc:
                raise MalformedSnapshot(f"chunk stream does not decompress: {exc}") from None
            pending = unpacker.unconsumed_tail
            if unpacker.unused_data:
                raise MalformedSnapshot("bytes after the end of the compressed stream")
            for key, value in _complete_records(buffer):
                if key <= previous:
                    raise MalformedSnapshot("entries are not in strictly ascending key order")
                previous = key
                yield key, value
    if not unpacker.eof:
        raise MalformedSnapshot("compressed stream ends early")
    if buffer:
        raise MalformedSnapshot(f"{len(buffer)} bytes of a partial entry at the end")


def _complete_records(buffer: bytearray) -> list[tuple[bytes, bytes]]:
    """Takes every whole record off the front of ``buffer``."""
    records, offset = [], 0
    while len(buffer) - offset >= 4:
        key_len = int.from_bytes(buffer[offset:offset + 4], "big")
        if not 0 < key_len <= MAX_KEY_BYTES:
            raise MalformedSnapshot(f"entry key of {key_len} bytes")
        if len(buffer) - offset < 8 + key_len:
            break
        value_len = int.from_bytes(buffer[offset + 4 + key_len:offset + 8 + key_len], "big")
        if value_len > MAX_VALUE_BYTES:
            raise MalformedSnapshot(f"entry value of {value_len} bytes")
        end = offset + 8 + key_len + value_len
        if len(buffer) < end:
            break
        records.append((bytes(buffer[offset + 4:offset + 4 + key_len]),
                        bytes(buffer[offset + 8 + key_len:end])))
        offset = end
    del buffer[:offset]
    return records
