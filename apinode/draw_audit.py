"""Counts draw disagreements: a bug signal, never routine.

The transfer agent, the executor and the chain compute the executor draw with one function
over one fixed record (``InferenceKeeper.draw``, through the chain's Draw query), so a Start
the chain refuses with code 10 (draw mismatch) or a forward an executor refuses because the
draw names someone else means one of them is wrong (or a transfer agent cheats). Each one is
logged at ERROR with both picks and the height, and counted; ``GET /health`` reports the
counts as ``draw_mismatches`` so operators and tests can watch them.
"""

import logging
from dataclasses import dataclass

from apinode.outbox import Entry
from chain.inference.errors import DrawMismatch

log = logging.getLogger(__name__)

START_KIND = "start_inference"


@dataclass
class DrawAudit:
    """This node's draw disagreements since it started."""

    refused_starts: int = 0
    refused_forwards: int = 0

    def start_refused(self, inference_id: str, reason: str) -> None:
        """The chain refused this node's MsgStartInference for its draw."""
        self.refused_starts += 1
        log.error("DRAW MISMATCH: the chain refused the start of inference %s: %s (draw "
                  "mismatches so far: %d refused starts, %d refused forwards)", inference_id,
                  reason, self.refused_starts, self.refused_forwards)

    def outbox_refusal(self, entry: Entry, codespace: str, code: int, reason: str) -> None:
        """Hears the outbox's refused entries (``outbox_submit``'s ``on_refused``)."""
        if entry.kind == START_KIND and codespace == DrawMismatch.codespace \
                and code == DrawMismatch.code:
            self.start_refused(entry.key.removeprefix(START_KIND + ":"), reason)

    def forward_refused(self, inference_id: str, transfer_agent: str, draw_height: int,
                        attempt: int, named: str, picked: str) -> None:
        """This executor refused a forward whose draw the chain's does not match."""
        self.refused_forwards += 1
        log.error("DRAW MISMATCH: transfer agent %s names %s for attempt %d of inference %s "
                  "drawn at height %d; the chain's draw there picks %s (draw mismatches so "
                  "far: %d refused starts, %d refused forwards)", transfer_agent, named,
                  attempt, inference_id, draw_height, picked, self.refused_starts,
                  self.refused_forwards)

    def counts(self) -> dict[str, int]:
        return {"refused_starts": self.refused_starts,
                "refused_forwards": self.refused_forwards}
