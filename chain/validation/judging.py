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
from chain.inference import artifact, probes
from chain.validation import canary
from chain.validation.expected_keepers import EpochKeeper, InferenceKeeper
from chain.validation.keeper import ValidationKeeper
from chain.validation.sampling import CheckShares
from chain.validation.verdict import threshold_micro
from inferchain_pb.inference.v1.validation_pb2 import (
    FAILED,
    PASSED,
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


class _Records:
    """The epoch records one block of judging changes: the checkers' own, and any other
    member's that a canary touches, each read once and written back together."""

    def __init__(self, keeper: ValidationKeeper, ctx: Context, epoch: int,
                 checkers: list[_Checker]) -> None:
        self._keeper, self._ctx, self._epoch = keeper, ctx, epoch
        self._records = {c.member.address: c.record for c in checkers}

    def of(self, member: str) -> ValidatorEpochRecord:
        if member not in self._records:
            self._records[member] = self._keeper.record(self._ctx.kv, self._epoch, member)
        return self._records[member]

    def save(self) -> None:
        for record in self._records.values():
            self._keeper.set_record(self._ctx.kv, record)


class Judging:
    def __init__(self, keeper: ValidationKeeper, epochs: EpochKeeper,
                 inference: InferenceKeeper) -> None:
        self.keeper = keeper
        self.epochs = epochs
        self.inference = inference

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
        records = _Records(self.keeper, ctx, cursor.epoch, checkers)
        shares = CheckShares(members)
        last = self.epochs.start_of(ctx.kv, cursor.epoch + 1) - 1
        paused = False
        for task in self._tasks_from(ctx, cursor, last):
            if budget <= 0:
                paused = True
                break
            self._judge_canary(ctx, task, records)
            # A check is a report sealed in the window and opened: a ballot sealed in a
            # later vote is no check made in time, and a seal never opened is none at all.
            checked = {r.validator for r in (*task.reports, *task.canary_reports)
                       if r.sealed_height <= task.deadline}
            for checker in checkers:
                addr = checker.member.address
                if task.executor == addr:
                    continue
                if shares.owes(checker.commitment.seed, task, addr):
                    checker.record.required += 1
                    checker.record.done += addr in checked
                elif addr in checked:
                    checker.record.unassigned_reports += 1
            budget -= max(1, len(checkers))
            cursor.height, cursor.inference_id = task.finish_height, task.inference_id
        records.save()
        if not paused:
            return budget
        self.keeper.set_judging(ctx.kv, cursor)
        log.info("epoch %d: validator judgement paused after height %d's task %s; it goes on "
                 "next block", cursor.epoch, cursor.height, cursor.inference_id)
        return None

    def _judge_canary(self, ctx: Context, task: ValidationTask, records: _Records) -> None:
        """Canaries are known from the executor's seed of the draw's epoch, revealed by now
        (docs/design.md §6.9). A canary its executor did not claim (unless a vote had already
        invalidated it) or a claim that seed does not back makes the executor lazy; a claimed
        canary whose vote passed the real artifact makes lazy every member that passed the
        shifted one before the claim and before that seed's reveal told anyone."""
        commitment = self.keeper.commitment(ctx.kv, task.draw_epoch, task.executor)
        seed = commitment.seed if commitment is not None else b""
        if task.canary_key:
            if not seed or canary.key(seed, task.inference_id) != task.canary_key:
                records.of(task.executor).false_canary_claims += 1
                log.warning("executor %s claimed %s as a canary with a key its seed does not "
                            "give", task.executor, task.inference_id)
                return
            if task.state != PASSED or not task.canary_reports:
                return
            # An honest re-score lies within one threshold of the real artifact, so it must
            # fail the recorded one only when the shift put that two thresholds away.
            model = self.inference.model(ctx.kv, task.model_id)
            if task.canary_distance_micro < 2 * threshold_micro(model):
                log.info("canary %s was shifted by only %d micro-nats: its passes count for "
                         "nothing", task.inference_id, task.canary_distance_micro)
                return
            for report in task.canary_reports:
                record = records.of(report.validator)
                if not report.passed:
                    record.canaries_caught += 1
                elif report.sealed_height < commitment.reveal_height:
                    record.canaries_passed += 1
                    log.warning("validator %s passed canary %s without computing it",
                                report.validator, task.inference_id)
            return
        key = canary.key(seed, task.inference_id) if seed else b""
        if key and task.state != FAILED and canary.is_canary(key, task.canary_rate_ppm) and \
                self._shift_moves(ctx, task, key):
            records.of(task.executor).canary_claims_missed += 1
            log.warning("executor %s never claimed its canary %s", task.executor,
                        task.inference_id)

    def _shift_moves(self, ctx: Context, task: ValidationTask, key: bytes) -> bool:
        """Whether the canary shift changes the inference's artifact (it cannot when the
        artifact has no alternative to move): only then was it a canary to claim."""
        inference = self.inference.inference(ctx.kv, task.inference_id)
        if inference is None or not inference.artifact:
            return False
        model = self.inference.model(ctx.kv, task.model_id)
        k, _ = artifact.token_ids(inference.artifact)
        return canary.moves(inference.artifact, key, canary.model_quanta(model, k))

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
        last = self.epochs.start_of(ctx.kv, epoch + 1) - 1
        for member in members.members:
            record = self.keeper.record(ctx.kv, epoch, member.address)
            made = probes.take(ctx.kv, member.address, members.start_height, last)
            record.probes_missed = sum(max(0, members.probe_quota - made.get(model_id, 0))
                                       for model_id in members.probed_model_ids)
            commitment = self.keeper.commitment(ctx.kv, epoch, member.address)
            record.committed = commitment is not None
            record.revealed = bool(commitment is not None and commitment.seed)
            record.missed = record.required - record.done
            record.missed_poc_checks = sum(
                1 for s in submissions if s.participant != member.address
                and all(v.validator != member.address for v in s.verdicts))
            record.lazy = (not record.revealed or record.missed > 0 or record.missed_votes > 0
                           or record.canaries_passed > 0 or record.missed_poc_checks > 0
                           or record.unassigned_reports > 0 or record.canary_claims_missed > 0
                           or record.false_canary_claims > 0 or record.probes_missed > 0)
            record.settled = True
            self.keeper.set_record(ctx.kv, record)
            ctx.emit("validator_epoch", validator=member.address, epoch=str(epoch),
                     required=str(record.required), done=str(record.done),
                     lazy=str(record.lazy).lower())
            log.log(logging.WARNING if record.lazy else logging.INFO,
                    "epoch %d validator %s: %d checks assigned, %d done, %d votes missed, "
                    "%d PoC checks missed, %d canaries passed, %d unassigned reports, %d canary "
                    "claims missed, %d false, %d probes missed, seed %s%s",
                    epoch, member.address, record.required, record.done, record.missed_votes,
                    record.missed_poc_checks, record.canaries_passed, record.unassigned_reports,
                    record.canary_claims_missed, record.false_canary_claims,
                    record.probes_missed,
                    "revealed" if record.revealed else "NOT revealed",
                    " — LAZY, forfeits the epoch's rewards" if record.lazy else "")
