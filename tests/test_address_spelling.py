"""Other spellings of an account's address, through signed txs in CheckTx and FinalizeBlock and
through genesis. bech32 also takes the all-upper-case form, so a chain that kept an address
string as given would hold two accounts for one key, and settlement, which re-encodes
addresses, would miss the one a lazy member earned under. Every place an address enters
refuses any spelling but the canonical one instead (docs/design.md §2.3): a lazy member's work
coins burn at settlement whatever spelling it tried."""

import json

import pytest
from chain_client import send_msg
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from inference_actors import Actor, finish_msg, seal_of, start_msg, validation_msg
from inference_net import T0, Net

from chain.app import Application
from chain.auth import address
from chain.errors import ChainError
from chain.inference import payload
from chain.query import QueryError
from chain.store import Store
from chain.validation.sampling import seed_hash
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.epochs_pb2 import MsgPocValidation
from inferchain_pb.inference.v1.gov_pb2 import MsgDeposit, MsgVote
from inferchain_pb.inference.v1.inference_pb2 import MsgGrantAllowance
from inferchain_pb.inference.v1.validation_pb2 import MsgClaimRewards, MsgCommitSeed

EPOCH, REVEAL = 10, 8
PASS = 1_000


def spellings(addr: str) -> list[str]:
    """The all-upper-case form bech32 itself accepts, and a mixed-case one."""
    return [addr.upper(), addr[:9] + addr[9:].upper()]


def make_net(poc_window_blocks: int = 0) -> Net:
    """Three genesis members of epoch 0 (reputation 0: each checks every other's inference)."""
    return Net(3, expiration_blocks=50, weights=[100, 100, 100], extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": poc_window_blocks,
                              "poc_validation_window_blocks": 3}},
        "validation": {"params": {"validation_window_blocks": 4, "voting_period_blocks": 2,
                                  "opening_blocks": 1, "reveal_window_blocks": REVEAL,
                                  "canary_rate_ppm": 0}}})


def sequence(net: Net, actor: Actor) -> int:
    account = net.app.modules.auth.get_account(net.app.store.begin_block(),
                                               address.decode(actor.address))
    return account.sequence if account else 0


def refused(net: Net, actor: Actor, *messages) -> None:
    """A tx CheckTx refuses with code 7 (invalid address) and that fails with it in a block
    too; the actor's next sequence is the chain's again."""
    raw = actor.tx(*messages)
    checked = net.app.check_tx(abci.RequestCheckTx(tx=raw))
    result = net.one(raw)
    assert (checked.codespace, checked.code) == ("sdk", 7), checked.log
    assert (result.codespace, result.code) == ("sdk", 7), result.log
    assert "invalid address" in result.log
    actor.sequence = sequence(net, actor)


def registered(net: Net, addr: str) -> bool:
    return any(p.address == addr for p in net.app.modules.inference.participants(
        net.app.store.begin_block()))


def test_every_message_refuses_an_address_spelled_otherwise():
    """A newcomer registers, sends, deposits and votes under other spellings of its address;
    members commit, claim and check proofs of compute under them, or are named by them as a
    proof's owner, a recipient, a transfer agent, a developer or an executor. Every tx is
    refused, in CheckTx and in a block, and nobody is registered, paid or escrowed."""
    net = make_net(poc_window_blocks=2)
    newcomer, member, other = net.developer, *net.parts[:2]
    net.block([])  # epoch 0's PoC window ends at height 2; its checks are open from 3
    for spelling in spellings(other.address):
        refused(net, member, MsgPocValidation(creator=member.address, epoch=0,
                                              participant=spelling, passed=True))
    member_balance = net.balance(member)
    for spelling in spellings(newcomer.address):
        message = newcomer.register()
        message.creator = spelling
        refused(net, newcomer, message)
        refused(net, newcomer, send_msg(spelling, member.address, 1))
        refused(net, newcomer, MsgDeposit(depositor=spelling, proposal_id=1, amount=1))
        refused(net, newcomer, MsgVote(voter=spelling, proposal_id=1, option=1))
    assert not registered(net, newcomer.address)
    assert sorted(p.address for p in net.app.modules.inference.participants(
        net.app.store.begin_block())) == sorted(p.address for p in net.parts)

    for spelling in spellings(member.address):
        refused(net, member, MsgCommitSeed(creator=spelling, epoch=1, seed_hash=b"s" * 32))
        refused(net, member, MsgClaimRewards(creator=spelling, epoch=0, seed=b"s" * 32))
        refused(net, newcomer, send_msg(newcomer.address, spelling, 1))
        refused(net, newcomer, MsgGrantAllowance(creator=newcomer.address,
                                                 transfer_agent=spelling, limit=1_000))
    assert net.balance(member) == member_balance  # nothing sent, no fee under another name
    # A start naming the developer or the drawn executor otherwise: no escrow, no inference.
    for field, code in (("developer", ("sdk", 7)), ("executor", ("inference", 10))):
        agent, executor = net.serving("spelled", newcomer)
        start = start_msg(agent, newcomer, "spelled", executor.address, net.height,
                          T0 + net.height, [1, 2, 3, 4], max_tokens=8)
        setattr(start, field, getattr(start, field).upper())
        start.ta_signature = agent.node_key.sign(payload.start_payload_of(start)).signature
        raw = agent.tx(start)
        checked = net.app.check_tx(abci.RequestCheckTx(tx=raw))
        result = net.one(raw)
        assert (checked.codespace, checked.code) == (result.codespace, result.code) == code
        assert getattr(start, field) in result.log
        assert net.account(newcomer).escrow == 0
    with pytest.raises(QueryError, match="not found"):
        net.inference("spelled")


@pytest.mark.parametrize("section", ["balances", "participants", "reputations"])
def test_genesis_refuses_an_address_spelled_otherwise(section: str):
    actor = Actor.new(7, 0)
    upper = actor.address.upper()
    entry = {"balances": {"bank": {"balances": [{"address": upper, "coins": [
                 {"denom": "ninfer", "amount": "5"}]}]}},
             "participants": {"inference": {"participants": [{
                 "address": upper, "url": "http://127.0.0.1:1",
                 "node_pubkey": bytes(actor.node_key.verify_key).hex(), "weight": 1,
                 "models": []}]}},
             "reputations": {"validation": {"reputations": [
                 {"address": upper, "reputation_ppm": 5}]}}}[section]
    app = Application(Store.memory())
    with pytest.raises(ChainError, match="invalid address"):
        app.init_chain(abci.RequestInitChain(chain_id="inferchain-test", initial_height=1,
                                             app_state_bytes=json.dumps(entry).encode()))


def test_a_lazy_members_work_coins_burn_whatever_spelling_it_tries():
    """A genesis member executes its share of epoch 0, checks nothing, and tries to commit,
    seal and open a report and claim under other spellings of its address: each is refused
    (the report's seal in the window, its opening after), it is judged
    lazy under its one address, and settlement burns every work coin it earned and mints it
    nothing, while the honest members are paid."""
    net = make_net()
    *honest, lazy = net.parts
    for spelling in spellings(lazy.address):
        refused(net, lazy, MsgCommitSeed(creator=spelling, epoch=0,
                                         seed_hash=seed_hash(b"l" * 32)))
    commits = net.block([a.tx(MsgCommitSeed(creator=a.address, epoch=0,
                                            seed_hash=seed_hash(bytes([i]) * 32)))
                         for i, a in enumerate(net.parts)])
    assert all(r.code == 0 for r in commits)
    ids = [i for i in (f"work-{n}" for n in range(200)) if net.serving(i)[1] is lazy][:2] + \
        [next(i for i in (f"h-{n}" for n in range(200)) if net.serving(i)[1] is honest[0])]
    txs = []
    for inference_id in ids:
        agent, executor, start = net.start(inference_id, max_tokens=8)
        txs += [agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))]
    assert all(r.code == 0 for r in net.block(txs))
    inferences = [net.inference(i) for i in ids]
    spelled = []
    for spelling in spellings(lazy.address):
        report = validation_msg(lazy, inferences[2], PASS)
        report.creator = spelling
        spelled.append(report)
        refused(net, lazy, seal_of(report))
    reports = net.report([(c, validation_msg(c, inference, PASS)) for inference in inferences
                          for c in honest if c.address != inference.executor])
    assert all(r.code == 0 for r in reports)
    for report in spelled:
        refused(net, lazy, report)

    while net.height < 1 + EPOCH:
        net.block([])
    for spelling in spellings(lazy.address):
        refused(net, lazy, MsgClaimRewards(creator=spelling, epoch=0, seed=bytes([2]) * 32))
    claims = net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=0, seed=bytes([i]) * 32))
                        for i, a in enumerate(net.parts)])
    assert all(r.code == 0 for r in claims)
    before, earned = net.balance(lazy), net.account(lazy).work_balance  # checks closed
    assert earned > 0
    while net.height < EPOCH + REVEAL:
        net.block([])
    record = net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
        address=lazy.address, epoch=0)).record
    assert record.settled and record.lazy and record.missed > 0 and record.done == 0
    settled = net.query("EpochSettlement", q.QueryEpochSettlementRequest(epoch=0)).settlement
    assert [r.address for r in settled.rewards] == sorted(a.address for a in net.parts)
    rewards = {r.address: r for r in settled.rewards}
    assert not rewards[lazy.address].paid and rewards[lazy.address].reward_coins == 0
    assert rewards[lazy.address].work_coins == earned == settled.work_burned
    assert net.balance(lazy) == before and net.account(lazy).work_balance == 0
    assert all(rewards[a.address].paid and rewards[a.address].reward_coins > 0
               for a in honest)
    net.assert_conserved()
