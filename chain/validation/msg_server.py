"""Validation messages: seed commitments and reveals, and validators' reports."""

import hmac

from nacl.exceptions import BadSignatureError

from chain.context import Context
from chain.inference import payload
from chain.validation.errors import (
    BadEpoch,
    BadFigures,
    BadSeal,
    BadSeed,
    BadSignature,
    DuplicateValidation,
    NotAllowed,
    NotParticipant,
    SeedCommitted,
    TaskNotFound,
    WindowClosed,
)
from chain.validation.expected_keepers import EpochKeeper, InferenceKeeper
from chain.validation.keeper import ValidationKeeper
from chain.validation.sampling import SEED_BYTES, CheckShares, seed_hash
from chain.validation.seals import opening_heights, sealed_or_reported
from chain.validation.tasks import Tasks
from chain.verified_signatures import verify_ed25519
from inferchain_pb.inference.v1.inference_pb2 import Participant
from inferchain_pb.inference.v1.validation_pb2 import (
    IN_VOTE,
    OPEN,
    EpochMembers,
    MsgClaimCanary,
    MsgClaimRewards,
    MsgCommitSeed,
    MsgOpenScores,
    MsgSealValidation,
    MsgValidation,
    ReportSeal,
    SeedCommitment,
    ValidationReport,
    ValidationTask,
)


class ValidationMsgServer:
    def __init__(self, keeper: ValidationKeeper, inference: InferenceKeeper,
                 epochs: EpochKeeper, tasks: Tasks) -> None:
        self._keeper = keeper
        self._inference = inference
        self._epochs = epochs
        self._tasks = tasks

    def commit_seed(self, ctx: Context, msg: MsgCommitSeed) -> None:
        """Takes a seed commitment only before any task it could be judged on exists: for
        epoch e + 1 during epoch e, and for epoch 0, which no block precedes, until its first
        inference finishes. A seed chosen later could be chosen knowing the epoch's tasks, or
        excuse the member from them (docs/design.md §6.1)."""
        self._participant(ctx, msg.creator)
        current = self._epochs.epoch_of(ctx.kv, ctx.block.height)
        genesis_open = msg.epoch == current == 0 and not self._keeper.any_task(ctx.kv)
        if msg.epoch != current + 1 and not genesis_open:
            raise BadEpoch(f"at height {ctx.block.height} a seed is committed for epoch "
                           f"{current + 1} only (it must precede its epoch; epoch 0's its first "
                           f"inference), not for epoch {msg.epoch}")
        if len(msg.seed_hash) != 32:
            raise BadSeed("seed_hash must be a 32-byte sha256 digest")
        if self._keeper.commitment(ctx.kv, msg.epoch, msg.creator) is not None:
            raise SeedCommitted(f"{msg.creator} already committed a seed for epoch {msg.epoch}")
        self._keeper.set_commitment(ctx.kv, SeedCommitment(
            address=msg.creator, epoch=msg.epoch, seed_hash=msg.seed_hash,
            commit_height=ctx.block.height))
        ctx.emit("commit_seed", validator=msg.creator, epoch=str(msg.epoch))

    def claim_rewards(self, ctx: Context, msg: MsgClaimRewards) -> None:
        commitment = self._keeper.commitment(ctx.kv, msg.epoch, msg.creator)
        if commitment is None:
            raise BadSeed(f"{msg.creator} committed no seed for epoch {msg.epoch}")
        if commitment.seed:
            raise SeedCommitted(f"the seed for epoch {msg.epoch} was already revealed")
        if self._epochs.epoch_of(ctx.kv, ctx.block.height) <= msg.epoch:
            raise BadEpoch(f"epoch {msg.epoch} is not over; its seed stays secret until then")
        last = self._epochs.start_of(ctx.kv, msg.epoch + 1) + \
            self._keeper.params(ctx.kv).reveal_window_blocks - 1
        if ctx.block.height > last:
            raise WindowClosed(f"seeds of epoch {msg.epoch} could be revealed until height "
                               f"{last}")
        if len(msg.seed) != SEED_BYTES or \
                not hmac.compare_digest(seed_hash(msg.seed), commitment.seed_hash):
            raise BadSeed("the seed does not match the commitment")
        commitment.seed, commitment.reveal_height = msg.seed, ctx.block.height
        self._keeper.set_commitment(ctx.kv, commitment)
        self._tasks.settle_bonds(ctx, msg.epoch, msg.creator, msg.seed)
        ctx.emit("claim_rewards", validator=msg.creator, epoch=str(msg.epoch))

    def claim_canary(self, ctx: Context, msg: MsgClaimCanary) -> None:
        task = self._keeper.task(ctx.kv, msg.inference_id)
        if task is None:
            raise TaskNotFound(f"no validation task for inference {msg.inference_id!r} (never "
                               f"finished, or settled and summarized)")
        if task.executor != msg.creator:
            raise NotAllowed("only an inference's executor claims it as a canary")
        self._tasks.claim_canary(ctx, task, msg.key)

    def seal_validation(self, ctx: Context, msg: MsgSealValidation) -> None:
        """Takes a sealed report while the task takes reports from its sender: in the window
        from any member, in a vote from a drawn voter without a report. The seal fixes the
        report and shows nothing of it, so a member cannot copy another's verdict: every
        report is fixed before any is opened (docs/design.md §6.3)."""
        self._participant(ctx, msg.creator)
        if len(msg.seal) != 32:
            raise BadSeal("a seal is a 32-byte sha256 digest")
        task = self._task(ctx, msg.inference_id, msg.creator)
        # Only the model's servers check its inferences (docs/design.md §6.2); once each of
        # them sealed, no report can come that could copy one, and the window's seals open.
        checkers = CheckShares(self._keeper.members(ctx.kv, task.epoch) or EpochMembers()) \
            .checkers(task)
        if msg.creator not in checkers:
            raise NotAllowed(f"{msg.creator} is not a member of epoch {task.epoch} that served "
                             f"model {task.model_id} at its start: only its servers check its "
                             f"inferences")
        if msg.creator in sealed_or_reported(task):
            raise DuplicateValidation(f"{msg.creator} already reported on {msg.inference_id}")
        height = ctx.block.height
        # Once a vote is open only its drawn voters report (docs/design.md §6.5): anyone else
        # would weigh on an outcome the draw gave to others. Before, any member may report
        # within the window: its assignment is secret until its seed is revealed, and
        # judging then counts a report it was not assigned against it.
        if task.voters and msg.creator not in task.voters:
            raise NotAllowed(f"{msg.creator} was not drawn for the vote on "
                             f"{msg.inference_id} (voters: {', '.join(task.voters)})")
        in_window = task.state == OPEN and height <= task.deadline
        voting = task.state == IN_VOTE and height <= task.vote_deadline
        if not (in_window or voting):
            raise WindowClosed(f"inference {msg.inference_id} takes no sealed report from "
                               f"{msg.creator} now (task state {task.state}, sealing until "
                               f"height {task.vote_deadline if task.voters else task.deadline})")
        task.seals.append(ReportSeal(validator=msg.creator, seal=msg.seal, height=height))
        if in_window and set(checkers) <= sealed_or_reported(task):
            task.window_sealed_height = height
        self._keeper.set_task(ctx.kv, task)
        ctx.emit("validation_seal", inference_id=msg.inference_id, validator=msg.creator)

    def validation(self, ctx: Context, msg: MsgValidation) -> None:
        """Opens the sender's seal on the task once the sealing it belongs to has ended, and
        takes the figures it sealed as its report."""
        validator = self._participant(ctx, msg.creator)
        if len(msg.scores_sha256) not in (0, 32):
            raise BadFigures("scores_sha256 must be empty or a 32-byte sha256 digest")
        signed = payload.validation_payload(
            msg.inference_id, msg.output_hash, msg.distance_micro, msg.rule_violations,
            msg.ids_match, msg.positions, msg.creator, msg.scores_sha256)
        try:
            verify_ed25519(validator.node_pubkey, signed, msg.validator_signature)
        except (BadSignatureError, ValueError, TypeError) as exc:
            raise BadSignature("the validator's node-key signature does not verify") from exc
        task = self._task(ctx, msg.inference_id, msg.creator)
        inference = self._inference.inference(ctx.kv, msg.inference_id)
        if msg.output_hash != inference.output_hash or msg.positions != len(inference.output_ids):
            raise BadFigures("the figures are for another output than the one on record")
        if any(r.validator == msg.creator for r in task.reports):
            raise DuplicateValidation(f"{msg.creator} already reported on {msg.inference_id}")
        seal = next((s for s in task.seals if s.validator == msg.creator), None)
        if seal is None:
            raise NotAllowed(f"{msg.creator} sealed no report on {msg.inference_id}: a report "
                             f"is sealed (MsgSealValidation) while the task takes reports, "
                             f"and opened after")
        height = ctx.block.height
        first, last = opening_heights(task, seal)
        if task.state not in (OPEN, IN_VOTE) or not first <= height <= last:
            raise WindowClosed(f"{msg.creator}'s seal on {msg.inference_id} opens from height "
                               f"{first} to {last}, not at {height}")
        if len(msg.salt) != payload.SALT_BYTES or not hmac.compare_digest(
                payload.validation_seal(msg.salt, signed), seal.seal):
            raise BadSeal(f"the report does not open {msg.creator}'s seal on "
                          f"{msg.inference_id}")
        weight = self._member_weight(ctx, task.epoch, msg.creator)
        task.seals.remove(seal)
        self._tasks.report(ctx, task, ValidationReport(
            validator=msg.creator, distance_micro=msg.distance_micro,
            rule_violations=msg.rule_violations, ids_match=msg.ids_match, height=height,
            weight=weight, sealed_height=seal.height, scores_sha256=msg.scores_sha256))
        ctx.emit("validation", inference_id=msg.inference_id, validator=msg.creator,
                 passed=str(task.reports[-1].passed).lower(),
                 distance_micro=str(msg.distance_micro),
                 rule_violations=str(msg.rule_violations))

    def open_scores(self, ctx: Context, msg: MsgOpenScores) -> None:
        """A reporter's scores of a claimed canary, measured against its real artifact."""
        self._participant(ctx, msg.creator)
        task = self._task(ctx, msg.inference_id, msg.creator)
        self._tasks.open_scores(ctx, task, msg.creator, msg.scores)

    def _task(self, ctx: Context, inference_id: str, creator: str) -> ValidationTask:
        """The task a report is about; never the sender's own inference."""
        task = self._keeper.task(ctx.kv, inference_id)
        if task is None:
            known = self._inference.inference(ctx.kv, inference_id)
            if known is not None and known.summarized_height:
                raise WindowClosed(f"inference {inference_id} was settled and summarized "
                                   f"at height {known.summarized_height}: it takes no more "
                                   f"reports")
            raise TaskNotFound(f"no finished inference {inference_id!r} to validate")
        if task.executor == creator:
            raise NotAllowed("an executor never validates its own inference")
        return task

    def _participant(self, ctx: Context, addr: str) -> Participant:
        participant = self._inference.participant(ctx.kv, addr)
        if participant is None:
            raise NotParticipant(f"{addr} is not a registered participant")
        return participant

    def _member_weight(self, ctx: Context, epoch: int, addr: str) -> int:
        members = self._keeper.members(ctx.kv, epoch)
        for member in members.members if members else []:
            if member.address == addr:
                return member.weight
        raise NotAllowed(f"{addr} is not a validator in epoch {epoch}")
