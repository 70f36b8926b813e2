"""Weights from proof of compute, fixed at each epoch's first block (docs/design.md §7.3).

A submission counts if the weight of the members who passed its sample is at least that of
those who failed it (a tie keeps it, as in inference votes; unchecked counts). Its weight is
its nonce count, capped at ``max_weight_share_ppm`` of all counted nonces, so no participant
dominates the draw, the checks or governance. Participants that did not submit get 0. An
epoch in which nobody submitted (proof of compute not running) leaves the weights as they
were: otherwise a network without PoC would lose every executor at its first boundary. That
keeps genesis weights only: a participant registers with weight 0, so an account that never
computed stays out of the draw, the members, governance and the validator set. A participant
that withdrew has weight 0 from the next boundary on, whatever it proved before leaving.
"""

import logging

from chain.context import Context
from chain.epochs.expected_keepers import InferenceKeeper
from chain.epochs.keeper import EpochKeeper
from chain.scales import PPM
from inferchain_pb.inference.v1.epochs_pb2 import PocSubmission

log = logging.getLogger(__name__)


def accepted(submission: PocSubmission) -> bool:
    passed = sum(v.weight for v in submission.verdicts if v.passed)
    failed = sum(v.weight for v in submission.verdicts if not v.passed)
    return passed >= failed


def capped_weights(counts: dict[str, int], max_share_ppm: int) -> dict[str, int]:
    total = sum(counts.values())
    cap = max(1, total * max_share_ppm // PPM)
    return {addr: min(count, cap) for addr, count in counts.items()}


class Weights:
    def __init__(self, epochs: EpochKeeper, inference: InferenceKeeper) -> None:
        self.epochs = epochs
        self.inference = inference

    def epoch_start(self, ctx: Context, epoch: int) -> None:
        """Sets every participant's weight for ``epoch`` from the previous epoch's PoC."""
        if epoch == 0:
            return
        submissions = list(self.epochs.submissions(ctx.kv, epoch - 1))
        if not submissions:
            if self.epochs.params(ctx.kv).poc_enabled:
                log.warning("epoch %d: nobody submitted proof of compute in epoch %d; weights "
                            "stay as they were", epoch, epoch - 1)
            self._clear_withdrawn(ctx)
            return
        # A participant that withdrew since it proved gets nothing, nor counts toward the cap.
        active = {p.address for p in self.inference.participants(ctx.kv) if p.active}
        counts = {s.participant: s.nonces for s in submissions
                  if accepted(s) and s.participant in active}
        weights = capped_weights(counts, self.epochs.params(ctx.kv).max_weight_share_ppm)
        for submission in submissions:
            submission.settled = True
            submission.accepted = accepted(submission)
            submission.weight = weights.get(submission.participant, 0)
            self.epochs.set_submission(ctx.kv, submission)
            failed_by = [v.validator for v in submission.verdicts if not v.passed]
            verdict = ("REFUSED (failed by " + ", ".join(failed_by) + ")"
                       if not submission.accepted else "accepted"
                       if submission.participant in active else "accepted, but withdrawn")
            log.log(logging.INFO if submission.accepted else logging.WARNING,
                    "epoch %d PoC of %s: %d nonces, %d verdicts, %s → weight %d", epoch - 1,
                    submission.participant, submission.nonces, len(submission.verdicts),
                    verdict, submission.weight)
        for participant in self.inference.participants(ctx.kv):
            weight = weights.get(participant.address, 0)
            if participant.weight != weight:
                participant.weight = weight
                self.inference.set_participant(ctx.kv, participant)
        self.epochs.prune_nonces(ctx.kv, epoch - 1)
        ctx.emit("poc_weights", epoch=str(epoch), participants=str(len(weights)),
                 total_weight=str(sum(weights.values())))

    def _clear_withdrawn(self, ctx: Context) -> None:
        """A participant that withdrew keeps no weight past the boundary, even where the
        weights otherwise stay: whatever it proved before leaving, it is out."""
        for participant in self.inference.participants(ctx.kv):
            if not participant.active and participant.weight:
                participant.weight = 0
                self.inference.set_participant(ctx.kv, participant)
