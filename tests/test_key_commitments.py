"""API-key requests are committed on chain before their draw (docs/design.md §3.3): through
real signed transactions in-process, a start is taken only under its commitment (its agent,
the draw at the block after the commitment's, no more escrow than committed), a commitment
locks a forfeit that the start returns and the end of the draw window burns, and malformed or
unpayable commitments are refused whole, changing nothing."""

import pytest
from coin_ledger import Ledger
from inference_actors import AGENT_FEE, PRICE, key_commitment, start_msg
from inference_net import COMMITTED_ESCROW, T0, Net
from test_draw_binding import resigned

from chain.bank.keeper import SUPPLY_PREFIX
from chain.inference import key_commitments, start_rules
from chain.inference.key_commitments import FORFEIT_ACCOUNT, MAX_REQUESTS
from chain.inference.params import InferenceParams
from chain.scales import PPM
from inferchain_pb.inference.v1.inference_pb2 import (
    KeyRequest,
    MsgCommitKeyRequests,
    MsgGrantAllowance,
)

WEIGHTS = [100, 200, 150, 150]
FORFEIT_PPM = InferenceParams().key_request_forfeit_ppm
MAX_DRAW_AGE = InferenceParams().max_draw_age_blocks
EPOCH = 10_000


def forfeit_of(max_escrow: int) -> int:
    return -(-max_escrow * FORFEIT_PPM // PPM)


@pytest.fixture
def net() -> Net:
    net = Net(len(WEIGHTS), expiration_blocks=10_000, weights=WEIGHTS)
    for agent in net.parts[:2]:
        grant = MsgGrantAllowance(creator=net.developer.address, transfer_agent=agent.address,
                                  limit=10**9)
        assert net.one(net.developer.tx(grant)).code == 0
    return net


def held(net: Net) -> int:
    return net.balance(FORFEIT_ACCOUNT)


def supply(net: Net) -> int:
    return int(net.app.store.begin_block().get(SUPPLY_PREFIX + b"ninfer"))


def test_a_start_takes_its_commitment_and_the_agent_its_forfeit_back(net):
    agent, executor, start = net.key_start("committed", agent=net.parts[0])
    assert held(net) == forfeit_of(COMMITTED_ESCROW)
    found = key_commitments.commitment(net.app.store.begin_block(), agent.address,
                                       start.inference_id)
    assert (found.transfer_agent, found.height + 1) == (agent.address, start.draw_height)
    assert found.expires_at == start.draw_height + MAX_DRAW_AGE
    assert executor is not agent  # an API-key start never names its own agent
    result = net.one(agent.tx(start))
    assert result.code == 0, result.log
    assert held(net) == 0
    assert key_commitments.commitment(net.app.store.begin_block(), agent.address,
                                      start.inference_id) is None
    assert net.inference("committed").draw_height == start.draw_height
    net.assert_conserved()


def test_a_start_is_refused_unless_it_follows_its_commitment(net):
    """Code 10 (a draw the request did not fix) for: no commitment, another agent's, a draw
    height other than the block after the commitment's, more escrow than committed (a start
    of 16 tokens on a commitment of one ninfer less); nothing changes, and the honest start
    is taken after them."""
    agent, other = net.parts[0], net.parts[1]
    escrow = (4 + 16) * PRICE + AGENT_FEE
    stamped = start_msg(agent, net.developer, "pricier", agent.address, net.height,
                        T0 + net.height, [1, 2, 3, 4], signed_request=False)
    pricier_draw = net.commit_key_requests(agent, [stamped.inference_id], escrow - 1)
    pricier = resigned(agent, stamped, draw_height=pricier_draw, executor=start_rules.
                       executor_order(net.draw_at(stamped.inference_id, pricier_draw),
                                      agent.address, False)[0])
    _, _, start = net.key_start("bound", agent=agent)
    uncommitted = start_msg(agent, net.developer, "never-committed", start.executor,
                            start.draw_height, T0 + net.height, [1, 2, 3, 4],
                            signed_request=False)
    # The other agent starts the same request: its id names the agent that stamped it, so
    # under the other agent it is a request nobody committed.
    by_other = start_msg(other, net.developer, "bound", start.executor, start.draw_height,
                         start.request_timestamp, [1, 2, 3, 4], signed_request=False)
    earlier = resigned(agent, start, draw_height=start.draw_height - 1)
    net.block([])
    later_draw = net.draw_at(start.inference_id, start.draw_height + 1)
    later = resigned(agent, start, draw_height=start.draw_height + 1,
                     executor=start_rules.executor_order(later_draw, agent.address, False)[0])
    before = (held(net), net.balance(agent), net.balance(net.developer))
    for forged, why in ((uncommitted, "not committed"), (by_other, "not committed"),
                        (earlier, "draws at"), (later, "draws at"),
                        (pricier, "more than")):
        sender = other if forged is by_other else agent
        result = net.one(sender.tx(forged))
        assert (result.codespace, result.code) == ("inference", 10), result.log
        assert why in result.log, result.log
    fees = 4 * 20_000  # the refused txs' fees, which the ante takes whatever the message
    assert (held(net), net.balance(agent), net.balance(net.developer)) == \
        (before[0], before[1] - fees, before[2])
    assert net.one(agent.tx(start)).code == 0
    net.assert_conserved()


def test_a_commitment_no_start_takes_burns_its_forfeit_when_its_window_ends(net):
    """The agent commits two variants of a request, starts the one whose draw it likes and
    drops the other: the dropped one's forfeit leaves the supply at the end of its draw
    window, and its start is refused after it. Coins are audited at every height."""
    ledger = Ledger(net, EPOCH)
    agent = net.parts[0]
    ids = [start_msg(agent, net.developer, f"variant-{n}", agent.address, net.height,
                     T0 + net.height, [1, 2, 3, 4], signed_request=False).inference_id
           for n in range(2)]
    max_escrow = (4 + 16) * PRICE + AGENT_FEE
    commit = agent.tx(key_commitment(agent, ids, max_escrow))
    assert [r.code for r in ledger.block([commit])] == [0]
    draw_height = net.height + 1
    ledger.block([])
    assert held(net) == 2 * forfeit_of(max_escrow)
    kept = start_msg(agent, net.developer, "variant-0",
                     start_rules.executor_order(net.draw_at(ids[0], draw_height),
                                                agent.address, False)[0],
                     draw_height, T0 + draw_height - 2, [1, 2, 3, 4], signed_request=False)
    assert [r.code for r in ledger.block([agent.tx(kept)])] == [0]
    assert held(net) == forfeit_of(max_escrow)
    burned_before = supply(net)
    while net.height < draw_height + MAX_DRAW_AGE:
        ledger.block([])
    assert held(net) == 0
    assert supply(net) == burned_before - forfeit_of(max_escrow)
    assert any(e.type == "key_request_forfeited" for e in net.last_block.events)
    dropped = start_msg(agent, net.developer, "variant-1",
                        start_rules.executor_order(net.draw_at(ids[1], net.height),
                                                   agent.address, False)[0],
                        draw_height, T0 + draw_height - 2, [1, 2, 3, 4],
                        signed_request=False)
    late = ledger.block([agent.tx(dropped)])[0]
    assert (late.codespace, late.code) == ("inference", 10)
    assert ledger.heights_checked > MAX_DRAW_AGE


@pytest.mark.parametrize("requests, why", [
    ([], "1 to"),
    ([KeyRequest(inference_id="ab" * 32, max_escrow=1)] * 2, "named twice"),
    ([KeyRequest(inference_id="AB" * 32, max_escrow=1)], "lowercase hex"),
    ([KeyRequest(inference_id="ab" * 31, max_escrow=1)], "lowercase hex"),
    ([KeyRequest(inference_id="ab" * 32 + "\n", max_escrow=1)], "lowercase hex"),
    ([KeyRequest(inference_id="ab" * 32, max_escrow=0)], "max_escrow"),
    ([KeyRequest(inference_id="ab" * 32, max_escrow=2**64 - 1)], "max_escrow"),
    ([KeyRequest(inference_id=f"{n:064x}", max_escrow=1) for n in range(MAX_REQUESTS + 1)],
     "1 to"),
])
def test_a_malformed_commitment_is_refused_whole(net, requests, why):
    agent = net.parts[0]
    before = (held(net), net.balance(agent) - 20_000)
    good = KeyRequest(inference_id="cd" * 32, max_escrow=1_000)
    msg = MsgCommitKeyRequests(creator=agent.address, requests=[good, *requests]
                               if requests else [])
    result = net.one(agent.tx(msg))
    assert (result.codespace, result.code) == ("sdk", 18), result.log
    assert why in result.log, result.log
    assert (held(net), net.balance(agent)) == before
    assert key_commitments.commitment(net.app.store.begin_block(), agent.address,
                                      good.inference_id) is None


def test_a_commitment_made_twice_unpaid_or_after_the_start_is_refused_and_a_copy_blocks_nothing(
        net):
    agent, other = net.parts[0], net.parts[1]
    _, _, start = net.key_start("once", agent=agent)
    again = net.one(agent.tx(key_commitment(agent, [start.inference_id], 1_000)))
    assert (again.code, "committed already" in again.log) == (18, True), again.log
    # Another agent committing the id too (copied from the mempool, say) blocks nothing:
    # the start takes its own agent's commitment; the copy's forfeit burns.
    copied = net.one(other.tx(key_commitment(other, [start.inference_id], 1_000)))
    assert copied.code == 0, copied.log
    assert net.one(agent.tx(start)).code == 0
    after = net.one(agent.tx(key_commitment(agent, [start.inference_id], 1_000)))
    assert (after.code, "started already" in after.log) == (18, True), after.log
    # A forfeit beyond the agent's balance: nothing is committed, nothing moves.
    before = held(net)
    unpaid = net.one(agent.tx(key_commitment(agent, ["ef" * 32], 10**18)))
    assert (unpaid.codespace, unpaid.code) == ("sdk", 5), unpaid.log
    assert held(net) == before
    assert key_commitments.commitment(net.app.store.begin_block(), agent.address,
                                      "ef" * 32) is None
    # Only a registered participant transfer agent commits.
    stranger = net.one(net.developer.tx(key_commitment(net.developer, ["ef" * 32], 1_000)))
    assert (stranger.codespace, stranger.code) == ("inference", 3), stranger.log
    net.assert_conserved()


def test_an_agent_can_neither_draw_itself_nor_pick_its_draw_for_committed_requests(net):
    """Over 200 committed requests the agent tries to start each naming itself, at another
    draw height than its commitment's and with a nonce of its own: the chain takes only the
    start the commitment's draw gives, which never names the agent; it executes none."""
    agent = net.parts[0]
    executed = 0
    for block in range(4):
        stamps = [start_msg(agent, net.developer, f"grind-{block}-{n}", agent.address,
                            net.height, T0 + net.height, [1, 2, 3, 4], signed_request=False)
                  for n in range(50)]
        draw_height = net.commit_key_requests(agent, [s.inference_id for s in stamps])
        net.block([])  # one more value exists: the agent could try it as its draw
        tries, honest = [], []
        for stamp in stamps:
            order = net.draw_at(stamp.inference_id, draw_height)
            ours = resigned(agent, stamp, executor=agent.address, draw_height=draw_height)
            other_height = net.draw_at(stamp.inference_id, net.height)
            moved = resigned(agent, stamp, draw_height=net.height, executor=next(
                a for a in other_height if a != agent.address))
            own_nonce = resigned(agent, stamp, draw_height=draw_height, request_nonce=bytes(16),
                                 executor=order[0])
            tries += [ours, moved, own_nonce]
            honest.append(resigned(agent, stamp, draw_height=draw_height, executor=next(
                a for a in order if a != agent.address)))
        for result in net.block([agent.tx(s) for s in tries]):
            assert (result.codespace, result.code) == ("inference", 10), result.log
        for result, start in zip(net.block([agent.tx(s) for s in honest]), honest,
                                 strict=True):
            assert result.code == 0, result.log
            executed += net.inference(start.inference_id).executor == agent.address
    assert executed == 0
    assert held(net) == 0
    net.assert_conserved()
