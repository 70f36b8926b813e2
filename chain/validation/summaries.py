"""Cutting a settled epoch's inferences to their summaries, spread over blocks.

Once an epoch is settled nothing changes its inferences whose checks have closed: the
prompt, the output and the artifact were needed to validate them and are not needed again
(anyone rebuilds them from the Start and Finish transactions, and the summary's
``record_sha256`` says which). Each such inference becomes an InferenceSummary and its
validation task and index entries go; so do the epoch's expired inferences, whose
lone half no relay can complete any more once its epoch is settled. What state keeps per
inference then stops growing with the prompt and the output (docs/inference.md, "What the
chain keeps").

An epoch holds as many inferences as were finished in it, so cutting them all in the block
the epoch settles would let anyone stall that block by finishing many small inferences; each
block instead cuts at most ``SUMMARIES_PER_BLOCK``, resuming where the last block stopped (a
SummaryCursor per epoch, oldest epoch first).

Every task of the epoch is closed by then: the epoch is judged ``reveal_window_blocks`` after
its last block, and the params keep that window at least ``validation_window_blocks`` +
``voting_period_blocks``, the longest a task stays open. Should a task be open all the same,
it is left whole rather than cut from under its window or vote.
"""

import logging

from chain.context import Context
from chain.validation.expected_keepers import EpochKeeper, InferenceKeeper
from chain.validation.keeper import ValidationKeeper
from chain.validation.tasks import Tasks
from inferchain_pb.inference.v1.inference_pb2 import EXPIRED
from inferchain_pb.inference.v1.validation_pb2 import IN_VOTE, OPEN, SummaryCursor

log = logging.getLogger(__name__)

# About 0.1 s of summarizing on one core (bench/state_growth.py measures the cost of one):
# the most one block carries.
SUMMARIES_PER_BLOCK = 2_000


class Summaries:
    def __init__(self, keeper: ValidationKeeper, inference: InferenceKeeper,
                 epochs: EpochKeeper, tasks: Tasks) -> None:
        self.keeper = keeper
        self.inference = inference
        self.epochs = epochs
        self.tasks = tasks

    def start(self, ctx: Context, epoch: int) -> None:
        self.keeper.set_summary_cursor(ctx.kv, SummaryCursor(
            epoch=epoch, height=self.epochs.start_of(ctx.kv, epoch)))

    def advance(self, ctx: Context) -> None:
        budget = SUMMARIES_PER_BLOCK
        for cursor in self.keeper.summary_cursors(ctx.kv):
            left = self._advance(ctx, cursor, budget)
            if left is None:
                return
            budget = left

    def _advance(self, ctx: Context, cursor: SummaryCursor, budget: int) -> int | None:
        """Summarizes from the cursor on: what is left of the budget once the epoch's last
        height is done, or None if the budget ran out first (the cursor is saved)."""
        last = self.epochs.start_of(ctx.kv, cursor.epoch + 1) - 1
        summarized = 0
        while cursor.height <= last:
            for inference_id in self._pending(ctx, cursor):
                if budget <= 0:
                    self.keeper.set_summary_cursor(ctx.kv, cursor)
                    log.info("epoch %d: %d inferences summarized this block; the rest from "
                             "height %d next block", cursor.epoch, summarized, cursor.height)
                    return None
                summarized += self._summarize(ctx, cursor.expired, inference_id)
                cursor.inference_id = inference_id
                budget -= 1
            cursor.height += cursor.expired
            cursor.expired = not cursor.expired
            cursor.inference_id = ""
        self.keeper.end_summary_cursor(ctx.kv, cursor.epoch)
        log.info("epoch %d: its settled inferences are summarized", cursor.epoch)
        return budget

    def _pending(self, ctx: Context, cursor: SummaryCursor) -> list[str]:
        """The ids left in the cursor's part of its height: tasks, then expired ones."""
        if cursor.expired:
            return self.inference.ids_by_status_at(ctx.kv, EXPIRED, cursor.height,
                                                   cursor.inference_id)
        return self.keeper.task_ids_finished_at(ctx.kv, cursor.height, cursor.inference_id)

    def _summarize(self, ctx: Context, expired: bool, inference_id: str) -> int:
        if expired:
            self.inference.summarize(ctx.kv, inference_id, 0, ctx.block.height)
            return 1
        task = self.keeper.task(ctx.kv, inference_id)
        if task.state in (OPEN, IN_VOTE):
            return 0
        self.tasks.summarize(ctx, task)
        return 1
