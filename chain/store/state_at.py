"""A read-only view of the committed state as of one past height, from the store's history."""

from collections.abc import Iterator

from chain.store.sqlite_store import Store


class StateAt:
    """The committed state as of one height, read from the store's history: a consistent
    view whatever is committed meanwhile. Reads raise HeightUnavailable once pruning
    (``history_keep_blocks``) passes the height."""

    def __init__(self, store: Store, height: int) -> None:
        self._store = store
        self._height = height

    def get(self, key: bytes) -> bytes | None:
        return self._store.get_at(key, self._height)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self._store.iterate_at(prefix, self._height)
