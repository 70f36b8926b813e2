"""What the validation module does at block and epoch boundaries.

Every block: keep its random value while a vote may draw from it; close the windows and
votes whose deadline is this height. First block of an epoch: update the previous epoch's
reputations (clean → up a step scaled by the share of its draws served, misses or passes
beyond the allowance → down a step, an invalidation → 0; a report a vote went against
already cost a step and makes the epoch unclean), lift INVALID, and fix the new epoch's
members and weights. At ``reveal_window_blocks`` into an epoch: start judging the previous
epoch's validators by their revealed seeds (docs/design.md §6.8;
chain/validation/judging.py, a bounded amount per block), and once that is done announce the
epoch judged (the epochs module settles it then). Once an epoch is settled: cut its
inferences to their summaries, a bounded amount per block (chain/validation/summaries.py),
and drop the records of the epoch ``settled_epochs_kept`` before it.
"""

import logging

from chain.context import Context
from chain.inference.keeper import invalid_now, served_model_ids
from chain.scales import PPM
from chain.validation.expected_keepers import EpochKeeper, InferenceKeeper
from chain.validation.judging import Judging
from chain.validation.keeper import ValidationKeeper
from chain.validation.served_draws import reputation_gain, unserved_draws
from chain.validation.summaries import Summaries
from chain.validation.tasks import Tasks
from inferchain_pb.inference.v1.validation_pb2 import (
    IN_VOTE,
    OPEN,
    EpochMember,
    EpochMembers,
)

log = logging.getLogger(__name__)


class ValidationBlocks:
    def __init__(self, keeper: ValidationKeeper, inference: InferenceKeeper,
                 epochs: EpochKeeper, tasks: Tasks) -> None:
        self.keeper = keeper
        self.inference = inference
        self.epochs = epochs
        self.tasks = tasks
        self.judging = Judging(keeper, epochs, inference)
        self.summaries = Summaries(keeper, inference, epochs, tasks)

    def begin_block(self, ctx: Context, block_value: bytes) -> None:
        """Keeps the block's random value for the votes that will draw from it."""
        self.keeper.record_block_value(ctx.kv, ctx.block.height, block_value,
                                       self.keeper.params(ctx.kv).block_values_kept)

    def end_block(self, ctx: Context) -> list[int]:
        """Closes what is due; the epochs whose validators were judged in this block."""
        height = ctx.block.height
        for inference_id in self.keeper.windows_due(ctx.kv, height):
            task = self.keeper.task(ctx.kv, inference_id)
            if task.state == OPEN:
                self.tasks.close_window(ctx, task)
            else:
                self.keeper.close_window(ctx.kv, task)
        for inference_id in self.keeper.votes_due(ctx.kv, height):
            task = self.keeper.task(ctx.kv, inference_id)
            if task.state == IN_VOTE:
                self.tasks.tally(ctx, task)
        # Judge epoch e at the last height its seeds may be revealed: start(e + 1) + window − 1,
        # which may lie epochs later when the window is longer than an epoch.
        # The judgement is spread over blocks (chain/validation/judging.py); an epoch is judged
        # in the block it completes.
        opened = height - self.keeper.params(ctx.kv).reveal_window_blocks + 1
        following = self.epochs.epoch_of(ctx.kv, opened)
        if opened >= 1 and following >= 1 and self.epochs.start_of(ctx.kv, following) == opened:
            self.judging.start(ctx, following - 1)
        judged = self.judging.advance(ctx)
        for epoch in judged:
            self.tasks.forfeit_bonds(ctx, epoch)
        self.summaries.advance(ctx)
        return judged

    def forget_epoch(self, ctx: Context, settled: int) -> None:
        """Once ``settled`` is settled, the records of the epoch ``settled_epochs_kept``
        before it go (the epochs module drops its own part of them at the same time)."""
        old = settled - self.epochs.params(ctx.kv).settled_epochs_kept
        if old >= 0:
            dropped = self.keeper.forget_epoch(ctx.kv, old)
            log.info("epoch %d settled: epoch %d's %d validation records dropped", settled,
                     old, dropped)

    def epoch_start(self, ctx: Context, epoch: int) -> None:
        if epoch > 0:
            self._update_reputations(ctx, epoch - 1)
        members = [EpochMember(address=p.address, weight=p.weight,
                               model_ids=served_model_ids(p))
                   for p in self.inference.participants(ctx.kv) if p.active and p.weight]
        # The inference module fixed this epoch's draw weights first, at this same block.
        probed = self.inference.checkers(ctx.kv, ctx.block.height).probed_models()
        quota = self.keeper.params(ctx.kv).probe_quota
        self.keeper.set_members(ctx.kv, EpochMembers(
            epoch=epoch, start_height=ctx.block.height, members=members,
            total_weight=sum(m.weight for m in members), probe_quota=quota,
            probed_model_ids=probed))
        log.info("epoch %d: %d validators, total weight %d; each owes %d probes of each of "
                 "%s", epoch, len(members), sum(m.weight for m in members), quota,
                 ", ".join(probed) or "no model")

    def _update_reputations(self, ctx: Context, epoch: int) -> None:
        params = self.keeper.params(ctx.kv)
        members = self.keeper.members(ctx.kv, epoch)
        member_addresses = {m.address for m in members.members} if members else set()
        for participant in self.inference.participants(ctx.kv):
            stats = self.keeper.stats(ctx.kv, participant.address)
            misses = participant.misses - stats.misses_at_epoch_start
            finished = participant.completions - stats.completions_at_epoch_start
            passed_over = participant.passed_over - stats.passed_over_at_epoch_start
            unserved = unserved_draws(finished, misses, passed_over,
                                      params.passed_over_allowance_ppm)
            if misses or finished or passed_over:
                record = self.keeper.record(ctx.kv, epoch, participant.address)
                record.finished, record.expired = finished, misses
                record.passed_over, record.unserved = passed_over, unserved
                self.keeper.set_record(ctx.kv, record)
            before = stats.reputation_ppm
            if stats.epoch_invalidations:
                stats.reputation_ppm = 0
            elif misses or unserved:
                stats.reputation_ppm = max(0, before - params.reputation_step_ppm)
            elif participant.address in member_addresses and \
                    not self.keeper.record(ctx.kv, epoch, participant.address).votes_against:
                stats.reputation_ppm = min(PPM, before + reputation_gain(
                    params.reputation_step_ppm, finished, passed_over))
                stats.clean_epochs += 1
            if stats.reputation_ppm != before:
                ctx.emit("reputation", participant=participant.address, epoch=str(epoch),
                         reputation_ppm=str(stats.reputation_ppm))
            stats.epoch_invalidations = stats.epoch_passed = 0
            stats.misses_at_epoch_start = participant.misses
            stats.completions_at_epoch_start = participant.completions
            stats.passed_over_at_epoch_start = participant.passed_over
            self.keeper.set_stats(ctx.kv, stats)
            if invalid_now(participant):
                participant.invalid_until = ctx.block.height
                self.inference.set_participant(ctx.kv, participant)
