"""A start may pass a pick that left no signed refusal without a miss, since the chain cannot
tell a dead executor from one its transfer agent never asked; so a member that keeps its
weight and goes silent on every draw (a free rider) is charged nothing for any one pass.
Counted over the epoch, the passes beyond the allowance are misses: the free rider's reward
share is scaled to what it served (nothing) and its reputation steps down, while an honest
member passed over once keeps its whole share and climbs by the share of its draws it served
(docs/design.md §6.7).

Real signed starts and finishes through FinalizeBlock, a full epoch, its claims and
settlement, with every coin accounted for at every height (coin_ledger.Ledger).
"""

from coin_ledger import Ledger
from inference_actors import Actor, finish_msg, pass_notice, start_msg
from inference_net import T0, Net

from chain.epochs.settlement import split_by_weight
from chain.scales import PPM
from chain.validation.params import ValidationParams
from chain.validation.sampling import seed_hash
from chain.validation.served_draws import reputation_gain, unserved_draws
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.validation_pb2 import MsgClaimRewards, MsgCommitSeed

EPOCH, REVEAL = 30, 9
WEIGHTS = [100, 100, 100, 100]
REPUTATION = 500_000
BLOCKS, PER_BLOCK = 6, 8
CLAIM_BLOCKS = 2  # the default pass_claim_blocks


def passed_over_net() -> Net:
    """Four equal members at half reputation; nothing is checked (p = 0), so the epoch's
    outcome turns on serving alone."""
    return Net(4, expiration_blocks=50, weights=WEIGHTS, reputation_ppm=REPUTATION,
               extra_state={
                   "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0,
                                         "initial_epoch_reward": 1_000_000_007}},
                   "validation": {"params": {
                       "p_min_ppm": 0, "p_max_ppm": 0, "validation_window_blocks": 3,
                       "voting_period_blocks": 3, "opening_blocks": 1,
                       "reveal_window_blocks": REVEAL, "canary_rate_ppm": 0}}})


def route(net: Net, label: str, free_rider: Actor, passed: Actor | None
          ) -> tuple[Actor, int, str] | None:
    """An agent, attempt and executor for request ``label`` the way an agent serves it when
    ``free_rider`` never answers and ``passed`` (if given) is passed over once: the first pick
    that is neither, where the agent serving itself past an unsigned pass is not allowed, so
    an agent is taken whose own pick does not come before the executor's."""
    for agent in net.parts:
        if agent is free_rider:
            continue
        order = net.drawn(agent, label)
        attempt = next(j for j, who in enumerate(order)
                       if who not in (free_rider.address, passed and passed.address))
        if attempt < 3 and agent.address not in order[:attempt + 1]:
            return agent, attempt, order[attempt]
    return None


def test_a_silent_member_loses_its_reward_and_reputation_while_one_pass_costs_nothing():
    net = passed_over_net()
    ledger = Ledger(net, EPOCH)
    free_rider, passed_once, *others = net.parts
    members = [passed_once, *others, free_rider]
    seed = bytes([7]) * 32
    results = ledger.block([a.tx(MsgCommitSeed(creator=a.address, epoch=0,
                                               seed_hash=seed_hash(seed))) for a in members])
    assert all(r.code == 0 for r in results), [r.log for r in results]

    passes = {a.address: 0 for a in net.parts}
    served = {a.address: 0 for a in net.parts}
    pass_left = passed_once
    n = 0
    for _ in range(BLOCKS):
        height, starts, notices = net.height, [], []
        while len(starts) < PER_BLOCK:
            label, n = f"req-{n}", n + 1
            routed = route(net, label, free_rider, pass_left)
            if routed is None:
                continue
            agent, attempt, executor = routed
            skipped = net.drawn(agent, label)[:attempt]
            if passed_once.address in skipped:
                pass_left = None
            for who in skipped:
                passes[who] += 1
            served[executor] += 1
            start = start_msg(agent, net.developer, label, executor, height, T0 + height,
                              [1, 2, 3, 4], attempt=attempt)
            starts.append((agent, net.actor(executor), start))
            notices.extend((agent, start, j, who) for j, who in enumerate(skipped))
        # Each pass is noticed first and its claim window goes by unclaimed.
        results = ledger.block([a.tx(pass_notice(a, [(s, j, who)])) for a, s, j, who in notices])
        for _ in range(CLAIM_BLOCKS):
            results += ledger.block([])
        results += ledger.block([a.tx(s) for a, _, s in starts] +
                                [e.tx(finish_msg(e, s, [7, 8, 9])) for _, e, s in starts])
        assert all(r.code == 0 for r in results), [r.log for r in results]
    assert passes[free_rider.address] >= 5 and passes[passed_once.address] == 1
    assert served[free_rider.address] == 0
    assert all(passes[a.address] == 0 for a in others)

    participant = net.participant_record(free_rider)
    assert (participant.passed_over, participant.misses) == (passes[free_rider.address], 0)
    assert net.participant_record(passed_once).passed_over == 1

    while net.height < EPOCH + 2:  # into epoch 1: reputations settled, seeds may be claimed
        ledger.block([])
    results = ledger.block([a.tx(MsgClaimRewards(creator=a.address, epoch=0, seed=seed))
                            for a in members])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    while net.height < EPOCH + REVEAL + 2:
        ledger.block([])
    assert 0 in ledger.settled

    params = ValidationParams()
    step = params.reputation_step_ppm

    def record(actor: Actor):
        return net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
            address=actor.address, epoch=0)).record

    def reputation(actor: Actor) -> int:
        return net.query("ExecutorStats", q.QueryExecutorStatsRequest(
            address=actor.address)).stats.reputation_ppm

    silent = record(free_rider)
    assert (silent.finished, silent.expired) == (0, 0)
    assert silent.passed_over == passes[free_rider.address]
    assert silent.unserved == passes[free_rider.address] // 2 > 0
    assert reputation(free_rider) == REPUTATION - step

    once = record(passed_once)
    assert (once.passed_over, once.unserved) == (1, 0)
    assert reputation(passed_once) == REPUTATION + step * once.finished // (once.finished + 1)
    assert REPUTATION < reputation(passed_once) < REPUTATION + step
    for actor in others:
        assert (record(actor).passed_over, record(actor).unserved) == (0, 0)
        assert reputation(actor) == REPUTATION + step

    settlement = net.query("EpochSettlement", q.QueryEpochSettlementRequest(
        epoch=0)).settlement
    rewards = {r.address: r for r in settlement.rewards}
    shares = split_by_weight(settlement.emission, {a.address: w for a, w in
                                                   zip(net.parts, WEIGHTS, strict=True)})
    assert rewards[free_rider.address].paid and rewards[free_rider.address].reward_coins == 0
    assert rewards[free_rider.address].unserved == silent.unserved
    for actor in [passed_once, *others]:
        assert rewards[actor.address].reward_coins == shares[actor.address]
    assert settlement.withheld == shares[free_rider.address]


def test_passes_are_forgiven_up_to_the_allowance_rounded_for_the_member():
    half = 500_000
    assert unserved_draws(0, 0, 1, half) == 0  # a lone pass in a quiet epoch
    assert unserved_draws(0, 0, 10, half) == 5
    assert unserved_draws(10, 0, 10, half) == 0
    assert unserved_draws(6, 2, 12, half) == 2
    assert unserved_draws(0, 0, 7, 0) == 7 and unserved_draws(0, 0, 7, PPM) == 0
    # A partial server climbs in proportion to what it served, so skipping the loss-making
    # work of a climb never climbs faster per inference served.
    assert reputation_gain(33_334, 0, 0) == 33_334
    assert reputation_gain(33_334, 10, 0) == 33_334
    assert reputation_gain(33_334, 5, 5) == 16_667
    assert reputation_gain(33_334, 0, 9) == 0
