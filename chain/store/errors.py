"""The store's failures, as types the node can tell apart (a query error is not a corrupt disk)."""


class StaleOverlay(RuntimeError):
    """An overlay was used after a later block was committed; its reads would mix two states."""


class HeightUnavailable(LookupError):
    """A versioned read asked for a height that is not committed yet or was pruned away."""


class StoreCorrupted(RuntimeError):
    """The rows on disk no longer hash to the recorded app hash; the node must not serve them."""


class RestoreMismatch(ValueError):
    """A restored state does not hash to the app hash it was restored for; nothing was kept."""
