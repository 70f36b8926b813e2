"""Write caches over the committed state: one per block, and nested ones per transaction.

A transaction runs in a branch of the block overlay; `write()` folds its changes into the parent
when it succeeds, and a failed transaction's branch is simply dropped. Nothing reaches SQLite until
`Store.commit`.
"""

import bisect
import heapq
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Protocol

# A deletion is recorded as None so that it hides the key in the layers below.
Change = bytes | None
# What a layer's changes answer for a key it did not touch (None is a deletion).
_UNCHANGED = object()


class KVReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...


def merge(below: Iterator[tuple[bytes, bytes]],
          changes: list[tuple[bytes, Change]]) -> Iterator[tuple[bytes, bytes]]:
    """Lays key-sorted `changes` over key-sorted entries; a change wins over the same key below."""
    # Rank 0 sorts a change before the entry it replaces; values are never compared, as the
    # (key, rank) pairs are unique.
    layered = heapq.merge(((k, 0, v) for k, v in changes), ((k, 1, v) for k, v in below))
    previous = None
    for key, _, value in layered:
        if key != previous and value is not None:
            yield key, value
        previous = key


# Only exact bytes: a str or bytearray would hash or compare unlike the bytes SQLite gives back.
def _check_key(key: bytes) -> None:
    if type(key) is not bytes or not key:
        raise TypeError(f"store keys are non-empty bytes, got {key!r}")


def _check_value(value: bytes) -> None:
    if type(value) is not bytes:
        raise TypeError(f"store values are bytes, got {type(value).__name__}")


class Overlay:
    def __init__(self, parent: KVReader) -> None:
        self._parent = parent
        self._changes: dict[bytes, Change] = {}
        # The changed keys in order, so iterate finds a prefix's by bisection instead of
        # scanning every change: a block's overlay holds thousands by its last tx, and the
        # draw iterates the participants at every start.
        self._sorted: list[bytes] = []
        self._revision = 0

    @property
    def parent(self) -> KVReader:
        return self._parent

    @property
    def changes(self) -> Mapping[bytes, Change]:
        """This layer's own changes, read-only: the store commits the block overlay's."""
        return MappingProxyType(self._changes)

    @property
    def revision(self) -> int:
        """Counts changes, so the store can reuse an app hash computed for an unchanged overlay."""
        return self._revision

    def get(self, key: bytes) -> bytes | None:
        value = self._changes.get(key, _UNCHANGED)
        return self._parent.get(key) if value is _UNCHANGED else value

    def set(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        _check_value(value)
        self._change(key, value)

    def delete(self, key: bytes) -> None:
        _check_key(key)
        self._change(key, None)

    def _change(self, key: bytes, value: Change) -> None:
        if key not in self._changes:
            bisect.insort(self._sorted, key)
        self._changes[key] = value
        self._revision += 1

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Ascending keys under `prefix` as they were when called: later writes are not seen."""
        keys, changes = self._sorted, self._changes
        first = end = bisect.bisect_left(keys, prefix)
        while end < len(keys) and keys[end].startswith(prefix):
            end += 1
        if first == end:  # nothing of mine to lay over: the parent's entries as they are
            return self._parent.iterate(prefix)
        mine = [(k, changes[k]) for k in keys[first:end]]
        return merge(self._parent.iterate(prefix), mine)

    def branch(self) -> "Overlay":
        return Overlay(self)

    def write(self) -> None:
        """Folds this branch's changes into its parent and empties it."""
        if not isinstance(self._parent, Overlay):
            raise TypeError("a block overlay is persisted with Store.commit, not write()")
        parent = self._parent
        for key in self._changes:  # not a set difference, which would walk the parent's keys
            if key not in parent._changes:
                bisect.insort(parent._sorted, key)
        parent._changes.update(self._changes)
        parent._revision += 1
        self._changes.clear()
        self._sorted.clear()
