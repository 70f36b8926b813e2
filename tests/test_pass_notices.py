"""A transfer agent passes a draw pick that left no signed refusal only under a notice the
pick could claim (docs/design.md §3.3): through real signed transactions in-process, a start
passing a pick is refused without an unclaimed notice of it or before its claim window ended,
a live pick's claim keeps the request from every later pick (so an agent cannot pass live
picks to bring requests to an accomplice), malformed notices and claims are refused whole,
and notices are dropped with their draw window, a claimant that then served nothing counted
as passed over."""

import math

import pytest
from inference_actors import MODEL_ID, Actor, finish_msg, pass_claim, pass_notice, start_msg
from inference_net import T0, Net
from test_draw_binding import _skipping_request, refusal

from chain.bank.keeper import SUPPLY_PREFIX
from chain.inference import pass_notices
from chain.inference.keeper import INFERENCE
from chain.inference.params import InferenceParams
from chain.inference.pass_notices import BOND_ACCOUNT
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    MsgClaimPasses,
    MsgNoticePasses,
    MsgStartInference,
    PassClaim,
    PickPass,
)

CLAIM_BLOCKS = InferenceParams().pass_claim_blocks
BOND = InferenceParams().pass_notice_bond
MAX_DRAW_AGE = InferenceParams().max_draw_age_blocks
WEIGHTS = [100, 100, 100, 100]


@pytest.fixture
def net() -> Net:
    return Net(len(WEIGHTS), expiration_blocks=10_000, weights=WEIGHTS)


def request(net: Net, agent: Actor, label: str) -> tuple[str, list[str], int]:
    """A signed request stamped now whose first three picks leave the agent out."""
    return _skipping_request(net, agent, label)


def start_at(net: Net, agent: Actor, req: tuple[str, list[str], int], attempt: int,
             refusals: tuple[bytes, ...] = ()) -> MsgStartInference:
    label, order, height = req
    return start_msg(agent, net.developer, label, order[attempt], height, T0 + height,
                     [1, 2, 3, 4], attempt=attempt, refusals=refusals)


def state(net: Net):
    return net.app.store.begin_block()


def supply(net: Net) -> int:
    return int(state(net).get(SUPPLY_PREFIX + b"ninfer"))


def notice_keys(net: Net) -> int:
    return sum(1 for prefix in (pass_notices.NOTICE, pass_notices.NOTICE_TO,
                                pass_notices.NOTICE_EXPIRY)
               for _ in state(net).iterate(prefix))


def test_a_live_pick_claims_its_notice_and_no_start_passes_it_without_its_refusal(net):
    """The agent wants pick 1 (its accomplice, say) and notices passing pick 0; pick 0 claims
    in the next block. After the claim window the start passing it is refused (code 61,
    nothing escrowed, nobody counted); the request goes to pick 0 or, on pick 0's own signed
    refusal (its miss), on."""
    agent = net.parts[0]
    req = request(net, agent, "claimed")
    victim, accomplice = net.actor(req[1][0]), net.actor(req[1][1])
    passing = start_at(net, agent, req, 1)
    noticed = net.one(agent.tx(pass_notice(agent, [(passing, 0, victim.address)])))
    assert noticed.code == 0, noticed.log
    mine = net.query("PassNotices", q.QueryPassNoticesRequest(pick=victim.address)).notices
    assert [(n.transfer_agent, n.inference_id, n.attempt, n.claimed_at) for n in mine] == [
        (agent.address, passing.inference_id, 0, 0)]
    assert net.query("PassNotices", q.QueryPassNoticesRequest(
        pick=victim.address, since_height=net.height + 1)).notices == []
    claimed = net.one(victim.tx(pass_claim(victim, [(agent.address, passing.inference_id, 0)])))
    assert claimed.code == 0, claimed.log
    for _ in range(CLAIM_BLOCKS):
        net.block([])
    balance = net.balance(net.developer)
    before = [net.participant_record(p) for p in (victim, accomplice)]
    result = net.one(agent.tx(passing))
    assert (result.codespace, result.code) == ("inference", 61), result.log
    assert "claimed" in result.log
    assert net.balance(net.developer) == balance
    assert [net.participant_record(p) for p in (victim, accomplice)] == before
    assert state(net).get(INFERENCE + passing.inference_id.encode()) is None
    # On the claimant's own signed refusal the request moves on, and the refusal is its miss.
    assert net.balance(BOND_ACCOUNT) == BOND
    refused = start_at(net, agent, req, 1, (refusal(victim, passing.inference_id, 0),))
    result = net.one(agent.tx(refused))
    assert result.code == 0, result.log
    assert net.balance(BOND_ACCOUNT) == 0  # the start returned the notice's bond
    assert net.participant_record(victim).misses == before[0].misses + 1
    assert net.participant_record(victim).passed_over == before[0].passed_over
    # Another request whose claimant serves it.
    req = request(net, agent, "served")
    victim = net.actor(req[1][0])
    passing = start_at(net, agent, req, 1)
    assert net.one(agent.tx(pass_notice(agent, [(passing, 0, victim.address)]))).code == 0
    assert net.one(victim.tx(pass_claim(victim, [(agent.address, passing.inference_id,
                                                  0)]))).code == 0
    served = start_at(net, agent, req, 0)
    results = net.block([agent.tx(served), victim.tx(finish_msg(victim, served, [5, 6]))])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    net.assert_conserved()


def test_a_pick_is_passed_only_after_an_unclaimed_notice_of_it_for_that_draw(net):
    """Code 61 for a pass with no notice, under a notice of another pick or of another draw
    height, and inside the claim window; it lands once the window ended unclaimed, the passed
    pick counted as passed over and charged no miss."""
    agent = net.parts[0]
    net.block([])

    def refused_with(start: MsgStartInference, why: str) -> None:
        result = net.one(agent.tx(start))
        assert (result.codespace, result.code) == ("inference", 61), result.log
        assert why in result.log, result.log

    unnoticed = start_at(net, agent, request(net, agent, "unnoticed"), 1)
    refused_with(unnoticed, "without its signed refusal or a notice")
    req = request(net, agent, "wrong-pick")
    wrong_pick = start_at(net, agent, req, 1)
    other_height = start_at(net, agent, request(net, agent, "other-height"), 1)
    moved = MsgStartInference(inference_id=other_height.inference_id, model_id=MODEL_ID,
                              draw_height=other_height.draw_height - 1)
    silent = net.draw_at(other_height.inference_id, other_height.draw_height)[0]
    assert net.one(agent.tx(pass_notice(agent, [(wrong_pick, 0, req[1][2]),
                                                (moved, 0, silent)]))).code == 0
    for _ in range(CLAIM_BLOCKS):
        net.block([])
    refused_with(wrong_pick, "without its signed refusal or a notice")
    refused_with(other_height, "without its signed refusal or a notice")
    # A notice is made once per pick: the agent cannot mend it afterwards.
    again = net.one(agent.tx(pass_notice(agent, [(wrong_pick, 0, req[1][0])])))
    assert (again.code, "noticed already" in again.log) == (18, True), again.log

    req = request(net, agent, "windowed")
    passing = start_at(net, agent, req, 1)
    silent = net.actor(req[1][0])
    assert net.one(agent.tx(pass_notice(agent, [(passing, 0, silent.address)]))).code == 0
    noticed_at = net.height
    while net.height < noticed_at + CLAIM_BLOCKS:
        refused_with(passing, "may claim it through")
    before = net.participant_record(silent)
    result = net.one(agent.tx(passing))
    assert result.code == 0, result.log
    assert net.height == noticed_at + CLAIM_BLOCKS + 1
    after = net.participant_record(silent)
    assert (after.passed_over, after.misses) == (before.passed_over + 1, before.misses)
    net.assert_conserved()


def test_a_claim_must_be_the_picks_own_and_once():
    """Claims by another member, of no notice, twice, or in a message with any of those are
    refused whole (code 18), leaving the notices unclaimed (a claim window long enough for
    all of them)."""
    net = Net(len(WEIGHTS), expiration_blocks=10_000, weights=WEIGHTS,
              inference_params={"pass_claim_blocks": 8})
    agent = net.parts[0]
    first, second = (start_at(net, agent, request(net, agent, label), 1)
                     for label in ("claim-a", "claim-b"))
    picks = [net.actor(net.draw_at(s.inference_id, s.draw_height)[0]) for s in (first,
                                                                               second)]
    assert net.one(agent.tx(pass_notice(agent, [(first, 0, picks[0].address),
                                                (second, 0, picks[1].address)]))).code == 0
    outsider = next(p for p in net.parts if p is not picks[0] and p is not agent)

    def refused(claimant: Actor, claims: list[tuple[str, str, int]], why: str) -> None:
        result = net.one(claimant.tx(pass_claim(claimant, claims)))
        assert (result.codespace, result.code) == ("sdk", 18), result.log
        assert why in result.log, result.log

    good = (agent.address, first.inference_id, 0)
    refused(outsider, [good], "no notice")
    refused(picks[0], [good, (agent.address, first.inference_id, 1)], "no notice")
    refused(picks[0], [good, good], "claimed twice")
    refused(picks[0], [good, (agent.address, "ab" * 32, 0)], "no notice")
    refused(picks[0], [], "1 to")
    stranger = net.one(net.developer.tx(pass_claim(net.developer, [good])))
    assert (stranger.codespace, stranger.code) == ("inference", 3), stranger.log
    malformed = net.one(picks[0].tx(MsgClaimPasses(creator=picks[0].address, claims=[
        PassClaim(transfer_agent="not-an-address", inference_id=first.inference_id)])))
    assert malformed.code != 0 and "invalid address" in malformed.log, malformed.log
    assert pass_notices.notice(state(net), agent.address, first.inference_id,
                               0).claimed_at == 0
    assert net.one(picks[0].tx(pass_claim(picks[0], [good]))).code == 0
    again = net.one(picks[0].tx(pass_claim(picks[0], [good])))
    assert (again.code, "was claimed at height" in again.log) == (18, True), again.log


def test_a_claim_after_its_window_is_refused(net):
    agent = net.parts[0]
    passing = start_at(net, agent, request(net, agent, "late"), 1)
    pick = net.actor(net.draw_at(passing.inference_id, passing.draw_height)[0])
    assert net.one(agent.tx(pass_notice(agent, [(passing, 0, pick.address)]))).code == 0
    for _ in range(CLAIM_BLOCKS):
        net.block([])
    late = net.one(pick.tx(pass_claim(pick, [(agent.address, passing.inference_id, 0)])))
    assert (late.code, "claimable through" in late.log) == (18, True), late.log
    assert pass_notices.notice(state(net), agent.address, passing.inference_id,
                               0).claimed_at == 0


GOOD = PickPass(inference_id="cd" * 32, model_id=MODEL_ID, attempt=0)


@pytest.mark.parametrize("passes, why", [
    ([], "1 to"),
    ([PickPass(inference_id="ab" * 32, model_id=MODEL_ID, attempt=0)] * 2, "named twice"),
    ([PickPass(inference_id="AB" * 32, model_id=MODEL_ID)], "lowercase hex"),
    ([PickPass(inference_id="ab" * 31, model_id=MODEL_ID)], "lowercase hex"),
    ([PickPass(inference_id="ab" * 32, model_id=MODEL_ID, attempt=2)], "no pick after it"),
    ([PickPass(inference_id="ab" * 32, model_id=MODEL_ID, attempt=2**32 - 1)],
     "no pick after it"),
    ([PickPass(inference_id="ab" * 32, model_id=MODEL_ID, draw_height=-1)], "outside"),
    ([PickPass(inference_id="ab" * 32, model_id=MODEL_ID, draw_height=10**9)], "outside"),
    ([PickPass(inference_id="ab" * 32, model_id=MODEL_ID, draw_height=1)], "outside"),
    ([PickPass(inference_id="ab" * 32, model_id="no-such-model")], "not registered"),
    ([PickPass(inference_id="ab" * 32, model_id=MODEL_ID, pick="nobody")], "invalid address"),
    ([PickPass(inference_id=f"{n:064x}", model_id=MODEL_ID)
      for n in range(pass_notices.MAX_ENTRIES + 1)], "1 to"),
])
def test_a_malformed_notice_is_refused_whole(net, passes, why):
    agent = net.parts[0]
    for _ in range(MAX_DRAW_AGE + 2):  # so that height 1 is past the draw window
        net.block([])
    height, pick = net.height, net.parts[1].address

    def filled(item: PickPass) -> PickPass:
        done = PickPass()
        done.CopyFrom(item)
        done.draw_height = item.draw_height or height
        done.pick = item.pick or pick
        return done

    msg = MsgNoticePasses(creator=agent.address,
                          passes=[filled(GOOD), *(filled(p) for p in passes)] if passes else [])
    result = net.one(agent.tx(msg))
    assert result.code != 0 and why in result.log, result.log
    assert notice_keys(net) == 0


def test_a_notice_its_agent_cannot_bond_is_refused():
    net = Net(len(WEIGHTS), expiration_blocks=10_000, weights=WEIGHTS,
              inference_params={"pass_notice_bond": 10**12})
    agent = net.parts[0]
    passing = start_at(net, agent, request(net, agent, "unbonded"), 1)
    balance = net.balance(agent)
    result = net.one(agent.tx(pass_notice(agent, [(passing, 0, net.parts[1].address)])))
    assert (result.codespace, result.code) == ("sdk", 5), result.log
    assert net.balance(agent) == balance - 20_000  # the tx fee only
    assert notice_keys(net) == 0


def test_a_notice_of_an_unregistered_pick_a_started_request_or_by_a_stranger_is_refused(net):
    agent = net.parts[0]
    req = request(net, agent, "started")
    started = start_at(net, agent, req, 0)
    assert net.one(agent.tx(started)).code == 0
    result = net.one(agent.tx(pass_notice(agent, [(started, 0, req[1][0])])))
    assert (result.code, "started already" in result.log) == (18, True), result.log
    unknown = net.one(agent.tx(pass_notice(agent, [(started, 0, net.developer.address)])))
    assert (unknown.code, "not a registered participant" in unknown.log) == (18, True)
    stranger = net.one(net.developer.tx(pass_notice(net.developer,
                                                    [(started, 0, req[1][0])])))
    assert (stranger.codespace, stranger.code) == ("inference", 3), stranger.log
    assert notice_keys(net) == 0


def test_notices_leave_state_with_their_draw_window_and_an_idle_claimant_counts_as_passed(net):
    """Every key of a notice is gone at the end of the block its request's draw window ends
    in; a pick that claimed a request never started is counted as passed over then, once,
    and one that claimed and served is not. The bond of the started request's notice went
    back to the agent with the start; the other's is burned."""
    agent = net.parts[0]
    idle_req = request(net, agent, "idle")
    idle = net.actor(idle_req[1][0])
    served_req = next(r for r in (request(net, agent, f"served-{n}") for n in range(50))
                      if r[1][0] != idle.address)
    server = net.actor(served_req[1][0])
    idle_start, served_start = start_at(net, agent, idle_req, 1), \
        start_at(net, agent, served_req, 0)
    assert net.one(agent.tx(pass_notice(agent, [
        (idle_start, 0, idle.address),
        (start_at(net, agent, served_req, 1), 0, server.address)]))).code == 0
    results = net.block([
        idle.tx(pass_claim(idle, [(agent.address, idle_start.inference_id, 0)])),
        server.tx(pass_claim(server, [(agent.address, served_start.inference_id, 0)]))])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    results = net.block([agent.tx(served_start),
                         server.tx(finish_msg(server, served_start, [5, 6]))])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert notice_keys(net) == 6
    assert net.balance(BOND_ACCOUNT) == BOND  # the started request's bond went back
    before = {p.address: net.participant_record(p).passed_over for p in (idle, server)}
    expires_at = idle_start.draw_height + MAX_DRAW_AGE
    while net.height < expires_at - 1:
        net.block([])
    assert notice_keys(net) == 6
    supply_before, agent_before = supply(net), net.balance(agent)
    net.block([])
    assert notice_keys(net) == 0
    assert net.balance(BOND_ACCOUNT) == 0
    assert (supply(net), net.balance(agent)) == (supply_before - BOND, agent_before)
    after = {p.address: net.participant_record(p).passed_over for p in (idle, server)}
    assert after == {idle.address: before[idle.address] + 1,
                     server.address: before[server.address]}
    net.block([])
    assert net.participant_record(idle).passed_over == after[idle.address]
    net.assert_conserved()


REQUESTS, PER_BLOCK, SIGMAS = 400, 40, 4


def test_an_agent_noticing_the_picks_before_its_accomplice_gets_it_only_its_draw_share():
    """For 400 signed requests whose first three picks leave the hostile agent out (so its
    accomplice, one of the three equal others, is always among them), the agent notices
    passing every pick before its accomplice and starts the request on the accomplice once
    the claim window ends; the live picks claim. The chain takes the accomplice only where it
    is pick 0 (else code 61): its executions stay within binomial noise of its draw share, a
    third, where passing would have reached it every time."""
    net = Net(len(WEIGHTS), expiration_blocks=10_000, weights=WEIGHTS)
    agent, accomplice = net.parts[0], net.parts[1]
    executed = refused = first = taken = n = 0
    while taken < REQUESTS:
        starts, passes = [], []
        height = net.height
        while len(starts) < PER_BLOCK:
            label, n = f"favour-{n}", n + 1
            order = net.drawn(agent, label)
            if agent.address in order[:3]:
                continue
            attempt = order.index(accomplice.address)
            first += attempt == 0
            start = start_msg(agent, net.developer, label, accomplice.address, height,
                              T0 + height, [1, 2, 3, 4], attempt=attempt)
            starts.append(start)
            passes += [(start, j, order[j]) for j in range(attempt)]
        taken += len(starts)
        results = net.block([agent.tx(pass_notice(agent, passes))])
        assert all(r.code == 0 for r in results), [r.log for r in results]
        claims: dict[str, list] = {}
        for start, j, pick in passes:
            claims.setdefault(pick, []).append((agent.address, start.inference_id, j))
        results = net.block([net.actor(p).tx(pass_claim(net.actor(p), c))
                             for p, c in claims.items()])
        assert all(r.code == 0 for r in results), [r.log for r in results]
        for _ in range(CLAIM_BLOCKS - 1):
            net.block([])
        for result in net.block([agent.tx(s) for s in starts]):
            if result.code == 0:
                executed += 1
            else:
                assert (result.codespace, result.code) == ("inference", 61), result.log
                assert "claimed" in result.log
                refused += 1
    share = 1 / 3
    print(f"\naccomplice executed {executed} of {taken} requests (its draw share {share:.3f}: "
          f"{taken * share:.1f}); passing would have reached all {taken}; {refused} passes of "
          f"claiming picks refused")
    assert executed == first
    assert abs(executed - taken * share) <= SIGMAS * math.sqrt(taken * share * (1 - share))
    assert executed + refused == taken
    assert all(net.participant_record(p).misses == 0 for p in net.parts)
    net.assert_conserved()
