"""A transfer agent can neither steer the executor draw nor hand out misses: through real
signed transactions, MsgStartInference is taken only under the request's own inference id
and draw height (docs/design.md §3.3), and a skipped pick is charged a miss only on its own
signed refusal."""

import math

from inference_actors import Actor, start_msg
from inference_net import T0, Net

from chain.inference import payload
from chain.inference.keeper import availability_ppm
from chain.scales import PPM
from inferchain_pb.inference.v1.inference_pb2 import MsgStartInference

# The transfer agent holds 1/6 of the weight.
WEIGHTS = [100, 200, 150, 150]
REQUESTS = 1000
PER_BLOCK = 50
# Ids the agent tries per request; the reproduction needed 17 to draw itself.
GRIND_IDS = 24
SIGMAS = 4


def resigned(agent: Actor, start: MsgStartInference, **fields: object) -> MsgStartInference:
    """``start`` with some fields changed and the agent's signature renewed over them."""
    forged = MsgStartInference()
    forged.CopyFrom(start)
    for name, value in fields.items():
        setattr(forged, name, value)
    forged.ta_signature = agent.node_key.sign(payload.start_payload_of(forged)).signature
    return forged


def refusal(actor: Actor, inference_id: str, attempt: int) -> bytes:
    return actor.node_key.sign(
        payload.refusal_payload(inference_id, attempt, actor.address)).signature


def test_a_grinding_transfer_agent_draws_itself_only_at_its_weight_share():
    net = Net(len(WEIGHTS), expiration_blocks=10_000, weights=WEIGHTS)
    agent = net.parts[0]
    for _ in range(12):  # a full window of heights to grind over
        net.block([])
    window = 10  # max_draw_age_blocks
    ground_ids = ground_heights = drawn_self = 0
    for first in range(0, REQUESTS, PER_BLOCK):
        height, txs, honest = net.height, [], []
        for n in range(first, first + PER_BLOCK):
            label = f"grind-{n}"
            order = net.drawn(agent, label)
            start = start_msg(agent, net.developer, label, order[0], height, T0 + height,
                              [1, 2, 3, 4])
            # The agent grinds ids until the draw names it, then heights of the window.
            ground = next((i for i in (f"{label}/{k}" for k in range(GRIND_IDS))
                           if net.draw_at(i, height)[0] == agent.address), None)
            if ground is not None:
                ground_ids += 1
                txs.append(agent.tx(resigned(agent, start, inference_id=ground,
                                             executor=agent.address)))
            other = next((h for h in range(height - window + 1, height)
                          if net.draw_at(start.inference_id, h)[0] == agent.address), None)
            if other is not None:
                ground_heights += 1
                txs.append(agent.tx(resigned(agent, start, draw_height=other,
                                             executor=agent.address)))
            honest.append(len(txs))
            txs.append(agent.tx(start))
            drawn_self += order[0] == agent.address
        results = net.block(txs)
        for i, result in enumerate(results):
            if i in honest:
                assert result.code == 0, result.log
            else:
                assert (result.codespace, result.code) == ("inference", 10), result.log
    # Grinding finds a self-draw for nearly every request, and the chain takes none of them.
    assert ground_ids > 0.9 * REQUESTS and ground_heights > 0.5 * REQUESTS
    share = WEIGHTS[0] / sum(WEIGHTS)
    sigma = math.sqrt(REQUESTS * share * (1 - share))
    print(f"agent drawn first in {drawn_self} of {REQUESTS} requests; weight share "
          f"{share:.4f} expects {REQUESTS * share:.1f} ± {SIGMAS}σ ({SIGMAS * sigma:.1f}); "
          f"{ground_ids} ground ids and {ground_heights} ground heights refused")
    assert abs(drawn_self - REQUESTS * share) <= SIGMAS * sigma
    assert all(net.participant_record(p).misses == 0 for p in net.parts)
    net.assert_conserved()


def _skipping_request(net: Net, agent: Actor, prefix: str) -> tuple[str, list[str], int]:
    """A request stamped now whose first three picks are not the agent (it serves itself
    past a pick only on that pick's refusal, tests/test_draw_skips.py): its label, draw
    order and draw height."""
    return next((label, order, net.height) for label in (f"{prefix}-{n}" for n in range(200))
                if agent.address not in (order := net.drawn(agent, label))[:3])


def test_a_skipped_pick_is_charged_a_miss_only_on_its_own_signed_refusal():
    net = Net(4, expiration_blocks=10_000)
    agent = net.parts[0]

    def start(request: tuple[str, list[str], int], attempt: int,
              refusals: tuple[bytes, ...] = ()) -> MsgStartInference:
        label, order, height = request
        return start_msg(agent, net.developer, label, order[attempt], height, T0 + height,
                         [1, 2, 3, 4], attempt=attempt, refusals=refusals)

    def misses() -> dict[str, int]:
        return {p.address: net.participant_record(p).misses for p in net.parts}

    # A start at the last attempt with no evidence, its passes noticed and unclaimed: the
    # developer is served, nobody is charged, so availability (and the epoch reward it
    # scales) stays whole.
    before = misses()
    crafted = start(_skipping_request(net, agent, "crafted"), 2)
    net.pass_picks(crafted)
    assert net.one(agent.tx(crafted)).code == 0
    assert misses() == before
    assert all(availability_ppm(net.participant_record(p)) == PPM for p in net.parts)

    # Forged evidence: pick 0's refusal signed by the agent's key, a refusal for another
    # attempt, one for another inference. Each refuses the whole start and changes nothing.
    request = _skipping_request(net, agent, "forged")
    skipped = net.actor(request[1][0])
    inference_id = start(request, 1).inference_id
    developer_balance = net.balance(net.developer)
    for forged in (agent.node_key.sign(payload.refusal_payload(
                       inference_id, 0, skipped.address)).signature,
                   refusal(skipped, inference_id, 1),
                   refusal(skipped, "another-request", 0)):
        result = net.one(agent.tx(start(request, 1, (forged,))))
        assert (result.codespace, result.code) == ("inference", 9), result.log
        assert "refusal" in result.log
    assert misses() == before
    assert net.balance(net.developer) == developer_balance  # nothing escrowed

    # Valid evidence: the skipped pick's own refusal charges it, and only it, one miss.
    request = _skipping_request(net, agent, "refused")
    skipped, silent = net.actor(request[1][0]), net.actor(request[1][1])
    inference_id = start(request, 2).inference_id
    passing = start(request, 2, (refusal(skipped, inference_id, 0), b""))
    net.pass_picks(passing)  # the silent pick 1 only
    result = net.one(agent.tx(passing))
    assert result.code == 0, result.log
    after = misses()
    assert after[skipped.address] == before[skipped.address] + 1
    assert after[silent.address] == before[silent.address]
    assert sum(after.values()) == sum(before.values()) + 1
    net.assert_conserved()
