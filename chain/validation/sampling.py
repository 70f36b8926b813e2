"""Who must check an inference (docs/design.md §6.2): the rule a validator applies with its secret
seed and the chain re-applies once the seed is revealed.

The executor's reputation sets the probability that the inference is checked at all,
``p = p_min + (p_max − p_min) × (1 − reputation)``. What the epoch's other members owe for it
is ``m = −ln(1 − p)`` checks on average, capped at ``max_expected_checks`` (2 by default), and
each member V carries its weight's share of them: it checks with probability
``q_V = min(1, m × w_V / W)`` (W: the members' total weight without the executor). Only the
members that served the inference's model at the epoch's start share its checks (W is their
total): a member has no ML node to score another model with.

So the expected number of checks is ``m`` (fewer only where a member's share is capped at 1),
however many members there are: a newcomer (p = 1) costs 2 re-scores, not one per member. The
chance that nobody checks, ``Π (1 − q_V) ≤ Π e^(−m w_V / W) = e^(−m)``, is at most ``1 − p``
below the cap (at small p, about 1% checked at 1% sampled) and at most e^(−2) ≈ 13.5% above
it; a cheating newcomer is caught across its inferences rather than on each one
(docs/validation.md). Each member's checks follow its weight.

V checks when ``ticket(seed, inference id) < threshold(m, w_V, W)``, both 64-bit integers. ``m``
is computed once, when the inference is finished, with ``decimal`` at a fixed precision (its ln
is correctly rounded) and kept in the task; the threshold is then integer arithmetic. Every
node and every validator gets the same integers; no binary floats are involved.
"""

import hashlib
from decimal import Context, Decimal

from chain.scales import PPM
from inferchain_pb.inference.v1.validation_pb2 import EpochMembers, ValidationTask

TICKET_SPACE = 1 << 64
TICKET_TAG = b"inferchain/validate/v1"
SEED_BYTES = 32
_DECIMAL = Context(prec=40)


def check_probability_ppm(reputation_ppm: int, p_min_ppm: int, p_max_ppm: int) -> int:
    """p in parts per million for an executor of this reputation (integer arithmetic)."""
    return p_min_ppm + (p_max_ppm - p_min_ppm) * (PPM - reputation_ppm) // PPM


def expected_checks_ppm(p_ppm: int, max_checks_ppm: int) -> int:
    """``min(−ln(1 − p), max)`` checks, in millionths, rounded down: the checks an inference
    checked with probability p is owed in all."""
    if p_ppm <= 0 or max_checks_ppm <= 0:
        return 0
    if p_ppm >= PPM:
        return max_checks_ppm
    miss = _DECIMAL.divide(Decimal(PPM - p_ppm), Decimal(PPM))
    checks = _DECIMAL.multiply(_DECIMAL.minus(_DECIMAL.ln(miss)), Decimal(PPM))
    return min(max_checks_ppm, int(checks))


def threshold(checks_ppm: int, weight: int, total_weight: int) -> int:
    """Tickets below this integer are checks for a member of ``weight`` out of
    ``total_weight``: ``min(1, m × weight / total)`` of the ticket space."""
    if weight <= 0 or total_weight <= 0 or checks_ppm <= 0:
        return 0
    return min(TICKET_SPACE, checks_ppm * weight * TICKET_SPACE // (PPM * total_weight))


def ticket(seed: bytes, inference_id: str) -> int:
    """The validator's private lottery number for one inference."""
    digest = hashlib.sha256(TICKET_TAG + seed + inference_id.encode()).digest()
    return int.from_bytes(digest[:8], "big")


def must_check(seed: bytes, inference_id: str, checks_ppm: int, weight: int,
               total_weight: int) -> bool:
    return ticket(seed, inference_id) < threshold(checks_ppm, weight, total_weight)


class CheckShares:
    """An epoch's members by the models they served at its start: who owes the checks of
    each model's inferences, and with what weight, for judging, votes and the validator
    workers alike."""

    def __init__(self, members: EpochMembers) -> None:
        self._weights: dict[str, dict[str, int]] = {}
        for member in members.members:
            if member.weight:
                for model_id in member.model_ids:
                    self._weights.setdefault(model_id, {})[member.address] = member.weight
        self._totals = {model: sum(weights.values()) for model, weights in self._weights.items()}

    def owes(self, seed: bytes, task: ValidationTask, member: str) -> bool:
        """Whether ``seed`` makes ``member`` owe ``task`` a check: the executor never checks
        itself, so its weight is left out and the others' shares still add up to the task's
        expected checks."""
        weights = self._weights.get(task.model_id, {})
        weight = weights.get(member, 0)
        if member == task.executor or not weight:
            return False
        others = self._totals[task.model_id] - weights.get(task.executor, 0)
        return must_check(seed, task.inference_id, task.expected_checks_ppm, weight, others)

    def checkers(self, task: ValidationTask) -> dict[str, int]:
        """The members that could check ``task``, with their weights: its model's servers but
        the executor."""
        return {address: weight for address, weight in self._weights.get(task.model_id, {}).items()
                if address != task.executor}


def seed_hash(seed: bytes) -> bytes:
    """What MsgCommitSeed records; MsgClaimRewards must hash to it."""
    return hashlib.sha256(seed).digest()
