"""How the target distance sets the acceptance rate.

For unit vectors u (output) and t (target), |u - t|² = 2 - 2·cos θ, so "distance below r" is
"cos θ above c = 1 - r²/2". Each nonce has its own target, a random direction drawn from the
nonce's stream (``nonces.py``), so whatever directions the network's outputs favour, cos θ
follows the law of a random direction against a fixed one: density ∝ (1 - x²)^((hidden-3)/2)
on [-1, 1], close to a normal with variance 1/hidden. The acceptance rate is that law's mass
above c, the same for every seed. (With one target per seed, the rate would depend on how the
seed's random weights happen to bend outputs towards or away from it: four tiny-preset seeds
gave 1.1 % to 5.5 % for a 3 % target, which would make a participant's weight a matter of
its key.) `expected_acceptance` gives the rate for a distance, `target_for_acceptance` the
distance for a rate; the rate for a given distance depends on the hidden size.
"""

import math

_QUADRATURE_STEPS = 20_000


def expected_acceptance(target_distance: float, hidden: int) -> float:
    """P(|u - t| < target_distance) for t uniform on the unit sphere of R^hidden, u fixed."""
    if hidden < 3:
        raise ValueError("hidden must be at least 3")
    c = 1.0 - target_distance ** 2 / 2.0
    if c <= -1.0:
        return 1.0
    if c >= 1.0:
        return 0.0
    return _mass_above(c, hidden) / _mass_above(-1.0, hidden)


def target_for_acceptance(rate: float, hidden: int) -> float:
    """The target distance that accepts `rate` of uniformly random directions (bisection)."""
    if not 0.0 < rate < 1.0:
        raise ValueError("rate must lie in (0, 1)")
    low, high = 0.0, 2.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if expected_acceptance(mid, hidden) < rate else (low, mid)
    return (low + high) / 2


def _mass_above(c: float, hidden: int) -> float:
    """∫_c^1 (1 - x²)^((hidden - 3)/2) dx by the midpoint rule (smooth integrand)."""
    step = (1.0 - c) / _QUADRATURE_STEPS
    power = (hidden - 3) / 2
    return step * math.fsum((1.0 - (c + (i + 0.5) * step) ** 2) ** power
                            for i in range(_QUADRATURE_STEPS))
