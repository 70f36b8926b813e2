"""Who must check an inference (docs/design.md §6.2): the rule a validator applies with its secret
seed and the chain re-applies once the seed is revealed.

The executor's reputation sets the probability that the inference is checked at all,
``p = p_min + (p_max − p_min) × (1 − reputation)``. That probability is split across the
epoch's other members by weight: member V checks with probability
``q_V = 1 − (1 − p)^(w_V / W)`` (W: the members' total weight without the executor), so the
chance that nobody checks is ``Π (1 − p)^(w_V / W) = 1 − p`` and each member's share of the
checks follows its weight. At ``p = 1`` every member checks; at small p, ``q_V ≈ p w_V / W``.

V checks when ``ticket(seed, inference id) < threshold(q_V)``, both 64-bit integers. The
threshold is computed with ``decimal`` at a fixed precision (its exp and ln are correctly
rounded), so every node and every validator gets the same integer; no binary floats are
involved in the decision.
"""

import hashlib
from decimal import Context, Decimal

from chain.scales import PPM

TICKET_SPACE = 1 << 64
TICKET_TAG = b"inferchain/validate/v1"
SEED_BYTES = 32
_DECIMAL = Context(prec=40)


def check_probability_ppm(reputation_ppm: int, p_min_ppm: int, p_max_ppm: int) -> int:
    """p in parts per million for an executor of this reputation (integer arithmetic)."""
    return p_min_ppm + (p_max_ppm - p_min_ppm) * (PPM - reputation_ppm) // PPM


def threshold(p_ppm: int, weight: int, total_weight: int) -> int:
    """Tickets below this integer are checks for a member of ``weight`` out of ``total_weight``."""
    if weight <= 0 or total_weight <= 0 or p_ppm <= 0:
        return 0
    if p_ppm >= PPM:
        return TICKET_SPACE
    miss = _DECIMAL.divide(Decimal(PPM - p_ppm), Decimal(PPM))
    share = _DECIMAL.divide(Decimal(weight), Decimal(total_weight))
    stay = _DECIMAL.exp(_DECIMAL.multiply(_DECIMAL.ln(miss), share))
    return int(_DECIMAL.multiply(_DECIMAL.subtract(Decimal(1), stay), Decimal(TICKET_SPACE)))


def ticket(seed: bytes, inference_id: str) -> int:
    """The validator's private lottery number for one inference."""
    digest = hashlib.sha256(TICKET_TAG + seed + inference_id.encode()).digest()
    return int.from_bytes(digest[:8], "big")


def must_check(seed: bytes, inference_id: str, p_ppm: int, weight: int,
               total_weight: int) -> bool:
    return ticket(seed, inference_id) < threshold(p_ppm, weight, total_weight)


def seed_hash(seed: bytes) -> bytes:
    """What MsgCommitSeed records; MsgClaimRewards must hash to it."""
    return hashlib.sha256(seed).digest()
