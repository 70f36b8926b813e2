"""The gov module through real signed transactions, driven in-process block by block:
proposals, deposits, votes, the tally, atomic execution, refunds and burns."""

import json

import pytest
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.message import Message
from inference_actors import (
    AGENT_FEE,
    DTYPE,
    MODEL_ID,
    PRICE,
    WEIGHTS,
    Actor,
    finish_msg,
    genesis_models,
)
from inference_net import Net

from chain.gov.keeper import GOV_ACCOUNT
from chain.inference.model import DEFAULT_RULES, with_default_rule
from chain.query import QueryError
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.gov_pb2 import (
    PROPOSAL_STATUS_DEPOSIT_PERIOD,
    PROPOSAL_STATUS_FAILED,
    PROPOSAL_STATUS_PASSED,
    PROPOSAL_STATUS_REJECTED,
    PROPOSAL_STATUS_VOTING_PERIOD,
    VOTE_OPTION_ABSTAIN,
    VOTE_OPTION_NO,
    VOTE_OPTION_NO_WITH_VETO,
    VOTE_OPTION_YES,
    MsgDeposit,
    MsgSubmitProposal,
    MsgVote,
    ParamChange,
    Proposal,
    RegisterModel,
    RetireModel,
    SoftwareUpgrade,
    UpdateModel,
)
from inferchain_pb.inference.v1.inference_pb2 import Model, MsgUpdateParticipant, ServedModel

EPOCH = 5
MIN_DEPOSIT = 1_000
MIN_INITIAL = 100
DEPOSIT_PERIOD = 3
VOTING_PERIOD = 3
FEE = 2_000_000 // 100  # what Actor.tx pays per tx
NEW_WEIGHTS = "ab" * 32


@pytest.fixture
def net() -> Net:
    """Three participants of weight 100 each, members of epoch 1 (heights 6-10, ...)."""
    built = Net(3, extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0}},
        "gov": {"params": {"min_deposit": MIN_DEPOSIT, "min_initial_deposit": MIN_INITIAL,
                           "deposit_period_blocks": DEPOSIT_PERIOD,
                           "voting_period_blocks": VOTING_PERIOD}}})
    while built.height < EPOCH + 1:
        built.block([])
    return built


def packed(content: Message) -> AnyPb:
    found = AnyPb()
    found.Pack(content, type_url_prefix="/")
    return found


def param(module: str, name: str, value: object) -> AnyPb:
    return packed(ParamChange(module=module, param=name, value_json=json.dumps(value)))


def submit(net: Net, proposer: Actor, *contents: AnyPb, deposit: int = MIN_DEPOSIT):
    return net.one(proposer.tx(MsgSubmitProposal(
        proposer=proposer.address, messages=list(contents), initial_deposit=deposit,
        title="a change", summary="why it helps")))


def proposal_id(result) -> int:
    assert result.code == 0, result.log
    event = next(e for e in result.events if e.type == "submit_proposal")
    return int(next(a.value for a in event.attributes if a.key == "proposal_id"))


def vote(voter: Actor, pid: int, option: int) -> bytes:
    return voter.tx(MsgVote(voter=voter.address, proposal_id=pid, option=option))


def proposal(net: Net, pid: int) -> Proposal:
    return net.query("Proposal", q.QueryProposalRequest(proposal_id=pid)).proposal


def params(net: Net, module: str) -> dict:
    return json.loads(net.query("Params", q.QueryParamsRequest(module=module)).params_json)


def run_vote(net: Net, pid: int, options: list[int]) -> Proposal:
    """The participants vote ``options`` (one each), then blocks pass until the tally."""
    results = net.block([vote(p, pid, o) for p, o in zip(net.parts, options, strict=False)])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    while net.height < proposal(net, pid).voting_end_height:
        net.block([])
    return proposal(net, pid)


def supply(net: Net) -> int:
    return net.app.modules.bank.supply(net.app.store.begin_block(), "ninfer")


def test_a_passed_param_change_is_in_force_from_the_next_block(net):
    before = net.balance(net.developer)
    pid = proposal_id(submit(net, net.developer, param("validation", "p_min_ppm", 50_000)))
    assert proposal(net, pid).status == PROPOSAL_STATUS_VOTING_PERIOD
    assert net.balance(GOV_ACCOUNT) == MIN_DEPOSIT
    net.block([vote(p, pid, VOTE_OPTION_YES) for p in net.parts[:2]])
    tally = net.query("ProposalTally", q.QueryProposalTallyRequest(proposal_id=pid)).tally
    assert (tally.yes, tally.total_power) == (200, 300)
    assert params(net, "validation")["p_min_ppm"] == 10_000
    while net.height < proposal(net, pid).voting_end_height:
        net.block([])
    ended = proposal(net, pid)
    assert ended.status == PROPOSAL_STATUS_PASSED and ended.result == "passed"
    assert params(net, "validation")["p_min_ppm"] == 50_000
    assert net.balance(net.developer) == before - FEE  # the deposit came back
    assert net.balance(GOV_ACCOUNT) == 0


def test_a_model_price_change_prices_the_very_next_start(net):
    new_price = PRICE * 3
    pid = proposal_id(submit(net, net.developer, packed(UpdateModel(model=Model(
        id=MODEL_ID, weights_sha256=WEIGHTS, price_per_token=new_price, context_length=8192,
        validation_threshold="0.15", top_k=5, serving_dtype=DTYPE)))))
    assert run_vote(net, pid, [VOTE_OPTION_YES] * 3).status == PROPOSAL_STATUS_PASSED
    agent, _, start = net.start("priced-after-vote")
    result = net.one(agent.tx(start))
    assert result.code == 0, result.log
    assert net.account(net.developer).escrow == (4 + 16) * new_price + AGENT_FEE


def test_a_transfer_agent_fee_change_prices_new_starts_and_spares_open_ones(net):
    """The fee is escrowed at the start, so a vote that lands while an inference is open
    neither charges its developer more nor pays its agent less than the start promised."""
    agent, executor, open_start = net.start("open-before-vote", max_tokens=16)
    assert net.one(agent.tx(open_start)).code == 0
    pid = proposal_id(submit(net, net.developer, param("inference", "transfer_agent_fee",
                                                       AGENT_FEE * 5)))
    assert run_vote(net, pid, [VOTE_OPTION_YES] * 3).status == PROPOSAL_STATUS_PASSED
    assert params(net, "inference")["transfer_agent_fee"] == AGENT_FEE * 5
    agent_before = net.balance(agent)
    assert net.one(executor.tx(finish_msg(executor, open_start, [1, 2]))).code == 0
    assert net.inference("open-before-vote").agent_fee == AGENT_FEE
    assert net.balance(agent) == agent_before + AGENT_FEE
    later_agent, _, later = net.start("after-vote", max_tokens=16)
    escrowed = net.account(net.developer).escrow
    assert net.one(later_agent.tx(later)).code == 0
    assert net.account(net.developer).escrow - escrowed == (4 + 16) * PRICE + AGENT_FEE * 5
    net.assert_conserved()


def test_missing_quorum_or_a_veto_changes_nothing(net):
    before = net.balance(net.developer)
    no_quorum = proposal_id(submit(net, net.developer, param("inference", "top_k", 7)))
    ended = run_vote(net, no_quorum, [VOTE_OPTION_YES])  # 100 of 300 < 33.4%
    assert (ended.status, ended.result) == (PROPOSAL_STATUS_REJECTED, "quorum not reached")
    assert ended.deposits_refunded and net.balance(net.developer) == before - FEE
    supply_before = supply(net)
    vetoed = proposal_id(submit(net, net.developer, param("inference", "top_k", 7)))
    ended = run_vote(net, vetoed, [VOTE_OPTION_YES, VOTE_OPTION_NO_WITH_VETO,
                                   VOTE_OPTION_NO_WITH_VETO])
    assert (ended.status, ended.result) == (PROPOSAL_STATUS_REJECTED, "vetoed")
    assert not ended.deposits_refunded
    assert net.balance(net.developer) == before - 2 * FEE - MIN_DEPOSIT
    assert supply(net) == supply_before - MIN_DEPOSIT  # burned, not kept
    assert params(net, "inference")["top_k"] == 5
    rejected = proposal_id(submit(net, net.developer, param("inference", "top_k", 7)))
    ended = run_vote(net, rejected, [VOTE_OPTION_YES, VOTE_OPTION_NO, VOTE_OPTION_ABSTAIN])
    assert (ended.status, ended.result) == (PROPOSAL_STATUS_REJECTED, "threshold not reached")
    assert params(net, "inference")["top_k"] == 5


@pytest.mark.parametrize(("content", "deposit", "code", "words"), [
    (param("nomodule", "x", 1), MIN_DEPOSIT, 3, "unknown module 'nomodule'"),
    (param("validation", "p_nothing", 1), MIN_DEPOSIT, 3, "has no param 'p_nothing'"),
    (param("epochs", "epoch_length_blocks", 9), MIN_DEPOSIT, 3, "is not governable"),
    (param("validation", "p_min_ppm", 2_000_000), MIN_DEPOSIT, 3, "in [0, 1000000]"),
    (param("inference", "top_k", "five"), MIN_DEPOSIT, 3, "must be an integer in [1, 20]"),
    (packed(Model(id="not content")), MIN_DEPOSIT, 3, "unknown content type"),
    (AnyPb(type_url="/inference.v1.ParamChange", value=b"\xff\xff"), MIN_DEPOSIT, 3,
     "cannot decode"),
    (packed(RegisterModel(model=Model(id="m", weights_sha256="xyz", price_per_token=1,
                                      context_length=1, top_k=1,
                                      validation_threshold="0.1"))), MIN_DEPOSIT, 3,
     "weights_sha256 must be 64"),
    (packed(RegisterModel(model=Model(id=MODEL_ID, weights_sha256=WEIGHTS, price_per_token=1,
                                      context_length=1, top_k=1,
                                      validation_threshold="0.1", serving_dtype=DTYPE))),
     MIN_DEPOSIT, 3, "already used"),
    (packed(RetireModel(model_id="no-such-model")), MIN_DEPOSIT, 3, "not in the registry"),
    (param("inference", "top_k", 7), MIN_INITIAL - 1, 4, "below the minimum 100ninfer"),
])
def test_invalid_proposals_are_refused_at_submission(net, content, deposit, code, words):
    before = net.balance(net.developer)
    result = submit(net, net.developer, content, deposit=deposit)
    assert (result.codespace, result.code) == ("gov", code), result.log
    assert words in result.log
    assert net.query("Proposals", q.QueryProposalsRequest()).proposals == []
    assert net.balance(net.developer) == before - FEE


def test_votes_are_counted_once_by_power_and_only_in_the_voting_period(net):
    pid = proposal_id(submit(net, net.developer, param("inference", "top_k", 7),
                             deposit=MIN_INITIAL))
    early = net.one(vote(net.parts[0], pid, VOTE_OPTION_YES))
    assert (early.codespace, early.code) == ("gov", 7) and "not in its voting period" in early.log
    depositor = net.parts[2]
    before = net.balance(depositor)
    topped = net.one(depositor.tx(MsgDeposit(depositor=depositor.address, proposal_id=pid,
                                             amount=MIN_DEPOSIT - MIN_INITIAL)))
    assert topped.code == 0, topped.log
    assert proposal(net, pid).status == PROPOSAL_STATUS_VOTING_PERIOD
    powerless = net.one(vote(net.developer, pid, VOTE_OPTION_YES))
    assert (powerless.codespace, powerless.code) == ("gov", 8)
    assert "no voting power" in powerless.log
    first, again = net.block([vote(net.parts[0], pid, VOTE_OPTION_NO)]), \
        net.block([vote(net.parts[0], pid, VOTE_OPTION_YES), vote(net.parts[1], pid,
                                                                  VOTE_OPTION_YES)])
    assert all(r.code == 0 for r in first + again)
    votes = net.query("ProposalVotes", q.QueryProposalVotesRequest(proposal_id=pid)).votes
    assert sorted((v.voter, v.option) for v in votes) == sorted(
        [(net.parts[0].address, VOTE_OPTION_YES), (net.parts[1].address, VOTE_OPTION_YES)])
    while net.height < proposal(net, pid).voting_end_height:
        net.block([])
    ended = proposal(net, pid)
    assert (ended.final_tally.yes, ended.final_tally.no) == (200, 0)
    assert ended.status == PROPOSAL_STATUS_PASSED
    late = net.one(vote(net.parts[2], pid, VOTE_OPTION_NO))
    assert (late.codespace, late.code) == ("gov", 7)
    deposits = net.query("ProposalDeposits", q.QueryProposalDepositsRequest(proposal_id=pid))
    assert sorted(d.amount for d in deposits.deposits) == [MIN_INITIAL, MIN_DEPOSIT - MIN_INITIAL]
    assert net.balance(depositor) == before - 2 * FEE  # its top-up came back
    assert net.balance(GOV_ACCOUNT) == 0


def test_a_deposit_period_that_ends_short_burns_the_deposit(net):
    before, supply_before = net.balance(net.developer), supply(net)
    pid = proposal_id(submit(net, net.developer, param("inference", "top_k", 7),
                             deposit=MIN_INITIAL))
    assert proposal(net, pid).status == PROPOSAL_STATUS_DEPOSIT_PERIOD
    while net.height < proposal(net, pid).deposit_end_height:
        net.block([])
    ended = proposal(net, pid)
    assert ended.status == PROPOSAL_STATUS_REJECTED and "deposit period ended" in ended.result
    assert net.balance(net.developer) == before - FEE - MIN_INITIAL
    assert supply(net) == supply_before - MIN_INITIAL
    late = net.one(net.parts[0].tx(MsgDeposit(depositor=net.parts[0].address,
                                              proposal_id=pid, amount=MIN_DEPOSIT)))
    assert (late.codespace, late.code) == ("gov", 6)


def test_balance_votes_let_accounts_vote_with_their_ninfer():
    net = Net(2, extra_state={"gov": {"params": {
        "min_deposit": MIN_DEPOSIT, "min_initial_deposit": MIN_INITIAL,
        "voting_period_blocks": VOTING_PERIOD, "balance_votes": True}}})
    pid = proposal_id(submit(net, net.developer, param("gov", "quorum_ppm", 200_000)))
    voters = [net.developer, net.parts[0]]
    assert [r.code for r in net.block([vote(a, pid, VOTE_OPTION_YES) for a in voters])] == [0, 0]
    tally = net.query("ProposalTally", q.QueryProposalTallyRequest(proposal_id=pid)).tally
    assert tally.yes == sum(net.balance(a) for a in voters)
    assert tally.total_power == supply(net)
    while net.height < proposal(net, pid).voting_end_height:
        net.block([])
    assert proposal(net, pid).status == PROPOSAL_STATUS_PASSED  # 2/3 of the supply said yes
    assert params(net, "gov")["quorum_ppm"] == 200_000


def test_a_registered_model_can_be_served_and_a_retired_one_cannot(net):
    new_model = Model(id="acme/new-model", weights_sha256=NEW_WEIGHTS, price_per_token=7,
                      context_length=4096, validation_threshold="0.2", top_k=5,
                  serving_dtype=DTYPE)
    serve_both = MsgUpdateParticipant(
        creator=net.parts[0].address, url="http://127.0.0.1:9000",
        node_pubkey=bytes(net.parts[0].node_key.verify_key),
        models=[ServedModel(model_id=MODEL_ID, weights_sha256=WEIGHTS, dtype=DTYPE),
                ServedModel(model_id=new_model.id, weights_sha256=NEW_WEIGHTS, dtype=DTYPE)])
    refused = net.one(net.parts[0].tx(serve_both))
    assert refused.code != 0 and "not in the registry" in refused.log
    pid = proposal_id(submit(net, net.developer, packed(RegisterModel(model=new_model))))
    assert run_vote(net, pid, [VOTE_OPTION_YES] * 3).status == PROPOSAL_STATUS_PASSED
    models = net.query("Models", q.QueryModelsRequest()).models
    # A proposal that states no sampling rule gets its dtype's calibrated one.
    registered = with_default_rule(new_model)
    assert registered in models
    assert (registered.rule_tolerance_micro, registered.max_rule_violations) == (
        DEFAULT_RULES[DTYPE][0], DEFAULT_RULES[DTYPE][2])
    assert net.one(net.parts[0].tx(serve_both)).code == 0
    retire = proposal_id(submit(net, net.developer, packed(RetireModel(model_id=MODEL_ID))))
    assert run_vote(net, retire, [VOTE_OPTION_YES] * 3).status == PROPOSAL_STATUS_PASSED
    assert [m.id for m in net.query("Models", q.QueryModelsRequest()).models] == [new_model.id]
    agent, _, start = net.start("after-retirement")
    refused = net.one(agent.tx(start))
    assert "retired by governance" in refused.log


def test_the_server_share_a_model_needs_changes_by_vote_from_the_next_epoch():
    """The share of the weight a model's servers must hold to be drawn is governed like any
    param, but each epoch's draws read the value fixed at its first block: a change leaves
    the draws of the epoch it passed in as they were (a transfer agent's draw still holds at
    its start) and applies from the next one. Here two light members serve a model with a
    quarter of the weight: served at 250,000 ppm, drawn for nobody once 333,333 is in force."""
    other = f"{MODEL_ID}/other"
    epoch = 20
    net = Net(4, weights=[300, 300, 100, 100],
              models=[*genesis_models(), {**genesis_models()[0], "id": other}],
              serves=[(MODEL_ID,), (MODEL_ID,), (other,), (other,)],
              inference_params={"min_model_server_share_ppm": 250_000}, extra_state={
                  "epochs": {"params": {"epoch_length_blocks": epoch, "poc_window_blocks": 0}},
                  "gov": {"params": {"min_deposit": MIN_DEPOSIT,
                                     "min_initial_deposit": MIN_INITIAL,
                                     "deposit_period_blocks": DEPOSIT_PERIOD,
                                     "voting_period_blocks": VOTING_PERIOD}}})
    net.block([])
    assert net.draw_at("before", net.height, other)
    pid = proposal_id(submit(net, net.developer,
                             param("inference", "min_model_server_share_ppm", 333_333)))
    assert run_vote(net, pid, [VOTE_OPTION_YES] * 4).status == PROPOSAL_STATUS_PASSED
    net.block([])
    assert params(net, "inference")["min_model_server_share_ppm"] == 333_333
    assert net.height < 1 + epoch, "the vote must end inside epoch 0"
    assert net.draw_at("after-the-vote", net.height, other)
    while net.height < 1 + epoch:
        net.block([])
    with pytest.raises(QueryError) as refused:
        net.draw_at("next-epoch", net.height, other)
    assert "333333 ppm of the weight" in refused.value.message
    assert net.draw_at("next-epoch", net.height)  # the model everyone else serves is drawn


def test_a_content_that_fails_at_execution_leaves_state_as_it_was(net):
    model = Model(id="acme/raced", weights_sha256=NEW_WEIGHTS, price_per_token=7,
                  context_length=4096, validation_threshold="0.2", top_k=5,
                  serving_dtype=DTYPE)
    first = proposal_id(submit(net, net.developer, packed(RegisterModel(model=model))))
    second = proposal_id(submit(net, net.parts[0], param("inference", "top_k", 7),
                                packed(RegisterModel(model=model))))
    net.block([vote(p, pid, VOTE_OPTION_YES) for p in net.parts for pid in (first, second)])
    before = net.balance(net.parts[0])
    while net.height < proposal(net, second).voting_end_height:
        net.block([])
    assert proposal(net, first).status == PROPOSAL_STATUS_PASSED
    failed = proposal(net, second)
    assert failed.status == PROPOSAL_STATUS_FAILED
    assert "content 1" in failed.result and "already used" in failed.result
    assert params(net, "inference")["top_k"] == 5  # content 0 was rolled back with it
    assert failed.deposits_refunded and net.balance(net.parts[0]) == before + MIN_DEPOSIT


def test_governance_retunes_a_models_thresholds_and_references_but_never_its_dtype(net):
    (current,) = net.query("Models", q.QueryModelsRequest()).models
    retuned = Model()
    retuned.CopyFrom(current)
    retuned.reference_distance_micro, retuned.evidence_bet_ppm = 250, 500_000
    retuned.validation_threshold = "0.0005"
    # The sampling rule too, and the violation bet with it: a rule forgiving one violation
    # (a wider calibration, say) is a rule a cheat can hide in, so the bet weighs them.
    retuned.max_rule_violations, retuned.rule_tolerance_micro = 1, 2_000
    retuned.reference_violations_ppm, retuned.violation_bet_ppm = 673, 50_000
    pid = proposal_id(submit(net, net.developer, packed(UpdateModel(model=retuned))))
    assert run_vote(net, pid, [VOTE_OPTION_YES] * 3).status == PROPOSAL_STATUS_PASSED
    assert net.query("Models", q.QueryModelsRequest()).models == [retuned]
    halved = Model()
    halved.CopyFrom(retuned)
    halved.serving_dtype = "bfloat16"
    refused = submit(net, net.developer, packed(UpdateModel(model=halved)))
    assert refused.code != 0 and "keeps the serving dtype float32" in refused.log
    assert net.query("Models", q.QueryModelsRequest()).models == [retuned]
    refused = submit(net, net.developer, packed(UpdateModel(model=Model(
        id=MODEL_ID, weights_sha256=WEIGHTS, price_per_token=1, context_length=1, top_k=1,
        validation_threshold="0.1", serving_dtype=DTYPE, evidence_bet_ppm=1_000_000))))
    assert refused.code != 0 and "evidence_bet_ppm" in refused.log
    beyond = Model()
    beyond.CopyFrom(retuned)
    beyond.max_rule_violations = 1_025  # more violations than an output has positions
    refused = submit(net, net.developer, packed(UpdateModel(model=beyond)))
    assert refused.code != 0 and "max_rule_violations" in refused.log
    assert net.query("Models", q.QueryModelsRequest()).models == [retuned]


def test_a_software_upgrade_plan_is_recorded_for_operators(net):
    plan = SoftwareUpgrade(name="v2", height=net.height + 100, info="release notes")
    pid = proposal_id(submit(net, net.developer, packed(plan)))
    assert run_vote(net, pid, [VOTE_OPTION_YES] * 3).status == PROPOSAL_STATUS_PASSED
    recorded = net.query("UpgradePlan", q.QueryUpgradePlanRequest()).plan
    assert (recorded.name, recorded.height, recorded.proposal_id) == ("v2", plan.height, pid)
    stale = submit(net, net.developer, packed(SoftwareUpgrade(name="v0", height=1)))
    assert stale.code == 3 and "not after the current height" in stale.log
