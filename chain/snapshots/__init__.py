"""State-sync snapshots of the app state: the format, the node's own, and restoring a peer's."""
