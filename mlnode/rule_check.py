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



def is_the_pick(check: RuleCheck, greedy: bool) -> bool:
    """True when the rule, on these facts and without any tolerance, picks this token: u lies
    in its CDF interval, or, greedy, it is the argmax. Where the output token breaks the rule
    beyond rounding and EOS is the pick, the output should have ended there."""
    if greedy:
        return check.argmax_gap >= 0.0
    return check.cdf_low <= check.u < check.cdf_high
