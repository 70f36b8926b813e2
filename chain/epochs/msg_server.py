"""Proof-of-compute messages (docs/design.md §7.2): participants submit the nonces they found in the
PoC window; the epoch's members report their re-computation of a sample of each submission.

The chain does the cheap checks only (the window, the target, no nonce twice); whether the
nonces are real is for the members' verdicts, weighed at the next epoch's first block
(chain/epochs/weights.py).
"""

import math

from chain.context import Context
from chain.epochs.errors import (
    AboveTarget,
    BadBatch,
    DuplicateNonce,
    DuplicateVerdict,
    NoSubmission,
    NotAllowed,
    NotParticipant,
    WindowClosed,
)
from chain.epochs.expected_keepers import InferenceKeeper, ValidationKeeper
from chain.epochs.keeper import EpochKeeper
from chain.scales import PPM
from inferchain_pb.inference.v1.epochs_pb2 import (
    MsgPocValidation,
    MsgSubmitPoc,
    PocSubmission,
    PocVerdict,
)

# Nonces per MsgSubmitPoc: a batch stays well under the block's byte limit.
MAX_BATCH = 4096


class EpochsMsgServer:
    def __init__(self, epochs: EpochKeeper, inference: InferenceKeeper,
                 validation: ValidationKeeper) -> None:
        self._epochs = epochs
        self._inference = inference
        self._validation = validation

    def submit(self, ctx: Context, msg: MsgSubmitPoc) -> None:
        participant = self._inference.participant(ctx.kv, msg.creator)
        if participant is None or not participant.active:
            raise NotParticipant(f"{msg.creator} is not an active participant")
        height = ctx.block.height
        params = self._epochs.params(ctx.kv)
        current = params.epoch_of(height)
        if not params.poc_enabled:
            raise WindowClosed("proof of compute is off (epochs param poc_window_blocks is 0)")
        if msg.epoch != current or height > params.poc_end(current):
            raise WindowClosed(
                f"the PoC window of epoch {msg.epoch} is not open at height {height} (epoch "
                f"{current}'s is heights {params.start_of(current)}-{params.poc_end(current)})")
        if not 0 < len(msg.nonces) <= MAX_BATCH:
            raise BadBatch(f"a PoC batch holds 1 to {MAX_BATCH} nonces, got {len(msg.nonces)}")
        target = params.poc_target_distance_micro / PPM
        seen: set[int] = set()
        for nonce in msg.nonces:
            if not math.isfinite(nonce.distance) or not 0 <= nonce.distance <= target:
                raise AboveTarget(f"nonce {nonce.nonce} claims distance {nonce.distance}, "
                                  f"not within the target {target}")
            if nonce.nonce in seen or self._epochs.claimed(ctx.kv, msg.epoch, msg.creator,
                                                            nonce.nonce):
                raise DuplicateNonce(f"nonce {nonce.nonce} is already claimed in epoch "
                                     f"{msg.epoch}")
            seen.add(nonce.nonce)
        submission = self._epochs.submission(ctx.kv, msg.epoch, msg.creator) or \
            PocSubmission(epoch=msg.epoch, participant=msg.creator)
        self._epochs.add_nonces(ctx.kv, submission, list(msg.nonces))
        ctx.emit("poc_batch", participant=msg.creator, epoch=str(msg.epoch),
                 nonces=str(len(msg.nonces)), total=str(submission.nonces))

    def validate(self, ctx: Context, msg: MsgPocValidation) -> None:
        height = ctx.block.height
        params = self._epochs.params(ctx.kv)
        current = params.epoch_of(height)
        if msg.epoch != current or not params.poc_end(current) < height <= \
                params.poc_validation_end(current):
            raise WindowClosed(f"PoC checks of epoch {msg.epoch} are not open at height "
                               f"{height}")
        members = self._validation.members(ctx.kv, msg.epoch)
        weight = next((m.weight for m in members.members if m.address == msg.creator), 0) \
            if members else 0
        if not weight:
            raise NotAllowed(f"{msg.creator} is not a member of epoch {msg.epoch} with weight")
        if msg.participant == msg.creator:
            raise NotAllowed("a participant does not check its own proof of compute")
        if msg.failed > msg.checked:
            raise BadBatch(f"failed ({msg.failed}) exceeds checked ({msg.checked})")
        submission = self._epochs.submission(ctx.kv, msg.epoch, msg.participant)
        if submission is None:
            raise NoSubmission(f"{msg.participant} submitted no proof of compute in epoch "
                               f"{msg.epoch}")
        if any(v.validator == msg.creator for v in submission.verdicts):
            raise DuplicateVerdict(f"{msg.creator} already checked {msg.participant}'s proof "
                                   f"of compute for epoch {msg.epoch}")
        submission.verdicts.append(PocVerdict(validator=msg.creator, passed=msg.passed,
                                              checked=msg.checked, failed=msg.failed,
                                              weight=weight, height=height))
        self._epochs.set_submission(ctx.kv, submission)
        ctx.emit("poc_validation", validator=msg.creator, participant=msg.participant,
                 epoch=str(msg.epoch), passed=str(msg.passed).lower())
