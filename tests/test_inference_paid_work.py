"""An executor is paid for delivered work without its transfer agent's cooperation, and no
stray Finish keeps a transfer agent's retry from starting: real signed txs, in-process blocks.

The executor relays the start its agent signed (MsgRelayStart) when the agent never sends it;
a lone Finish by an executor the landing start does not name is voided, never paid.
"""

import pytest
from inference_actors import AGENT_FEE, PRICE, Actor, delivery_signature, finish_msg, start_msg
from inference_net import T0, Net

from chain.inference import payload
from chain.query import QueryError
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    EXPIRED,
    FINISHED,
    STARTED,
    MsgGrantAllowance,
    MsgRelayStart,
    MsgStartInference,
)

FEE = 20_000  # what every test tx pays (inference_actors.Actor.tx)


@pytest.fixture
def net() -> Net:
    return Net(participants=4)


def _relay(executor: Actor, start: MsgStartInference,
           delivered: tuple[int, ...] = (7,)) -> MsgRelayStart:
    """The start as ``executor`` relays it, with its agent's signature that ``delivered`` of
    its output reached the developer."""
    return MsgRelayStart(creator=executor.address, start=start,
                         delivered_hash=payload.ids_hash(delivered),
                         delivery_signature=delivery_signature(start, list(delivered)))


def _misses(net: Net, who: Actor) -> int:
    return net.query("Participant", q.QueryParticipantRequest(
        address=who.address)).participant.misses


def test_an_executor_whose_agent_never_starts_relays_the_signed_start_and_is_paid(net):
    agent, executor, start = net.start("withheld", max_tokens=16)
    developer_before = net.balance(net.developer)
    agent_before = net.balance(agent)
    # The agent has the output and sends nothing; the executor finishes, then relays.
    assert net.one(executor.tx(finish_msg(executor, start, [7, 8, 9]))).code == 0
    relayed = net.one(executor.tx(_relay(executor, start)))
    assert relayed.code == 0, relayed.log
    cost = (4 + 3) * PRICE
    done = net.inference("withheld")
    assert (done.status, done.executor, done.cost, done.transfer_agent) == (
        FINISHED, executor.address, cost, agent.address)
    assert net.account(executor).work_balance == cost
    assert net.balance(net.developer) == developer_before - cost - AGENT_FEE
    assert net.account(net.developer).escrow == 0
    # The agent paid no tx fee and earns nothing: the relaying executor sent the start, so
    # the agent's fee is its own.
    assert net.balance(agent) == agent_before
    assert (done.starter, done.agent_fee) == (executor.address, AGENT_FEE)
    # The agent's own start coming late, or the relay again, charges nobody a second time.
    assert net.one(agent.tx(start)).code == 6
    assert net.one(executor.tx(_relay(executor, start))).code == 6
    assert net.balance(net.developer) == developer_before - cost - AGENT_FEE
    assert net.account(executor).work_balance == cost
    net.assert_conserved()


def test_a_relay_before_the_finish_waits_for_it_and_settles_once(net):
    agent, executor, start = net.start("relay-first", max_tokens=16)
    before = net.balance(net.developer)
    assert net.one(executor.tx(_relay(executor, start))).code == 0
    assert net.inference("relay-first").status == STARTED
    assert net.balance(net.developer) == before - (4 + 16) * PRICE - AGENT_FEE
    # Agent and executor in the same block: the first counts, the second is a DuplicateStart.
    both = net.block([agent.tx(start), executor.tx(finish_msg(executor, start, [1, 2]))])
    assert [r.code for r in both] == [6, 0]
    assert net.balance(net.developer) == before - (4 + 2) * PRICE - AGENT_FEE
    assert net.inference("relay-first").starter == executor.address
    assert net.account(executor).work_balance == (4 + 2) * PRICE
    net.assert_conserved()


def test_an_allowance_start_relayed_spends_the_allowance_once(net):
    agent = net.parts[0]
    grant = MsgGrantAllowance(creator=net.developer.address, transfer_agent=agent.address,
                              limit=5_000)
    assert net.one(net.developer.tx(grant)).code == 0
    _, executor, start = net.key_start("allowed", agent=agent)
    assert net.one(executor.tx(_relay(executor, start))).code == 0
    assert net.one(executor.tx(_relay(executor, start))).code == 6
    assert net.one(agent.tx(start)).code == 6
    assert net.query("Allowance", q.QueryAllowanceRequest(
        developer=net.developer.address, transfer_agent=agent.address)).remaining == \
        5_000 - (4 + 16) * PRICE - AGENT_FEE
    net.assert_conserved()


def _attempts(net: Net, label: str) -> tuple[Actor, Actor, Actor, MsgStartInference,
                                            MsgStartInference]:
    """An agent outside the first two picks of its request ``label``, and its signed starts
    for attempts 0 and 1, the first pick's pass noticed and unclaimed (the attempt-1 start may
    land)."""
    for agent in net.parts:
        order = net.drawn(agent, label)
        if agent.address not in order[:2]:
            break
    first, second = net.actor(order[0]), net.actor(order[1])
    starts = [start_msg(agent, net.developer, label, who.address, net.height,
                        T0 + net.height, [1, 2, 3, 4], attempt=n)
              for n, who in enumerate((first, second))]
    net.ids[label] = starts[0].inference_id
    net.pass_picks(starts[1])
    return agent, first, second, starts[0], starts[1]


def test_a_failed_first_executors_finish_cannot_block_the_retry_nor_be_paid(net):
    agent, first, second, start0, start1 = _attempts(net, "retried")
    developer_before = net.balance(net.developer)
    assert net.one(first.tx(finish_msg(first, start0, [6, 6, 6]))).code == 0
    # The agent gave up on the first pick and starts the second: the stray finish is voided.
    landed = net.one(agent.tx(start1))
    assert landed.code == 0, landed.log
    record = net.inference("retried")
    assert (record.status, record.executor, record.finished) == (STARTED, second.address,
                                                                 False)
    assert any(e.type == "void_finish" for e in landed.events)
    # The first pick cannot take it back: neither its finish again nor its attempt-0 start.
    assert net.one(first.tx(finish_msg(first, start0, [6, 6, 6]))).code == 8
    assert net.one(first.tx(_relay(first, start0))).code == 6
    assert net.one(second.tx(finish_msg(second, start1, [1, 2]))).code == 0
    cost = (4 + 2) * PRICE
    done = net.inference("retried")
    assert (done.status, done.executor, list(done.output_ids)) == (FINISHED, second.address,
                                                                   [1, 2])
    assert net.account(second).work_balance == cost
    assert net.account(first).work_balance == 0
    assert net.participant_record(first).completions == 0
    assert _misses(net, first) == 0  # a skipped pick's miss needs its signed refusal
    assert net.balance(net.developer) == developer_before - cost - AGENT_FEE
    net.assert_conserved()


def test_the_retrys_finish_waits_out_a_stray_finish_until_the_start_voids_it(net):
    agent, first, second, start0, start1 = _attempts(net, "crowded")
    assert net.one(first.tx(finish_msg(first, start0, [6]))).code == 0
    early = net.one(second.tx(finish_msg(second, start1, [1, 2])))
    assert early.code == 8 and "voids it" in early.log  # retryable, not "already finished"
    assert net.one(second.tx(_relay(second, start1))).code == 0
    assert net.one(second.tx(finish_msg(second, start1, [1, 2]))).code == 0
    assert net.inference("crowded").status == FINISHED
    assert net.account(second).work_balance == (4 + 2) * PRICE
    assert net.account(first).work_balance == 0
    assert net.one(agent.tx(start1)).code == 6
    net.assert_conserved()


def test_an_expired_stray_finish_does_not_close_the_inference(net):
    agent, first, second, start0, start1 = _attempts(net, "late-retry")
    assert net.one(first.tx(finish_msg(first, start0, [6]))).code == 0
    for _ in range(5):
        net.block([])
    assert net.one(agent.tx(start1)).code == 0
    assert net.one(second.tx(finish_msg(second, start1, [3]))).code == 0
    assert net.inference("late-retry").executor == second.address
    assert net.account(first).work_balance == 0
    net.assert_conserved()


def _tampered(net: Net, case: str) -> tuple[Actor, MsgRelayStart, int, str]:
    agent, executor, start = net.start(f"tamper-{case}")
    relay = _relay(executor, start)
    if case == "more prompt tokens":
        relay.start.prompt_ids.extend([9, 9, 9, 9])  # a bigger bill than the agent signed
        return executor, relay, 9, "transfer agent's node-key signature"
    if case == "more output tokens":
        relay.start.max_tokens += 100
        return executor, relay, 9, "transfer agent's node-key signature"
    if case == "request signature dropped":
        relay.start.ClearField("request_signature")  # to spend an allowance instead
        return executor, relay, 9, "transfer agent's node-key signature"
    if case == "signed by the executor's own key":
        relay.start.ta_signature = executor.node_key.sign(
            payload.start_payload_of(relay.start)).signature
        return executor, relay, 9, "transfer agent's node-key signature"
    if case == "relayed by another participant":
        other = next(p for p in net.parts if p not in (agent, executor))
        return other, _relay(other, start), 8, "only the executor the start names"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "more prompt tokens", "more output tokens", "request signature dropped",
    "signed by the executor's own key", "relayed by another participant"])
def test_a_relayed_start_the_agent_did_not_sign_is_refused_and_moves_nothing(net, case):
    sender, relay, code, message = _tampered(net, case)
    balances = [net.balance(a) for a in net.all_accounts]
    result = net.one(sender.tx(relay))
    assert (result.code, message in result.log) == (code, True), result.log
    after = [net.balance(a) for a in net.all_accounts]
    assert sum(b - a for b, a in zip(balances, after, strict=True)) == FEE
    with pytest.raises(QueryError, match="not found"):
        net.inference(relay.start.inference_id)
    net.assert_conserved()


def test_a_late_relay_settles_the_executors_finish_even_after_it_expired(net):
    agent, executor, start = net.start("slow-relay")
    before = net.balance(net.developer)
    assert net.one(executor.tx(finish_msg(executor, start, [5, 6]))).code == 0
    for _ in range(5):
        net.block([])
    assert net.inference("slow-relay").status == EXPIRED
    assert net.one(executor.tx(_relay(executor, start))).code == 0
    assert net.inference("slow-relay").status == FINISHED
    assert net.account(executor).work_balance == (4 + 2) * PRICE
    assert net.balance(net.developer) == before - (4 + 2) * PRICE - AGENT_FEE
    net.assert_conserved()


def test_a_pick_that_refused_the_forward_cannot_relay_its_start_to_block_the_retry(net):
    """The hostile first pick refuses the forward, then relays the attempt-0 start the
    forward carried: without the agent's delivery of its output, or with the delivery the
    agent signed for the second pick's output, the relay is refused and moves nothing; the
    agent's retry starts and its executor is paid."""
    agent, first, second, start0, start1 = _attempts(net, "hijacked")
    developer_before = net.balance(net.developer)
    undelivered = MsgRelayStart(creator=first.address, start=start0)
    copied = MsgRelayStart(creator=first.address, start=start0,
                           delivered_hash=payload.ids_hash([1, 2]),
                           delivery_signature=delivery_signature(start1, [1, 2]))
    for relay in (undelivered, copied):
        refused = net.one(first.tx(relay))
        assert (refused.codespace, refused.code) == ("inference", 60), refused.log
        assert "signed no delivery" in refused.log
        with pytest.raises(QueryError, match="not found"):
            net.inference("hijacked")
    # The relay and the retry in one block, the relay first: still only the retry starts.
    both = net.block([first.tx(undelivered), agent.tx(start1)])
    assert [r.code for r in both] == [60, 0], [r.log for r in both]
    assert net.inference("hijacked").executor == second.address
    assert net.one(second.tx(finish_msg(second, start1, [1, 2]))).code == 0
    cost = (4 + 2) * PRICE
    done = net.inference("hijacked")
    assert (done.status, done.executor) == (FINISHED, second.address)
    assert net.account(second).work_balance == cost
    assert net.account(first).work_balance == 0
    assert net.participant_record(first).completions == 0
    assert net.balance(net.developer) == developer_before - cost - AGENT_FEE
    net.assert_conserved()
