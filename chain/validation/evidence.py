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

Everything is integer arithmetic on fixed-point wealth, so every node reaches the same verdict.
"""

from chain.scales import PPM

WEALTH_ONE = 10**12  # the fixed-point 1.0 the wealth starts at
# Distances are clipped at this many times μ0 as well as at the model's threshold, so one
# report multiplies the wealth by at most 1 + 3b: a validator lying on an honest executor's
# checks needs about ln(1/α) / ln(1 + 3b) of them in one epoch to push it over.
CAP_TIMES_REFERENCE = 4


def bet(wealth: int, distance_micro: int, reference_micro: int, cap_micro: int,
        bet_ppm: int) -> int:
    """The wealth after one report: ``wealth × (1 + b (min(x, c, 4 μ0) − μ0) / μ0)``, rounded
    down.

    ``bet_ppm`` below 1,000,000 keeps the factor above 0 even for a report of distance 0, and
    a reference of 0 (a model without one) leaves the wealth as it is.
    """
    if reference_micro <= 0 or bet_ppm <= 0:
        return wealth
    x = min(distance_micro, cap_micro, CAP_TIMES_REFERENCE * reference_micro)
    factor = PPM * reference_micro + bet_ppm * (x - reference_micro)
    return wealth * factor // (PPM * reference_micro)


def crossed(wealth: int, alpha_ppm: int) -> bool:
    """True once the wealth reaches 1/α: the evidence says cheater at false-positive rate α."""
    return alpha_ppm > 0 and wealth * alpha_ppm >= WEALTH_ONE * PPM
