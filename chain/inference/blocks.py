"""What the inference module does at every block: remember its hash, burn the forfeits of
API-key commitments whose draw window passed without a start, drop the notices of passed picks
whose request can no longer start (burning the bonds no start returned), expire lone halves,
forget used request signatures whose requests can no longer start; and at every epoch's first
block: fix the draw's weights for the epoch.

The block hash seeds executor draws for the next ``max_draw_age_blocks`` blocks. A Start
without its Finish past ``expiration_blocks`` is refunded in full and counts as a miss for
its executor; a Finish without a Start only expires (nothing was escrowed, and the executor
did its part, so no miss is counted).
"""

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.context import Context
from chain.inference import key_commitments, pass_notices
from chain.inference.expected_keepers import BankKeeper
from chain.inference.keeper import ESCROW_ACCOUNT, InferenceKeeper
from inferchain_pb.inference.v1.inference_pb2 import EXPIRED, STARTED


def begin_block(keeper: InferenceKeeper, ctx: Context, block_hash: bytes) -> None:
    # One more than the draw window: the start check reads the time of the block before the
    # oldest draw height too (InferenceKeeper.request_draw_height).
    keep = keeper.params(ctx.kv).max_draw_age_blocks + 2
    keeper.record_block_hash(ctx.kv, ctx.block.height, block_hash, ctx.block.time_ns, keep)


def epoch_start(keeper: InferenceKeeper, ctx: Context, epoch: int) -> None:
    """Fixes the draw's candidate weights for draws seeded in this epoch: its new weights (the
    epochs module sets them first) and each participant's availability as of now."""
    keeper.fix_draw_weights(ctx.kv, ctx.block.height, keeper.params(ctx.kv))


def end_block(keeper: InferenceKeeper, bank: BankKeeper, ctx: Context) -> None:
    key_commitments.expire(ctx, bank, ctx.block.height)
    pass_notices.expire(ctx, bank, keeper, ctx.block.height)
    window = keeper.params(ctx.kv).request_time_window_s
    keeper.forget_request_signatures(ctx.kv, ctx.block.time_ns // 1_000_000_000 - window)
    for inference_id in keeper.due(ctx.kv, ctx.block.height):
        inference = keeper.inference(ctx.kv, inference_id)
        keeper.cancel_expiry(ctx.kv, inference_id, inference.expires_at)
        previous = type(inference)()
        previous.CopyFrom(inference)
        if inference.status == STARTED:
            developer = address.decode(inference.developer)
            bank.send(ctx, ESCROW_ACCOUNT, developer, {NATIVE_DENOM: inference.escrow})
            keeper.release_escrow(ctx.kv, inference, inference.escrow)
            executor = keeper.participant(ctx.kv, inference.executor)
            executor.misses += 1
            keeper.set_participant(ctx.kv, executor)
        inference.status = EXPIRED
        keeper.save_inference(ctx.kv, inference, ctx.block.height, previous)
        ctx.emit("expire_inference", inference_id=inference_id,
                 refund=str(inference.escrow if previous.status == STARTED else 0))
