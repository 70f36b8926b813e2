"""What a node keeps of the past: its state's per-key history and CometBFT's blocks.

Neither is consensus: every node answers queries and executes blocks from its latest state,
so each operator chooses how much past to keep (``HOME/config/app.toml``). The state's
history is read only by snapshots (at their own height, while being written) and by an
offline export at a past height; CometBFT's blocks serve peers that catch up by block sync
and the light client that verifies a state-sync snapshot. Without pruning both grow with
every block forever.
"""

from dataclasses import dataclass

# History is pruned every this many blocks at most, so each pruning deletes one batch of
# superseded rows instead of a few at every Commit.
PRUNE_EVERY_MAX = 100


@dataclass(frozen=True)
class Retention:
    # Heights of state history kept readable (0: all); up to PRUNE_EVERY_MAX more between
    # prunings.
    history_keep_blocks: int = 0
    # CometBFT blocks kept (0: all), never past the oldest snapshot this node offers.
    min_retain_blocks: int = 0

    @property
    def prune_every(self) -> int:
        return max(1, min(PRUNE_EVERY_MAX, self.history_keep_blocks // 2))

    def history_keep(self, height: int, writing_snapshot: int | None) -> int | None:
        """How many recent heights to keep after committing ``height``; None when no pruning
        is due. A snapshot being written reads its height's history, so that height stays."""
        if self.history_keep_blocks == 0 or height % self.prune_every:
            return None
        keep = self.history_keep_blocks
        if writing_snapshot is not None:
            keep = max(keep, height - writing_snapshot + 1)
        return keep

    def retain_height(self, height: int, oldest_snapshot: int | None) -> int:
        """ResponseCommit.retain_height: CometBFT may drop blocks below it (0: keep all). A
        joiner restoring this node's oldest snapshot verifies it against the snapshot's
        block, so that block stays."""
        if self.min_retain_blocks == 0:
            return 0
        retain = height - self.min_retain_blocks + 1
        if oldest_snapshot is not None:
            retain = min(retain, oldest_snapshot)
        return max(retain, 0)
