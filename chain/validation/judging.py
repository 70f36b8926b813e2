"""Judging an epoch's validators by their revealed seeds, spread over blocks.

Once an epoch's reveal window ends, the chain recomputes which of the epoch's inferences each
member's seed assigned to it and whether it reported on them (chain/validation/sampling.py),
and counts the reports it made on inferences neither its seed nor a vote gave it: the chain
could not refuse them while the seed was secret, so they make the member lazy now.
That is members × tasks lottery draws, and tasks are cheap to create, so doing them all in one
block would let anyone stall block production by finishing many small inferences. Each block
instead judges at most ``PAIRS_PER_BLOCK`` (task, member) pairs, resuming where the last block
stopped (a JudgingCursor per epoch); epochs are judged oldest first. A network whose epoch fits
the budget is judged in the block its reveal window ends, as before; a larger one a few blocks
later, and its settlement follows when the judgement completes.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from chain.context import Context
from chain.validation.expected_keepers import EpochKeeper
from chain.validation.keeper import ValidationKeeper
from chain.validation.sampling import CheckShares
from inferchain_pb.inference.v1.validation_pb2 import (
    EpochMember,
    EpochMembers,
    JudgingCursor,
    SeedCommitment,
    ValidationTask,
    ValidatorEpochRecord,
)

log = logging.getLogger(__name__)

# About 0.1 s of lottery draws on one core: the most judging work one block may carry.
PAIRS_PER_BLOCK = 50_000


@dataclass
class _Checker:
    """A member whose revealed seed is judged, and the record its checks are counted into."""

    member: EpochMember
    commitment: SeedCommitment
    record: ValidatorEpochRecord


class Judging:
    def __init__(self, keeper: ValidationKeeper, epochs: EpochKeeper) -> None:
        self.keeper = keeper
        self.epochs = epochs

    def start(self, ctx: Context, epoch: int) -> None:
        self.keeper.set_judging(ctx.kv, JudgingCursor(
            epoch=epoch, height=self.epochs.start_of(ctx.kv, epoch)))

    def advance(self, ctx: Context) -> list[int]:
        """Judges up to the block's budget; the epochs whose judgement completed."""
        budget = PAIRS_PER_BLOCK
        completed = []
        for cursor in self.keeper.judging(ctx.kv):
            members = self.keeper.members(ctx.kv, cursor.epoch)
            if members is not None:
                left = self._count_checks(ctx, cursor, members, budget)
                if left is None:
                    break
                budget = left
                self._finalize_records(ctx, cursor.epoch, members)
            self.keeper.end_judging(ctx.kv, cursor.epoch)
            completed.append(cursor.epoch)
        return completed

    def _count_checks(self, ctx: Context, cursor: JudgingCursor, members: EpochMembers,
                      budget: int) -> int | None:
        """Counts required and done checks from the cursor on: what is left of the budget
        once the epoch's last task is counted, or None if the budget ran out first."""
        checkers = self._checkers(ctx, cursor.epoch, members)
        shares = CheckShares(members)
        last = self.epochs.start_of(ctx.kv, cursor.epoch + 1) - 1
        paused = False
        for task in self._tasks_from(ctx, cursor, last):
            if budget <= 0:
                paused = True
                break
            reporters = {r.validator for r in task.reports}
            for checker in checkers:
                addr = checker.member.address
                if task.executor == addr:
                    continue
                if shares.owes(checker.commitment.seed, task, addr):
                    # Once a vote opened only its voters may report: a check not made by
                    # then is no longer owed (the vote re-scores the inference).
                    reported = addr in reporters
                    checker.record.required += reported or not task.voters
                    checker.record.done += reported
                elif addr in reporters and addr not in task.voters:
                    checker.record.unassigned_reports += 1
            budget -= max(1, len(checkers))
            cursor.height, cursor.inference_id = task.finish_height, task.inference_id
        for checker in checkers:
            self.keeper.set_record(ctx.kv, checker.record)
        if not paused:
            return budget
        self.keeper.set_judging(ctx.kv, cursor)
        log.info("epoch %d: validator judgement paused after height %d's task %s; it goes on "
                 "next block", cursor.epoch, cursor.height, cursor.inference_id)
        return None

    def _checkers(self, ctx: Context, epoch: int, members: EpochMembers) -> list[_Checker]:
        checkers = []
        for member in members.members:
            commitment = self.keeper.commitment(ctx.kv, epoch, member.address)
            if commitment is not None and commitment.seed:
                checkers.append(_Checker(member, commitment,
                                         self.keeper.record(ctx.kv, epoch, member.address)))
        return checkers

    def _tasks_from(self, ctx: Context, cursor: JudgingCursor,
                    last: int) -> Iterator[ValidationTask]:
        """The epoch's tasks after the cursor, in (height, id) order."""
        yield from self.keeper.tasks_finished_at(ctx.kv, cursor.height, cursor.inference_id)
        for height in range(cursor.height + 1, last + 1):
            yield from self.keeper.tasks_finished_at(ctx.kv, height)

    def _finalize_records(self, ctx: Context, epoch: int, members: EpochMembers) -> None:
        """Once every task is counted: what each member missed, and whether it was lazy."""
        submissions = list(self.epochs.submissions(ctx.kv, epoch))
        for member in members.members:
            record = self.keeper.record(ctx.kv, epoch, member.address)
            commitment = self.keeper.commitment(ctx.kv, epoch, member.address)
            record.committed = commitment is not None
            record.revealed = bool(commitment is not None and commitment.seed)
            record.missed = record.required - record.done
            record.missed_poc_checks = sum(
                1 for s in submissions if s.participant != member.address
                and all(v.validator != member.address for v in s.verdicts))
            record.lazy = (not record.revealed or record.missed > 0 or record.missed_votes > 0
                           or record.canaries_passed > 0 or record.missed_poc_checks > 0
                           or record.unassigned_reports > 0)
            record.settled = True
            self.keeper.set_record(ctx.kv, record)
            ctx.emit("validator_epoch", validator=member.address, epoch=str(epoch),
                     required=str(record.required), done=str(record.done),
                     lazy=str(record.lazy).lower())
            log.log(logging.WARNING if record.lazy else logging.INFO,
                    "epoch %d validator %s: %d checks assigned, %d done, %d votes missed, "
                    "%d PoC checks missed, %d canaries passed, %d unassigned reports, seed %s%s",
                    epoch, member.address, record.required, record.done, record.missed_votes,
                    record.missed_poc_checks, record.canaries_passed, record.unassigned_reports,
                    "revealed" if record.revealed else "NOT revealed",
                    " — LAZY, forfeits the epoch's rewards" if record.lazy else "")
