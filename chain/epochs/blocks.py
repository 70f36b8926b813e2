"""What the epochs module does at the start of every block: record the hashes that seed an
epoch's proof of compute and its sample, and tell when a block starts an epoch."""

import logging

from chain.context import Context
from chain.epochs.keeper import EpochKeeper

log = logging.getLogger(__name__)


def begin_block(keeper: EpochKeeper, ctx: Context, block_hash: bytes) -> int | None:
    """The epoch this block starts, or None when it starts none."""
    height = ctx.block.height
    params = keeper.params(ctx.kv)
    epoch = params.epoch_of(height)
    if params.poc_enabled and height == params.poc_end(epoch) + 1:
        keeper.set_sample_seed(ctx.kv, epoch, block_hash)
        log.info("epoch %d: PoC window closed at height %d; members check submissions "
                 "until height %d", epoch, height - 1, params.poc_validation_end(epoch))
        ctx.emit("poc_window_closed", epoch=str(epoch), height=str(height))
    if params.start_of(epoch) != height:
        return None
    keeper.set_seed_hash(ctx.kv, epoch, block_hash)
    if params.poc_enabled:
        log.info("epoch %d begins at height %d: PoC window until height %d", epoch,
                 height, params.poc_end(epoch))
    else:
        log.info("epoch %d begins at height %d (PoC off)", epoch, height)
    ctx.emit("epoch_start", epoch=str(epoch), height=str(height))
    return epoch
