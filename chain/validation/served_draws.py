"""What a member's share of its own draws left unserved costs it (docs/design.md §6.7).

A start may pass over picks that left no signed refusal: the chain cannot tell a dead or
slow executor from one its transfer agent never asked, so no single pass is a miss. Counted
over an epoch it is evidence all the same: a member that keeps its weight and serves none of
its draws (a free rider) is passed over on every one. Passes up to an allowance of the
epoch's draws are forgiven, which a coalition of transfer agents carrying less than that
share of the traffic cannot exceed against an honest member; the rest count as misses.
"""

from chain.scales import PPM


def unserved_draws(finished: int, misses: int, passed_over: int, allowance_ppm: int) -> int:
    """Passes beyond ``allowance_ppm`` of the epoch's draws (finished + missed + passed
    over), rounded in the member's favour so a lone pass in a quiet epoch is forgiven."""
    draws = finished + misses + passed_over
    allowed = -(-draws * allowance_ppm // PPM)
    return max(0, passed_over - allowed)


def reputation_gain(step_ppm: int, finished: int, passed_over: int) -> int:
    """A clean epoch's step, scaled by the share of its served draws that were served: a member
    serving part of its draws climbs no faster per inference served than one serving all, so
    skipping the loss-making work of a newcomer's climb gains nothing. An epoch without draws
    is a full step: there was nothing to serve."""
    draws = finished + passed_over
    return step_ppm if draws == 0 else step_ppm * finished // draws
