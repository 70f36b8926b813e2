"""What a validator measures when it re-scores an inference (docs/design.md §6.3).

One module, used by the validator worker, the calibration benchmark and the tests, so the
figures the chain judges are computed one way only:

- ``ids_match``: the artifact's token ids are the output ids, the output is no longer than
  ``max_tokens``, an output that ends early ends with an EOS token or on a stop sequence
  (unless its transfer agent signed it as a prefix: it stopped signing there, and the
  executor stopped within a few tokens of it, as it must, docs/design.md §3.5), and
  it ends at its first end: no EOS token and no complete stop sequence before its last token,
  and no position before the last whose token breaks the seeded rule where the rule picks EOS
  (the Score's EOS facts) while the output goes on. A mismatch is a failure, never an
  "auto-pass" and never a forgivable rule violation: an output that goes on past its end
  bills the developer for tokens the request never allowed.
- ``distance``: mean over output positions of the mean absolute difference between the
  executor's recorded logprobs (the sampled token's and its top-k alternatives') and the
  validator's. An alternative missing from the validator's (longer) top list is compared with
  the last logprob of that list, an upper bound of its true value, so the difference counted
  is a lower bound of the real one: missing entries never inflate the distance.
- ``rule_violations``: positions whose token the seeded sampling rule would not have picked
  under the validator's distribution, allowing ``tolerance`` of rounding.

The distance is measured from the validator's scores (chain/validation/logprob_scores.py),
which its report commits: should the inference be claimed as a canary, the chain measures
the same scores against the real artifact with the same function.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from chain.inference.artifact import ArtifactStep
from chain.scales import PPM
from chain.validation import logprob_scores
from chain.validation.logprob_scores import PositionScores
from mlnode.rule_check import is_the_pick, obeys_rule
from mlnode.types import ScoredPosition


@dataclass(frozen=True)
class Figures:
    ids_match: bool
    distance: float  # nats
    rule_violations: int
    positions: int
    scores: bytes = b""  # the encoded scores the distance was measured from (ids_match only)

    @property
    def distance_micro(self) -> int:
        return round(self.distance * PPM)


def ended_properly(output_ids: Sequence[int], max_tokens: int, eos_ids: Collection[int],
                   pieces: Sequence[str], stop: Sequence[str], prefix: bool = False) -> bool:
    """An output stops at max_tokens, on EOS, or once its text holds a stop sequence, and
    not later: no EOS and no whole stop sequence before its last token. A ``prefix`` (the
    output its transfer agent signed as delivered so far) may stop anywhere before that.
    ``pieces`` are the output ids' texts, one per id (a stop sequence split inside a
    multi-byte character is not seen, which can only let an output pass)."""
    if not output_ids or len(output_ids) > max_tokens:
        return False
    before_last = "".join(pieces[:-1])
    if any(t in eos_ids for t in output_ids[:-1]) or any(s and s in before_last for s in stop):
        return False
    if prefix or len(output_ids) == max_tokens or output_ids[-1] in eos_ids:
        return True
    text = "".join(pieces)
    return any(s and s in text for s in stop)


def skipped_eos(scored: Sequence[ScoredPosition], greedy: bool, tolerance: float) -> bool:
    """Some position before the last breaks the rule beyond rounding where the rule picks
    EOS: the output should have ended there. An executor whose rounding made it pick a
    neighbour of EOS obeys within ``tolerance`` and is not caught here."""
    return any(s.rule is not None and s.eos is not None
               and not obeys_rule(s.rule, greedy, tolerance) and is_the_pick(s.eos, greedy)
               for s in scored[:-1])


def position_scores(recorded: ArtifactStep, scored: ScoredPosition) -> PositionScores:
    """The validator's scores of one position: its logprob of the sampled token, its list's
    last logprob, and its logprobs of the executor's top ids (those in its list, or the
    sampled token)."""
    mine = dict(zip(scored.step.top_ids, scored.step.top_logprobs, strict=True))
    floor = scored.step.top_logprobs[-1] if scored.step.top_logprobs else scored.step.logprob
    mine.setdefault(scored.step.token_id, scored.step.logprob)
    micro = logprob_scores.micro
    return PositionScores(micro(scored.step.logprob), micro(floor),
                          tuple(micro(mine[t]) if t in mine else None
                                for t in recorded.top_ids))


def position_distance(recorded: ArtifactStep, scored: ScoredPosition) -> float:
    """Mean |executor − validator| logprob over the sampled token and its alternatives."""
    return logprob_scores.position_distance(recorded, position_scores(recorded, scored))


def measure(recorded: Sequence[ArtifactStep], output_ids: Sequence[int],
            scored: Sequence[ScoredPosition], *, greedy: bool, ended: bool,
            tolerance: float) -> Figures:
    """Figures for one inference: ``recorded`` is the executor's artifact, ``scored`` the
    validator's Score of the same output ids (with sampling, so the rule facts are set; a
    position without them cannot show the rule was obeyed and counts as a violation)."""
    ids_match = ended and [s.token_id for s in recorded] == list(output_ids) \
        and len(scored) == len(output_ids) and not skipped_eos(scored, greedy, tolerance)
    if not ids_match:
        return Figures(False, 0.0, 0, len(output_ids))
    scores = [position_scores(r, s) for r, s in zip(recorded, scored, strict=True)]
    violations = sum(s.rule is None or not obeys_rule(s.rule, greedy, tolerance)
                     for s in scored)
    return Figures(True, logprob_scores.distance(recorded, scores), violations, len(scored),
                   logprob_scores.encode(scores))
