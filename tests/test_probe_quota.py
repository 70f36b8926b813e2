"""Probes are owed (docs/design.md §10.4): through real signed transactions in-process, a
member's probe commitments are counted per model and epoch, the epoch's judging makes a member
short of the quota lazy (its settlement pays it nothing), a probe's commitment locks a forfeit
dearer than a served probe and its start must be the agent's own request to the probed model,
paid without an allowance; malformed probes are refused whole, a non-member's are not counted,
and the counts leave state with their epoch's judging. Coins are audited at every height."""

from collections.abc import Callable

import pytest
from coin_ledger import Ledger
from inference_actors import (
    AGENT_FEE,
    MODEL_ID,
    PRICE,
    Actor,
    finish_msg,
    genesis_models,
    start_msg,
)
from inference_net import COMMITTED_ESCROW, T0, Net
from test_draw_binding import resigned

from chain.inference import key_commitments, probes, start_rules
from chain.inference.checkers import ModelCheckers
from chain.inference.errors import DrawMismatch
from chain.inference.key_commitments import FORFEIT_ACCOUNT
from chain.inference.params import InferenceParams
from chain.validation.sampling import seed_hash
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    DrawWeight,
    DrawWeights,
    KeyRequest,
    MsgCommitKeyRequests,
    MsgWithdrawParticipant,
)
from inferchain_pb.inference.v1.validation_pb2 import MsgClaimRewards, MsgCommitSeed

EPOCH, REVEAL = 20, 9
QUOTA = 2
PROBE_FORFEIT = InferenceParams().probe_forfeit_tokens * PRICE + AGENT_FEE
# A start of 4 prompt tokens and 16 more: a tenth of it is far below the probe forfeit.
PROBE_ESCROW = (4 + 16) * PRICE + AGENT_FEE


def probe_net(participants: int = 3, newcomers: int = 0,
              retired_models: list[dict] | None = None) -> Net:
    return Net(participants, expiration_blocks=50, newcomers=newcomers,
               retired_models=retired_models, extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0}},
        "validation": {"params": {"validation_window_blocks": 3, "voting_period_blocks": 3,
                                  "opening_blocks": 1, "reveal_window_blocks": REVEAL,
                                  "canary_rate_ppm": 0, "probe_quota": QUOTA}}})


def probe_ids(net: Net, agent: Actor, label: str, count: int) -> list[str]:
    """Ids of ``count`` API-key requests of ``agent`` to itself, stamped now."""
    return [start_msg(agent, agent, f"{label}-{n}", agent.address, net.height, T0 + net.height,
                      [1, 2, 3, 4], signed_request=False).inference_id for n in range(count)]


def probe_commitment(agent: Actor, ids: list[str], model_id: str = MODEL_ID,
                     max_escrow: int = PROBE_ESCROW) -> MsgCommitKeyRequests:
    return MsgCommitKeyRequests(creator=agent.address, requests=[
        KeyRequest(inference_id=i, max_escrow=max_escrow, probe_model_id=model_id)
        for i in ids])


def counted(net: Net, agent: Actor) -> int:
    return sum(p.count for p in net.query("Probes", q.QueryProbesRequest(
        address=agent.address)).probes)


def commit_seeds(net: Net, block: Callable[[list[bytes]], list]) -> None:
    """Every member commits its epoch-0 seed in one block, through ``block`` (the net's or
    its ledger's)."""
    results = block([a.tx(MsgCommitSeed(creator=a.address, epoch=0,
                                        seed_hash=seed_hash(bytes([7]) * 32)))
                     for a in net.parts])
    assert all(r.code == 0 for r in results), [r.log for r in results]


def judge_epoch_0(net: Net, block: Callable[[list[bytes]], list]) -> None:
    """The blocks to the end of epoch 0, every member's claim, and the reveal window after it,
    so that epoch 0 is judged and settled."""
    while net.height < EPOCH:
        block([])
    claims = block([a.tx(MsgClaimRewards(creator=a.address, epoch=0, seed=bytes([7]) * 32))
                    for a in net.parts])
    assert all(r.code == 0 for r in claims), [r.log for r in claims]
    while net.height < EPOCH + REVEAL + 1:
        block([])


def test_the_epoch_fixes_who_owes_probes_of_which_model():
    """Every member owes the quota for each model two or more members serve with the share of
    weight draws ask for: a lone server's model draws nobody, and a network of one member only
    itself."""
    net = probe_net()
    members = net.query("Epoch", q.QueryEpochRequest(epoch=0)).members
    assert (members.probe_quota, list(members.probed_model_ids)) == (QUOTA, [MODEL_ID])

    def probed(servers: dict[str, tuple[int, list[str]]], share_ppm: int = 333_333) -> list:
        return ModelCheckers(DrawWeights(min_server_share_ppm=share_ppm, weights=[
            DrawWeight(address=a, weight=w, model_ids=m) for a, (w, m) in servers.items()])
        ).probed_models()

    assert probed({"a": (10, ["x", "y"]), "b": (10, ["x"]), "c": (10, ["z"])}) == ["x"]
    assert probed({"a": (10, ["x"])}) == []
    # Two servers of y holding less than the share: y draws nobody, so nobody owes it.
    assert probed({"a": (1, ["y"]), "b": (1, ["y"]), "c": (98, ["x"])}) == []


def test_a_member_short_of_its_quota_is_lazy_and_paid_nothing():
    """Two members commit their two probes (one of them drops its second: the forfeit burns,
    the probe still counts), the third commits one: after the reveal window the third is lazy
    with one probe missed and its settlement pays it nothing, the others are paid; the counts
    have left state."""
    net = probe_net()
    ledger = Ledger(net, EPOCH)
    full, dropped, short = net.parts
    commit_seeds(net, ledger.block)
    before = net.balance(dropped)
    results = ledger.block([full.tx(probe_commitment(full, probe_ids(net, full, "p", 2))),
                            dropped.tx(probe_commitment(dropped, probe_ids(net, dropped, "p", 2))),
                            short.tx(probe_commitment(short, probe_ids(net, short, "p", 1)))])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert [counted(net, a) for a in net.parts] == [2, 2, 1]
    assert net.balance(FORFEIT_ACCOUNT) == 5 * PROBE_FORFEIT
    judge_epoch_0(net, ledger.block)
    records = {a.address: net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
        address=a.address, epoch=0)).record for a in net.parts}
    assert [records[a.address].probes_missed for a in net.parts] == [0, 0, 1]
    assert [records[a.address].lazy for a in net.parts] == [False, False, True]
    rewards = {r.address: r for r in net.query("EpochSettlement", q.QueryEpochSettlementRequest(
        epoch=0)).settlement.rewards}
    assert rewards[full.address].paid and rewards[dropped.address].paid
    assert not rewards[short.address].paid and rewards[short.address].reward_coins == 0
    assert rewards[short.address].reason == "lazy validator"
    # Every forfeit burned (no start took any): dropping costs more than a served probe.
    assert net.balance(FORFEIT_ACCOUNT) == 0
    assert net.balance(dropped) - before == rewards[dropped.address].reward_coins \
        - 2 * PROBE_FORFEIT - 2 * 20_000  # its commitment's and its claim's tx fees
    assert [counted(net, a) for a in net.parts] == [0, 0, 0]
    assert ledger.settled == {0}


def test_a_probe_starts_only_as_its_agents_own_request_to_its_model_without_an_allowance():
    """A probe's commitment holds the probe forfeit (more than a tenth of its escrow); a start
    of its id as another developer's request, or of another model, is refused (code 10) and
    changes nothing; the agent's own start lands with no allowance granted, returns the
    forfeit, and its executor's finish charges the agent."""
    net = probe_net()
    agent = net.parts[0]
    draw_height = net.height + 2
    stamp = T0 + net.height
    [probe_id] = probe_ids(net, agent, "own", 1)
    result = net.one(agent.tx(probe_commitment(agent, [probe_id])))
    assert result.code == 0, result.log
    net.block([])
    assert net.height == draw_height
    found = key_commitments.commitment(net.app.store.begin_block(), agent.address, probe_id)
    assert (found.probe_model_id, found.forfeit) == (MODEL_ID, PROBE_FORFEIT)
    order = start_rules.executor_order(net.draw_at(probe_id, draw_height), agent.address,
                                       False)
    executor = net.actor(order[0])
    own = start_msg(agent, agent, "own-0", executor.address, draw_height, stamp, [1, 2, 3, 4],
                    signed_request=False)
    assert own.inference_id == probe_id
    others = resigned(agent, own, developer=net.developer.address)
    before = (net.balance(agent), net.balance(FORFEIT_ACCOUNT), counted(net, agent))
    result = net.one(agent.tx(others))
    assert (result.codespace, result.code) == ("inference", 10), result.log
    assert "probe of" in result.log and "own request" in result.log, result.log
    assert (net.balance(agent) + 20_000, net.balance(FORFEIT_ACCOUNT),
            counted(net, agent)) == before
    # Of another registered model (the chain reaches this check once the model is known).
    with pytest.raises(DrawMismatch, match="to that model"):
        key_commitments.check_start(found, resigned(agent, own, model_id="another/model"),
                                    PROBE_ESCROW)
    result = net.one(agent.tx(own))
    assert result.code == 0, result.log
    assert net.balance(FORFEIT_ACCOUNT) == 0
    result = net.one(executor.tx(finish_msg(executor, own, [7, 8])))
    assert result.code == 0, result.log
    inference = net.inference(probe_id)
    assert (inference.developer, inference.transfer_agent) == (agent.address, agent.address)
    assert (inference.cost, inference.agent_fee) == ((4 + 2) * PRICE, AGENT_FEE)
    assert counted(net, agent) == 1
    net.assert_conserved()


RETIRED_MODEL = {**genesis_models()[0], "id": "acme/retired-model"}


@pytest.mark.parametrize(("model_id", "why"), [
    ("no-such-model", "not in the registry"), ("x" * 300, "not in the registry"),
    (RETIRED_MODEL["id"], "retired by governance")])
def test_a_probe_of_a_model_not_in_the_registry_refuses_the_whole_commitment(model_id, why):
    net = probe_net(retired_models=[RETIRED_MODEL])
    agent = net.parts[0]
    ids = probe_ids(net, agent, "bad", 2)
    message = MsgCommitKeyRequests(creator=agent.address, requests=[
        KeyRequest(inference_id=ids[0], max_escrow=COMMITTED_ESCROW, probe_model_id=MODEL_ID),
        KeyRequest(inference_id=ids[1], max_escrow=COMMITTED_ESCROW, probe_model_id=model_id)])
    before = net.balance(agent)
    result = net.one(agent.tx(message))
    assert (result.codespace, result.code) == ("inference", 4), result.log
    assert why in result.log
    assert (net.balance(agent), net.balance(FORFEIT_ACCOUNT), counted(net, agent)) == \
        (before - 20_000, 0, 0)
    assert key_commitments.commitment(net.app.store.begin_block(), agent.address,
                                      ids[0]) is None


def test_a_participant_without_weight_commits_probes_that_count_for_nothing():
    """A newcomer (no weight yet) is no member: nothing judges its counts, so none are kept;
    its probe commitment still locks the probe forfeit."""
    net = probe_net(newcomers=1)
    newcomer = net.newcomers[0]
    result = net.one(newcomer.tx(newcomer.register()))
    assert result.code == 0, result.log
    result = net.one(newcomer.tx(probe_commitment(newcomer, probe_ids(net, newcomer, "n", 2))))
    assert result.code == 0, result.log
    assert counted(net, newcomer) == 0
    assert net.balance(FORFEIT_ACCOUNT) == 2 * PROBE_FORFEIT


def test_a_member_that_withdrew_still_owes_and_is_counted_its_probes_until_the_epoch_ends():
    """A withdrawal takes effect at the next boundary: until then the participant is a member
    of the epoch, judged on its quota, so the probes it commits after withdrawing count, and
    its judging finds none missing."""
    net = probe_net()
    leaver = net.parts[0]
    commit_seeds(net, net.block)
    result = net.one(leaver.tx(MsgWithdrawParticipant(creator=leaver.address)))
    assert result.code == 0, result.log
    assert not net.participant_record(leaver).active
    results = net.block([a.tx(probe_commitment(a, probe_ids(net, a, "w", QUOTA)))
                         for a in net.parts])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert [counted(net, a) for a in net.parts] == [QUOTA] * 3
    judge_epoch_0(net, net.block)
    record = net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
        address=leaver.address, epoch=0)).record
    assert (record.probes_missed, record.lazy) == (0, False), record


def test_counts_are_taken_per_epoch_and_the_next_epochs_stay():
    """Judging takes the counts of its epoch only (``probes.take``)."""
    net = probe_net()
    agent = net.parts[0]
    for label in ("a", "b"):
        result = net.one(agent.tx(probe_commitment(agent, probe_ids(net, agent, label, 1))))
        assert result.code == 0, result.log
    heights = [p.height for p in net.query("Probes", q.QueryProbesRequest(
        address=agent.address)).probes]
    assert len(heights) == 2 and heights[0] < heights[1]
    kv = net.app.store.begin_block()
    assert probes.take(kv, agent.address, heights[0], heights[0]) == {MODEL_ID: 1}
    assert [p.height for p in probes.committed(kv, agent.address)] == [heights[1]]
