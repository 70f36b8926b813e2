"""A transfer agent that skips draw picks without evidence cannot bring the work to itself:
real signed transactions through MsgStartInference, in-process blocks (docs/design.md §3.3).
What binds the draw of the API-key requests it stamps: tests/test_key_commitments.py."""

import math
from fractions import Fraction
from itertools import permutations

from inference_actors import start_msg
from inference_net import T0, Net
from test_draw_binding import refusal

# The transfer agent holds 1/6 of the weight; the chain's default max_attempts is 3.
WEIGHTS = [100, 200, 150, 150]
ATTEMPTS = 3
REQUESTS = 1000
PER_BLOCK = 50
SIGMAS = 4


def among_first_picks(weights: list[int], who: int, picks: int) -> Fraction:
    """The chance that a weighted draw without replacement puts ``who`` among its first
    ``picks``: summed over the ordered tuples of picks that reach it."""
    total = Fraction(0)
    for order in permutations(range(len(weights)), picks):
        if who not in order:
            continue
        chance, left = Fraction(1), sum(weights)
        for pick in order[:order.index(who) + 1]:
            chance *= Fraction(weights[pick], left)
            left -= weights[pick]
        total += chance / math.perm(len(weights) - order.index(who) - 1,
                                    picks - order.index(who) - 1)
    return total


def test_an_agent_skipping_picks_to_serve_itself_executes_only_its_weight_share():
    """For each of 1,000 requests the hostile agent names itself at the first of the three
    picks that is itself, skipping the picks before it without evidence. The chain takes only
    those where it is pick 0 (else code 61), so its executions stay within binomial noise of
    its weight share, while skipping would have given it the chance of any of three picks."""
    net = Net(len(WEIGHTS), expiration_blocks=10_000, weights=WEIGHTS)
    agent = net.parts[0]
    executed = skips_refused = reachable = 0
    for first in range(0, REQUESTS, PER_BLOCK):
        height, starts = net.height, []
        for n in range(first, first + PER_BLOCK):
            label = f"skip-{n}"
            order = net.drawn(agent, label)
            attempt = next((a for a, who in enumerate(order[:ATTEMPTS])
                            if who == agent.address), None)
            reachable += attempt is not None
            executor = agent.address if attempt is not None else order[0]
            starts.append(start_msg(agent, net.developer, label, executor, height, T0 + height,
                                    [1, 2, 3, 4], attempt=attempt or 0))
        results = net.block([agent.tx(start) for start in starts])
        for result, start in zip(results, starts, strict=True):
            if result.code == 0:
                executed += net.inference(start.inference_id).executor == agent.address
                continue
            assert (result.codespace, result.code) == ("inference", 61), result.log
            assert "signed refusal" in result.log
            skips_refused += 1
    share = WEIGHTS[0] / sum(WEIGHTS)
    sigma = math.sqrt(REQUESTS * share * (1 - share))
    skipping = float(among_first_picks(WEIGHTS, 0, ATTEMPTS))
    print(f"\nagent executed {executed} of {REQUESTS} requests; weight share {share:.4f} "
          f"expects {REQUESTS * share:.1f} ± {SIGMAS}σ ({SIGMAS * sigma:.1f}); skipping to "
          f"itself would reach {reachable} (P(among the first {ATTEMPTS} picks) = "
          f"{skipping:.4f}); "
          f"{skips_refused} unevidenced skips to itself refused")
    assert abs(executed - REQUESTS * share) <= SIGMAS * sigma
    assert executed + skips_refused == reachable
    assert abs(reachable - REQUESTS * skipping) <= SIGMAS * math.sqrt(
        REQUESTS * skipping * (1 - skipping))
    assert all(net.participant_record(p).misses == 0 for p in net.parts)
    net.assert_conserved()


def test_an_agent_serves_itself_past_picks_that_signed_their_refusals():
    """Evidence the agent cannot forge opens the later picks to it: each skipped pick's own
    signed refusal, which charges that pick its miss."""
    net = Net(4, expiration_blocks=10_000)
    agent = net.parts[0]
    label, order = next((label, order) for label in (f"refused-{n}" for n in range(500))
                        if (order := net.drawn(agent, label))[2] == agent.address)
    height = net.height

    def start(refusals: tuple[bytes, ...]):
        return start_msg(agent, net.developer, label, agent.address, height, T0 + height,
                         [1, 2, 3, 4], attempt=2, refusals=refusals)

    inference_id = start(()).inference_id
    picks = [net.actor(a) for a in order[:2]]
    one_refusal = (refusal(picks[0], inference_id, 0), b"")
    result = net.one(agent.tx(start(one_refusal)))
    assert (result.codespace, result.code) == ("inference", 61), result.log
    assert [net.participant_record(p).misses for p in picks] == [0, 0]  # refused: no charge
    both = tuple(refusal(p, inference_id, j) for j, p in enumerate(picks))
    result = net.one(agent.tx(start(both)))
    assert result.code == 0, result.log
    assert net.inference(inference_id).executor == agent.address
    assert [net.participant_record(p).misses for p in picks] == [1, 1]
    net.assert_conserved()
