"""The inference module through real signed transactions, driven in-process block by block."""


import pytest
from inference_actors import AGENT_FEE, PRICE, finish_msg, start_msg
from inference_net import T0, Net

from chain.inference import payload
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    EXPIRED,
    FINISHED,
    STARTED,
    MsgGrantAllowance,
    MsgUpdateParticipant,
    MsgWithdrawParticipant,
)


@pytest.fixture
def net() -> Net:
    return Net()


def test_start_then_finish_moves_exactly_the_right_amounts(net):
    agent, executor, start = net.start("inf-1", max_tokens=16)
    before, agent_before = net.balance(net.developer), net.balance(agent)
    assert net.one(agent.tx(start)).code == 0
    escrow = (4 + 16) * PRICE + AGENT_FEE
    assert net.balance(net.developer) == before - escrow
    assert net.account(net.developer).escrow == escrow
    assert net.inference("inf-1").status == STARTED
    net.assert_conserved()
    assert net.one(executor.tx(finish_msg(executor, start, [7, 8, 9]))).code == 0
    cost = (4 + 3) * PRICE
    assert net.balance(net.developer) == before - cost - AGENT_FEE
    assert net.account(net.developer).escrow == 0
    assert net.account(executor).work_balance == cost
    # The agent's start tx paid 2,000,000 gas at 0.01; the charge paid it the agent's fee.
    assert net.balance(agent) == agent_before - 20_000 + AGENT_FEE
    done = net.inference("inf-1")
    assert (done.status, done.executor, done.cost, list(done.output_ids)) == (
        FINISHED, executor.address, cost, [7, 8, 9])
    assert (done.starter, done.agent_fee) == (agent.address, AGENT_FEE)
    net.assert_conserved()


def test_finish_before_start_is_charged_when_the_start_arrives(net):
    agent, executor, start = net.start("inf-2")
    assert net.one(executor.tx(finish_msg(executor, start, [5, 6]))).code == 0
    assert net.account(net.developer).escrow == 0
    assert net.one(agent.tx(start)).code == 0
    assert net.inference("inf-2").status == FINISHED
    assert net.account(executor).work_balance == (4 + 2) * PRICE
    net.assert_conserved()


def test_a_start_without_finish_expires_with_a_full_refund_and_a_miss(net):
    agent, executor, start = net.start("inf-3")
    before = net.balance(net.developer)
    assert net.one(agent.tx(start)).code == 0
    for _ in range(5):
        net.block([])
    assert net.inference("inf-3").status == EXPIRED
    assert net.balance(net.developer) == before
    assert net.query("Participant", q.QueryParticipantRequest(
        address=executor.address)).participant.misses == 1
    late = net.one(executor.tx(finish_msg(executor, start, [1])))
    assert late.code != 0 and "closed" in late.log
    net.assert_conserved()


def _refusal(net, case):
    agent, executor, start = net.start(f"bad-{case}")
    if case == "duplicate start":
        assert net.one(agent.tx(start)).code == 0
        return agent.tx(start), 6, "already started"
    if case == "duplicate finish":
        assert net.one(agent.tx(start)).code == 0
        assert net.one(executor.tx(finish_msg(executor, start, [3]))).code == 0
        return executor.tx(finish_msg(executor, start, [3])), 7, "already finished"
    if case == "finish by the wrong executor":
        assert net.one(agent.tx(start)).code == 0
        other = next(p for p in net.parts if p.address != executor.address)
        return other.tx(finish_msg(other, start, [3])), 8, "was assigned to"
    if case == "forged executor signature":
        assert net.one(agent.tx(start)).code == 0
        return executor.tx(finish_msg(executor, start, [3], signer=agent.node_key)), 9, \
            "signature does not verify"
    if case == "executor the draw did not pick":
        wrong = next(p for p in net.parts if p.address != executor.address)
        forged = start_msg(agent, net.developer, f"bad-{case}", wrong.address,
                           net.height, T0 + net.height, [1, 2, 3, 4])
        return agent.tx(forged), 10, "picks"
    if case == "developer without funds":
        drawn = net.drawn(agent, f"bad-{case}", net.poor)[0]
        poor = start_msg(agent, net.poor, f"bad-{case}", drawn, net.height, T0 + net.height,
                         [1, 2, 3, 4], max_tokens=1000)
        return agent.tx(poor), 5, "smaller than"
    if case == "replayed request signature":
        assert net.one(agent.tx(start)).code == 0
        # The same signed request (body, timestamp, agent) presented again: its id is the
        # request's, so it names the inference already started.
        replay = start_msg(agent, net.developer, "bad-replay-2", executor.address,
                           net.height, start.request_timestamp, [1, 2, 3, 4],
                           body=f"request bad-{case}".encode())
        assert replay.request_signature == start.request_signature
        assert replay.inference_id == start.inference_id
        return agent.tx(replay), 6, "already started"
    if case in ("request signed for an API key", "request signed for another chain"):
        # The developer's signature over this very body, for another purpose or chain.
        other = ({"purpose": payload.RequestPurpose.API_KEY} if "API key" in case
                 else {"chain_id": "other-chain"})
        forged = start_msg(agent, net.developer, f"bad-{case}", executor.address,
                           net.height, T0 + net.height, [1, 2, 3, 4], **other)
        return agent.tx(forged), 9, "request signature does not verify"
    if case == "request without its nonce":
        start.ClearField("request_nonce")
        start.ta_signature = agent.node_key.sign(payload.start_payload_of(start)).signature
        return agent.tx(start), 9, "request_nonce must be 16 bytes"
    if case == "stale request":
        stale = start_msg(agent, net.developer, f"bad-{case}", executor.address,
                          net.height, T0 - 10_000, [1, 2, 3, 4])
        return agent.tx(stale), 12, "from the block time"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "duplicate start", "duplicate finish", "finish by the wrong executor",
    "forged executor signature", "executor the draw did not pick", "developer without funds",
    "replayed request signature", "request signed for an API key",
    "request signed for another chain", "request without its nonce", "stale request"])
def test_refusals_have_clear_codes_and_keep_balances_consistent(net, case):
    raw, code, message = _refusal(net, case)
    balances = [net.balance(a) for a in net.all_accounts]
    result = net.one(raw)
    assert (result.code, message in result.log) == (code, True), result.log
    fees = 20_000
    after = [net.balance(a) for a in net.all_accounts]
    assert sum(before - now for before, now in zip(balances, after, strict=True)) == fees
    net.assert_conserved()


def test_fallback_attempts_follow_the_draw_order_and_count_misses_on_a_signed_refusal(net):
    agent, executor, start = net.start("inf-fallback", attempt=1)
    order = net.drawn(agent, "inf-fallback")
    assert executor.address == order[1]
    refusal = net.actor(order[0]).node_key.sign(
        payload.refusal_payload(start.inference_id, 0, order[0])).signature
    start.refusals.append(refusal)
    assert net.one(agent.tx(start)).code == 0
    skipped = net.query("Participant", q.QueryParticipantRequest(address=order[0]))
    assert skipped.participant.misses == 1


def test_inferences_by_status_follow_the_chain(net):
    agent, executor, start = net.start("inf-list")
    net.one(agent.tx(start))
    started = net.query("Inferences", q.QueryInferencesRequest(status=STARTED))
    assert [i.id for i in started.inferences] == [net.ids["inf-list"]]
    net.one(executor.tx(finish_msg(executor, start, [4, 4])))
    finished = net.query("Inferences", q.QueryInferencesRequest(
        status=FINISHED, from_height=net.height, to_height=net.height))
    assert [i.id for i in finished.inferences] == [net.ids["inf-list"]]
    assert not net.query("Inferences", q.QueryInferencesRequest(status=STARTED)).inferences


def test_updates_change_the_url_and_a_withdrawn_participant_leaves_the_draw(net):
    leaving = net.parts[0]
    registered = leaving.register()
    update = MsgUpdateParticipant(creator=leaving.address, url="https://executor.example:8443",
                                  node_pubkey=registered.node_pubkey, models=registered.models)
    assert net.one(leaving.tx(update)).code == 0
    found = net.query("Participant", q.QueryParticipantRequest(address=leaving.address))
    assert found.participant.url == "https://executor.example:8443"
    assert net.one(leaving.tx(MsgWithdrawParticipant(creator=leaving.address))).code == 0
    assert all(leaving.address not in net.draw(f"after-{i}") for i in range(30))
    again = net.one(leaving.tx(registered))
    assert again.code == 2 and "already registered" in again.log


def test_an_allowance_pays_for_unsigned_starts_and_refunds_refill_it(net):
    agent, executor, start = net.start("allow-1", max_tokens=16, signed_request=False)
    grant = MsgGrantAllowance(creator=net.developer.address, transfer_agent=agent.address,
                              limit=5_000)
    assert net.one(net.developer.tx(grant)).code == 0
    assert net.one(agent.tx(start)).code == 0
    escrow = (4 + 16) * PRICE + AGENT_FEE

    def allowance() -> int:
        return net.query("Allowance", q.QueryAllowanceRequest(
            developer=net.developer.address, transfer_agent=agent.address)).remaining

    assert allowance() == 5_000 - escrow
    assert net.one(executor.tx(finish_msg(executor, start, [1, 2]))).code == 0
    assert allowance() == 5_000 - (4 + 2) * PRICE - AGENT_FEE
    net.assert_conserved()

    def unsigned_by_agent(label: str, max_tokens: int):
        return net.key_start(label, agent=agent, max_tokens=max_tokens)[2]

    refused = net.one(agent.tx(unsigned_by_agent("allow-2", 100)))
    assert refused.code == 17 and "allows" in refused.log
    revoke = MsgGrantAllowance(creator=net.developer.address, transfer_agent=agent.address,
                               limit=0)
    assert net.one(net.developer.tx(revoke)).code == 0
    assert allowance() == 0
    assert net.one(agent.tx(unsigned_by_agent("allow-3", 1))).code == 17
    stranger = next(p for p in net.parts if p is not agent)
    unsigned = net.key_start("allow-4", agent=stranger)[2]
    assert net.one(stranger.tx(unsigned)).code == 17
    net.assert_conserved()
