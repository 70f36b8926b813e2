"""The integer scales of the chain's fractions: millionths and billionths of a whole.

Shares, rates, probabilities and distances are stored as integers so every node computes
the same result: a param or record named ``*_ppm`` or ``*_micro`` counts millionths (``PPM``),
one named ``*_nano`` billionths (``NANO``). The API node converts with the same scales.
"""

PPM = 1_000_000
NANO = 1_000_000_000
