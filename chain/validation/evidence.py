"""Evidence against an executor across an epoch: a sequential test on its validation reports.

One inference is judged alone (chain/validation/verdict.py), so a substitute whose every
output stays inside the per-inference thresholds (an int8 copy of a bf16 model moves the
logprobs about as much as bf16 rounding does) passes every check. Its outputs are further
from the validator's on average, though, and that shows once enough of them are checked.

The test is a betting martingale (a one-sided sequential test with Ville's bound): each report
of a model's inference multiplies the executor's wealth, starting at 1, by
``1 + b × (x − μ0) / μ0``, where x is the report's distance clipped to ``[0, min(D, 4 μ0)]``
(D the model's threshold, so no single report weighs more than 1 + 3b), μ0 the honest
reference mean of that model and dtype (from the calibration, in the registry), and b in
(0, 1) the bet. For any honest executor whose clipped distances have mean at most μ0,
whatever their distribution, the wealth is a non-negative supermartingale, so the chance it
ever reaches ``1 / α`` within an epoch is at most α (Ville's inequality): α is the
false-positive bound per participant-epoch. Rounding each product down keeps that bound. A
substitute whose mean is above μ0 makes the wealth grow geometrically and crosses within a
number of checks that the calibration measures (docs/verification.md).

A second bet runs beside it on each check's rule violations, for the cheats whose distance is
honest by construction (a wrong temperature or seed, edited tokens: the real model's
logprobs, the wrong tokens) and that break the sampling rule a little more often than honest
rounding does, each check staying within the allowed violations: x is the check's
violations, the reference e = μv × positions (μv the honest violations per position from
the calibration, in the registry), with its own bet b_v. Its clip is set so that one report
multiplies the wealth by at most 1 + MAX_GAIN, as a distance report at the default bet does
(1 + 3 × 0.9): x ≤ e (1 + MAX_GAIN / b_v). A small bet then still gains that much on a
check with a violation, which the rare violations of a subtle cheat need, while a lying
validator needs as many lies as against the distance bet.
Each of the running bets is a test at α/k (k of them running), so the two together keep the
false-positive bound α: an executor is a cheater once either wealth reaches k/α.

Everything is integer arithmetic on fixed-point wealth, so every node reaches the same verdict.
"""

from chain.scales import PPM

WEALTH_ONE = 10**12  # the fixed-point 1.0 the wealth starts at
# Distances are clipped at this many times μ0 as well as at the model's threshold, so one
# report multiplies the wealth by at most 1 + 3b: a validator lying on an honest executor's
# checks needs about ln(1/α) / ln(1 + 3b) of them in one epoch to push it over.
CAP_TIMES_REFERENCE = 4
# The most one violation report multiplies a wealth by, less 1 (1 + 3b at b = 0.9).
MAX_GAIN_PPM = 2_700_000


def bet(wealth: int, distance_micro: int, reference_micro: int, cap_micro: int,
        bet_ppm: int) -> int:
    """The wealth after one report: ``wealth × (1 + b (min(x, c, 4 μ0) − μ0) / μ0)``, rounded
    down.

    ``bet_ppm`` below 1,000,000 keeps the factor above 0 even for a report of distance 0, and
    a reference of 0 (a model without one) leaves the wealth as it is.
    """
    return _bet(wealth, min(distance_micro, cap_micro, CAP_TIMES_REFERENCE * reference_micro),
                reference_micro, bet_ppm)


def bet_violations(wealth: int, violations: int, positions: int, reference_ppm: int,
                   bet_ppm: int) -> int:
    """The wealth after one report's violations over ``positions`` output positions, against
    ``reference_ppm`` honest violations per million positions: ``wealth × (1 + b_v (min(x,
    e (1 + MAX_GAIN / b_v)) − e) / e)`` in millionths of a violation, rounded down."""
    expected = reference_ppm * positions
    if bet_ppm <= 0:
        return wealth
    clip = expected + expected * MAX_GAIN_PPM // bet_ppm
    return _bet(wealth, min(violations * PPM, clip), expected, bet_ppm)


def _bet(wealth: int, x: int, reference: int, bet_ppm: int) -> int:
    """``wealth × (1 + b (x − reference) / reference)``, rounded down; the wealth as it is
    without a reference or a bet."""
    if reference <= 0 or bet_ppm <= 0:
        return wealth
    factor = PPM * reference + bet_ppm * (x - reference)
    return wealth * factor // (PPM * reference)


def crossed(wealth: int, alpha_ppm: int, bets: int = 1) -> bool:
    """True once the wealth reaches ``bets``/α: the evidence says cheater at false-positive
    rate α/``bets``, so that ``bets`` bets run side by side keep α between them."""
    return alpha_ppm > 0 and wealth * alpha_ppm >= bets * WEALTH_ONE * PPM
