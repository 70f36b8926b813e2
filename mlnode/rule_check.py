"""Judging a token against the seeded sampling rule, without torch.

The ML node computes where a token sits in the rule's distribution (``mlnode.sampling.locate``);
judging those facts needs no model, so it lives here where the API node's validator can
import it without torch.
"""

from dataclasses import dataclass

DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class RuleCheck:
    """Where a given token sits for the rule: its CDF interval and the u_i that was drawn."""

    cdf_low: float
    cdf_high: float
    u: float
    argmax_gap: float


def obeys_rule(check: RuleCheck, greedy: bool, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """True when the token is what the rule would pick, allowing ``tolerance`` of rounding.

    For sampling, u must fall in the token's CDF interval widened by the tolerance; for
    greedy decoding the token must be the argmax up to a logprob gap of the tolerance.
    """
    if greedy:
        return check.argmax_gap >= -tolerance
    if check.cdf_high - check.cdf_low <= 0.0:
        return False
    return check.cdf_low - tolerance <= check.u < check.cdf_high + tolerance
