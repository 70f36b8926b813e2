"""The app hash: a Merkle root over hash buckets, so a block rehashes only what it touched.

Every key falls in one of 65,536 buckets by the first two bytes of sha256(key). A bucket's hash is
sha256(0x00 || entries), its entries sorted by key, each written as
len(key) (4 bytes, big-endian) || key || len(value) (4 bytes, big-endian) || value.
The root is a complete binary Merkle tree over the bucket hashes in bucket order, each inner node
sha256(0x01 || left || right); the 0x00/0x01 tags keep a bucket from passing for an inner node.

The hash depends only on the set of (key, value) pairs, never on write order or history. A block
that changes k keys rehashes at most k buckets (about N/65,536 entries each for N keys) and
16 inner nodes per bucket. The empty state hashes to EMPTY_APP_HASH,
d83389ac9a207fb7dbdc492fbb56b9482f19170699e224be64694cc885a3a2a2 (pinned by tests/test_store.py).
"""

import hashlib
from collections.abc import Iterable, Mapping

BUCKET_BITS = 16
BUCKET_COUNT = 1 << BUCKET_BITS
_LEAF = b"\x00"
_INNER = b"\x01"


def bucket_of(key: bytes) -> int:
    return int.from_bytes(hashlib.sha256(key).digest()[: BUCKET_BITS // 8], "big")


def bucket_hash(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Hashes a bucket's entries, which the caller must give in ascending key order."""
    h = hashlib.sha256(_LEAF)
    for key, value in entries:
        h.update(len(key).to_bytes(4, "big"))
        h.update(key)
        h.update(len(value).to_bytes(4, "big"))
        h.update(value)
    return h.digest()


def _inner(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_INNER + left + right).digest()


EMPTY_BUCKET_HASH = bucket_hash(())
# The root of a subtree with only empty buckets under it, by depth (0 = the whole tree).
_EMPTY_AT_DEPTH = [EMPTY_BUCKET_HASH]
for _ in range(BUCKET_BITS):
    _EMPTY_AT_DEPTH.insert(0, _inner(_EMPTY_AT_DEPTH[0], _EMPTY_AT_DEPTH[0]))
EMPTY_APP_HASH = _EMPTY_AT_DEPTH[0]


class BucketTree:
    """The whole tree in memory (4 MiB), so a block's root costs 16 hashes per touched bucket.

    Nodes are numbered heap-style: the root is 1, node i has children 2i and 2i+1, and bucket b
    is node BUCKET_COUNT + b.
    """

    def __init__(self, buckets: Mapping[int, bytes]) -> None:
        nodes = [EMPTY_BUCKET_HASH] * (2 * BUCKET_COUNT)
        for bucket, digest in buckets.items():
            nodes[BUCKET_COUNT + bucket] = digest
        for i in range(BUCKET_COUNT - 1, 0, -1):
            left, right = nodes[2 * i], nodes[2 * i + 1]
            empty_child = _EMPTY_AT_DEPTH[i.bit_length()]
            # Skipping all-empty subtrees makes opening a small store instant.
            if left == right == empty_child:
                nodes[i] = _EMPTY_AT_DEPTH[i.bit_length() - 1]
            else:
                nodes[i] = _inner(left, right)
        self._nodes = nodes

    @property
    def root(self) -> bytes:
        return self._nodes[1]

    def preview(self, buckets: Mapping[int, bytes]) -> tuple[bytes, dict[int, bytes]]:
        """The root with these buckets replaced, and the changed nodes to `apply` on commit."""
        changed = {BUCKET_COUNT + bucket: digest for bucket, digest in buckets.items()}
        level = set(changed)
        while level and level != {1}:
            level = {i >> 1 for i in level}
            for i in level:
                changed[i] = _inner(changed.get(2 * i, self._nodes[2 * i]),
                                    changed.get(2 * i + 1, self._nodes[2 * i + 1]))
        return changed.get(1, self.root), changed

    def apply(self, changed: Mapping[int, bytes]) -> None:
        for i, digest in changed.items():
            self._nodes[i] = digest
