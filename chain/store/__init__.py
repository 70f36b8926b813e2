"""The chain's versioned key-value state and its app hash (docs/design.md §2.1)."""

from chain.store.errors import HeightUnavailable, RestoreMismatch, StaleOverlay, StoreCorrupted
from chain.store.merkle import EMPTY_APP_HASH
from chain.store.overlay import KVReader, Overlay
from chain.store.sqlite_store import Store
from chain.store.state_at import StateAt

__all__ = [
    "EMPTY_APP_HASH",
    "HeightUnavailable",
    "KVReader",
    "Overlay",
    "RestoreMismatch",
    "StaleOverlay",
    "StateAt",
    "Store",
    "StoreCorrupted",
]
