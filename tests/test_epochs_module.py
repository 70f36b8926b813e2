"""The epochs module through real signed transactions, driven in-process block by block:
epoch stages, proof of compute (real nonces of the tiny PoC transformer, real verification),
weights and the validator powers they set, and settlement with an exact account of every
coin (docs/design.md §7)."""

import hashlib
from fractions import Fraction

import pytest
from coin_ledger import Ledger
from inference_actors import Actor, finish_msg, seal_of, validation_msg
from inference_net import Net
from nacl.signing import SigningKey

from chain.epochs.params import EpochsParams
from chain.epochs.settlement import emission, split_by_weight
from chain.epochs.weights import capped_weights
from chain.errors import InvalidRequest
from chain.inference.payload import consensus_key_payload
from chain.validation.sampling import CheckShares, seed_hash
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.epochs_pb2 import (
    INFERENCE,
    POC,
    POC_VALIDATION,
    MsgPocValidation,
    MsgSubmitPoc,
)
from inferchain_pb.inference.v1.epochs_pb2 import PocNonce as ChainNonce
from inferchain_pb.inference.v1.inference_pb2 import (
    INVALIDATED,
    MsgUpdateParticipant,
    MsgWithdrawParticipant,
)
from inferchain_pb.inference.v1.validation_pb2 import MsgClaimRewards, MsgCommitSeed
from mlnode.poc import PocModel, compute, poc_seed, verify
from mlnode.types import PocModelSpec

EPOCH, POC_WINDOW, POC_CHECKS = 30, 10, 8
DEFAULTS = EpochsParams()
SPEC = PocModelSpec(hidden=DEFAULTS.poc_hidden, layers=DEFAULTS.poc_layers,
                    heads=DEFAULTS.poc_heads, ffn=DEFAULTS.poc_ffn, seq_len=DEFAULTS.poc_seq_len)
TARGET = DEFAULTS.poc_target_distance_micro / 1e6
FAIL = 3_000_000


def poc_net(participants: int = 3, **epochs: int) -> Net:
    return Net(participants, expiration_blocks=50, extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": POC_WINDOW,
                              "poc_validation_window_blocks": POC_CHECKS, **epochs}},
        "validation": {"params": {"validation_window_blocks": 4, "voting_period_blocks": 2,
                                  "opening_blocks": 1, "reveal_window_blocks": 8,
                                  "canary_rate_ppm": 0}}})


def to_height(net: Net, height: int) -> None:
    while net.height < height:
        net.block([])


def epoch_info(net: Net):
    return net.query("Epoch", q.QueryEpochRequest()).current


def nonces_found(block_hash: bytes, actor: Actor, count: int) -> list[ChainNonce]:
    model = PocModel(SPEC, poc_seed(block_hash, actor.address))
    return [ChainNonce(nonce=n.nonce, distance=n.distance)
            for n in compute(model, range(count), TARGET)]


def submit(net: Net, actor: Actor, epoch: int, nonces: list[ChainNonce]):
    return net.one(actor.tx(MsgSubmitPoc(creator=actor.address, epoch=epoch, nonces=nonces),
                            gas_limit=2_000_000))


def check_all(net: Net, epoch: int, checkers: list[Actor]) -> dict[str, bool]:
    """Every checker re-computes every other submission's sample, as the API nodes do."""
    current = epoch_info(net)
    outcome = {}
    for submission in net.query("PocSubmissions",
                                q.QueryPocSubmissionsRequest(epoch=epoch)).submissions:
        claimed = net.query("PocNonces", q.QueryPocNoncesRequest(
            epoch=epoch, participant=submission.participant)).nonces
        model = PocModel(SPEC, poc_seed(current.poc_block_hash, submission.participant))
        report = verify(model, claimed, TARGET, DEFAULTS.poc_sample_size,
                        current.poc_sample_seed, DEFAULTS.poc_tolerance_nano / 1e9)
        outcome[submission.participant] = report.passed
        for checker in checkers:
            if checker.address != submission.participant:
                result = net.one(checker.tx(MsgPocValidation(
                    creator=checker.address, epoch=epoch, participant=submission.participant,
                    passed=report.passed, checked=len(report.checks), failed=report.failed)))
                assert result.code == 0, result.log
    return outcome


def name_consensus_key(net: Net, actor: Actor) -> bytes:
    """Registers a (test-made) CometBFT validator key for the participant, signed by it."""
    signer = SigningKey(hashlib.sha256(actor.address.encode()).digest())
    pubkey = bytes(signer.verify_key)
    registered = actor.register()
    result = net.one(actor.tx(MsgUpdateParticipant(
        creator=actor.address, url=registered.url, node_pubkey=registered.node_pubkey,
        models=registered.models, consensus_pubkey=pubkey,
        consensus_key_signature=signer.sign(consensus_key_payload(
            "inferchain-test", actor.address, pubkey)).signature)))
    assert result.code == 0, result.log
    return pubkey


def weight(net: Net, actor: Actor) -> int:
    return net.participant_record(actor).weight


def test_weights_follow_the_compute_done_and_fabricated_nonces_get_none():
    net = poc_net(max_weight_share_ppm=1_000_000)
    full, half, forger = net.parts
    to_height(net, 1 + EPOCH)  # epoch 1: the participants are members with genesis weights
    current = epoch_info(net)
    assert current.stage == POC and current.poc_end_height == EPOCH + POC_WINDOW
    found = {full.address: nonces_found(current.poc_block_hash, full, 8000),
             half.address: nonces_found(current.poc_block_hash, half, 4000)}
    for actor in (full, half):
        nonces = found[actor.address]
        for part in (nonces[:len(nonces) // 2], nonces[len(nonces) // 2:]):
            assert submit(net, actor, 1, part).code == 0
    made_up = [ChainNonce(nonce=n * 7919, distance=TARGET * 0.9) for n in range(200)]
    assert submit(net, forger, 1, made_up).code == 0
    validator_keys = {a.address: name_consensus_key(net, a) for a in net.parts}
    to_height(net, current.poc_end_height + 1)
    assert epoch_info(net).stage == POC_VALIDATION and epoch_info(net).poc_sample_seed
    outcome = check_all(net, 1, net.parts)
    assert outcome == {full.address: True, half.address: True, forger.address: False}
    to_height(net, current.poc_validation_end_height + 1)
    assert epoch_info(net).stage == INFERENCE
    assert all(w == 100 for w in map(lambda a: weight(net, a), net.parts))  # until epoch 2

    to_height(net, 1 + 2 * EPOCH)
    assert weight(net, full) == len(found[full.address])
    assert weight(net, half) == len(found[half.address])
    assert weight(net, forger) == 0
    assert 0.35 < weight(net, half) / weight(net, full) < 0.65
    members = net.query("Epoch", q.QueryEpochRequest(epoch=2)).members
    assert {m.address: m.weight for m in members.members} == {
        full.address: weight(net, full), half.address: weight(net, half)}
    # CometBFT's powers follow: the forger's validator is out.
    powers = {v.pubkey: v.power for v in net.query(
        "ConsensusValidators", q.QueryConsensusValidatorsRequest()).validators.validators}
    assert powers == {validator_keys[full.address]: weight(net, full),
                      validator_keys[half.address]: weight(net, half)}
    submissions = {s.participant: s for s in net.query(
        "PocSubmissions", q.QueryPocSubmissionsRequest(epoch=1)).submissions}
    assert not submissions[forger.address].accepted and submissions[forger.address].settled
    assert submissions[full.address].accepted and len(submissions[full.address].verdicts) == 2
    assert all(forger.address not in net.draw(f"after-{i}") for i in range(20))
    # The nonces are pruned once the weights are set; the summaries stay.
    assert not net.query("PocNonces", q.QueryPocNoncesRequest(
        epoch=1, participant=full.address)).nonces


def test_bad_poc_messages_are_refused_and_change_nothing():
    net = poc_net()
    a, b, c = net.parts
    outsider = net.developer
    to_height(net, 1 + EPOCH)
    current = epoch_info(net)
    nonces = nonces_found(current.poc_block_hash, a, 400)
    assert nonces
    cases = [
        (outsider, MsgSubmitPoc(creator=outsider.address, epoch=1, nonces=nonces), 2),
        (a, MsgSubmitPoc(creator=a.address, epoch=2, nonces=nonces), 3),
        (a, MsgSubmitPoc(creator=a.address, epoch=1, nonces=[]), 9),
        (a, MsgSubmitPoc(creator=a.address, epoch=1, nonces=[
            ChainNonce(nonce=1, distance=TARGET + 0.01)]), 5),
        (a, MsgSubmitPoc(creator=a.address, epoch=1, nonces=[
            ChainNonce(nonce=1, distance=float("nan"))]), 5),
        (a, MsgSubmitPoc(creator=a.address, epoch=1, nonces=[nonces[0], nonces[0]]), 4),
    ]
    for sender, msg, code in cases:
        result = net.one(sender.tx(msg))
        assert (result.codespace, result.code) == ("epochs", code), result.log
    assert not net.query("PocSubmissions", q.QueryPocSubmissionsRequest(epoch=1)).submissions
    assert submit(net, a, 1, nonces).code == 0
    again = submit(net, a, 1, nonces[:1])
    assert (again.codespace, again.code) == ("epochs", 4)
    early = net.one(b.tx(MsgPocValidation(creator=b.address, epoch=1, participant=a.address,
                                          passed=True, checked=20)))
    assert (early.codespace, early.code) == ("epochs", 3)
    to_height(net, current.poc_end_height + 1)
    late = submit(net, b, 1, nonces_found(current.poc_block_hash, b, 400))
    assert (late.codespace, late.code) == ("epochs", 3)
    verdict = MsgPocValidation(creator=b.address, epoch=1, participant=a.address,
                               passed=True, checked=20)
    for sender, msg, code in [
        (outsider, MsgPocValidation(creator=outsider.address, epoch=1,
                                    participant=a.address, passed=True, checked=20), 6),
        (a, MsgPocValidation(creator=a.address, epoch=1, participant=a.address,
                             passed=True, checked=20), 6),
        (b, MsgPocValidation(creator=b.address, epoch=1, participant=c.address,
                             passed=True, checked=20), 7),
        (b, MsgPocValidation(creator=b.address, epoch=1, participant=a.address,
                             passed=True, checked=2, failed=3), 9),
    ]:
        result = net.one(sender.tx(msg))
        assert (result.codespace, result.code) == ("epochs", code), result.log
    assert net.one(b.tx(verdict)).code == 0
    duplicate = net.one(b.tx(verdict))
    assert (duplicate.codespace, duplicate.code) == ("epochs", 8)
    submission, = net.query("PocSubmissions", q.QueryPocSubmissionsRequest(
        epoch=1)).submissions
    assert submission.nonces == len(nonces) and len(submission.verdicts) == 1
    # c never checked a's submission: lazy for epoch 1 (the reveal is judged later).
    to_height(net, 1 + 2 * EPOCH + 7)
    c_record = net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
        address=c.address, epoch=1)).record
    assert c_record.missed_poc_checks == 1 and c_record.lazy


def test_no_participant_weighs_more_than_the_cap():
    assert capped_weights({"a": 900, "b": 50, "c": 50}, 250_000) == {"a": 250, "b": 50,
                                                                      "c": 50}
    assert capped_weights({"a": 10, "b": 10}, 1_000_000) == {"a": 10, "b": 10}
    assert capped_weights({"a": 3}, 250_000) == {"a": 1}


def test_an_epoch_without_poc_keeps_the_weights():
    net = poc_net()
    to_height(net, 1 + 2 * EPOCH)
    assert [weight(net, a) for a in net.parts] == [100, 100, 100]


# Settlement: several epochs, every coin accounted for at every height.

# An epoch holds a commit, a claim and 4 inferences finished together in one block, then
# checked together: the reports sealed, and opened after the window's sealing, then the
# ballots sealed, and opened after the vote's (11 blocks in all).
S_EPOCH, S_REVEAL = 20, 9
SHARE_PPM = 100_000
INITIAL, DECAY_PPM = 1_000_000_007, 50_000


def settle_net() -> Net:
    return Net(5, expiration_blocks=50, weights=[100, 200, 300, 100, 300], extra_state={
        "epochs": {"params": {"epoch_length_blocks": S_EPOCH, "poc_window_blocks": 0,
                              "initial_epoch_reward": INITIAL, "reward_decay_ppm": DECAY_PPM,
                              "validator_fee_share_ppm": SHARE_PPM}},
        "validation": {"params": {"validation_window_blocks": 3, "voting_period_blocks": 3,
                                  "opening_blocks": 1, "reveal_window_blocks": S_REVEAL,
                                  "canary_rate_ppm": 0,
                                  "invalid_after_consecutive": 1}}})


def seed_assigns(net: Net, actor: Actor, inference_id: str) -> bool:
    """Whether the checkers' seed of the task's epoch assigns ``actor`` the inference."""
    found = net.query("ValidationTask", q.QueryValidationTaskRequest(
        inference_id=inference_id)).task
    members = net.query("Epoch", q.QueryEpochRequest(epoch=found.epoch)).members
    return CheckShares(members).owes(bytes([found.epoch]) * 32, found, actor.address)


def test_settlement_pays_weight_and_work_and_withholds_from_the_invalid_and_the_lazy():
    net = settle_net()
    ledger = Ledger(net, S_EPOCH)
    honest, lazy, cheat = net.parts[:3], net.parts[3], net.parts[4]
    checkers = [*honest, cheat]  # the cheat executes badly but checks honestly
    def claim(epoch: int) -> None:
        claims = ledger.block([a.tx(MsgClaimRewards(
            creator=a.address, epoch=epoch, seed=bytes([epoch]) * 32)) for a in checkers])
        assert all(r.code == 0 for r in claims), [r.log for r in claims]

    def task(inference_id: str):
        return net.query("ValidationTask", q.QueryValidationTaskRequest(
            inference_id=inference_id)).task

    def sealed_and_opened(reports: list, opens_after) -> None:
        """Seals the reports in one block, then opens them together once the block is past
        ``opens_after`` (the tasks') for every one of them; every block audited."""
        results = ledger.block([a.tx(seal_of(report)) for a, report in reports])
        assert all(r.code == 0 for r in results), [r.log for r in results]
        opens_at = max((opens_after(task(report.inference_id)) + 1 for _, report in reports),
                       default=net.height + 1)
        while net.height + 1 < opens_at:
            ledger.block([])
        results = ledger.block([a.tx(report) for a, report in reports])
        assert all(r.code == 0 for r in results), [r.log for r in results]

    for epoch in range(3):
        start = 1 + epoch * S_EPOCH
        while net.height < start - 2:  # each seed is committed before its epoch begins
            ledger.block([])
        results = ledger.block([a.tx(MsgCommitSeed(
            creator=a.address, epoch=epoch, seed_hash=seed_hash(bytes([epoch]) * 32)))
            for a in checkers])
        assert all(r.code == 0 for r in results), [r.log for r in results]
        if epoch:
            claim(epoch - 1)
        txs, executors = [], {}
        for i in range(4):
            inference_id = f"e{epoch}-{i}"
            agent, executor, start_tx = net.start(inference_id, max_tokens=8)
            txs += [agent.tx(start_tx), executor.tx(finish_msg(executor, start_tx, [7, 8, 9]))]
            executors[inference_id] = executor
        results = ledger.block(txs)
        assert all(r.code == 0 for r in results), [r.log for r in results]
        inferences = {i: net.inference(i) for i in executors}
        # Each checker reports what its seed assigned it, then the drawn voters, if any.
        reporters = {i: [a for a in checkers if a is not executors[i] and
                         seed_assigns(net, a, inferences[i].id)] for i in executors}
        sealed_and_opened([(a, validation_msg(a, inferences[i], distance_micro=FAIL
                                              if executors[i] is cheat else 1_000))
                           for i in executors for a in reporters[i]],
                          lambda found: found.deadline)
        ballots = []
        for i in executors:
            voters = task(inferences[i].id).voters
            ballots += [(a, validation_msg(a, inferences[i], distance_micro=FAIL))
                        for a in checkers if a.address in voters and a not in reporters[i]]
        if ballots:
            sealed_and_opened(ballots, lambda found: found.vote_deadline)
        assert net.height < start + S_EPOCH - 1, "the checks must fall in the epoch"
    while net.height < 3 * S_EPOCH:
        ledger.block([])
    claim(2)
    while net.height < 3 * S_EPOCH + S_REVEAL:
        ledger.block([])
    settlements = [net.query("EpochSettlement", q.QueryEpochSettlementRequest(
        epoch=epoch)).settlement for epoch in range(3)]

    weights = {a.address: w for a, w in zip(net.parts, [100, 200, 300, 100, 300],
                                            strict=True)}
    for epoch, settlement in enumerate(settlements):
        scheduled = INITIAL * Fraction(1_000_000 - DECAY_PPM, 1_000_000) ** epoch
        assert settlement.emission == int(scheduled)
        rewards = {r.address: r for r in settlement.rewards}
        shares = split_by_weight(settlement.emission, weights)
        for actor in honest:
            paid = rewards[actor.address]
            assert paid.paid and paid.reward_coins == shares[actor.address]
        assert not rewards[lazy.address].paid and rewards[lazy.address].reward_coins == 0
        assert "claim" in rewards[lazy.address].reason
        assert settlement.minted == sum(shares[a.address] for a in honest) + (
            shares[cheat.address] if rewards[cheat.address].paid else 0)
        assert settlement.withheld == settlement.emission - settlement.minted
        fees = sum(net.inference(f"e{epoch}-{i}").cost for i in range(4)
                   if net.inference(f"e{epoch}-{i}").status != INVALIDATED)
        assert settlement.work_paid + settlement.work_burned == fees
    # Honest shares follow weight exactly (the remainder goes one coin at a time).
    first = {r.address: r.reward_coins for r in settlements[0].rewards}
    assert abs(first[honest[1].address] - 2 * first[honest[0].address]) <= 2
    assert abs(first[honest[2].address] - 3 * first[honest[0].address]) <= 3
    cheated = [e for e, s in enumerate(settlements)
               if any(net.inference(f"e{e}-{i}").executor == cheat.address for i in range(4))]
    assert cheated, "the draw gave the cheat (30% of the weight) no inference in 12"
    for e in cheated:
        cheat_reward = next(r for r in settlements[e].rewards if r.address == cheat.address)
        assert not cheat_reward.paid and "INVALID" in cheat_reward.reason
    assert ledger.settled == {0, 1, 2}


def test_the_emission_schedule_decays_geometrically_in_exact_integers():
    params = EpochsParams(initial_epoch_reward=10**12, reward_decay_ppm=2_000)
    assert emission(params, 0) == 10**12
    assert emission(params, 1) == 998_000_000_000
    assert emission(params, 1000) == 10**12 * 998**1000 // 1000**1000
    assert split_by_weight(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert sum(split_by_weight(1_000_000_007, {"a": 3, "b": 7, "c": 11}).values()) \
        == 1_000_000_007


@pytest.mark.parametrize("bad", [{"poc_window_blocks": 25, "poc_validation_window_blocks": 5},
                                 {"poc_hidden": 130}, {"max_weight_share_ppm": 0},
                                 {"reward_decay_ppm": 1_000_001}])
def test_inconsistent_epochs_params_are_refused(bad):
    with pytest.raises(InvalidRequest, match="epochs param"):
        EpochsParams(epoch_length_blocks=30, **bad)



def test_a_participant_that_withdrew_after_proving_has_no_weight_from_the_next_boundary():
    net = poc_net(max_weight_share_ppm=1_000_000)
    stayer, leaver, other = net.parts
    to_height(net, 1 + EPOCH)
    current = epoch_info(net)
    found = {a.address: nonces_found(current.poc_block_hash, a, 4000) for a in (stayer, leaver)}
    for actor in (stayer, leaver):
        assert submit(net, actor, 1, found[actor.address]).code == 0
    keys = {a.address: name_consensus_key(net, a) for a in net.parts}
    to_height(net, current.poc_end_height + 1)
    assert check_all(net, 1, net.parts) == {stayer.address: True, leaver.address: True}
    assert net.one(leaver.tx(MsgWithdrawParticipant(creator=leaver.address))).code == 0
    assert weight(net, leaver) == 100  # the epoch's weights stay until its end

    to_height(net, 1 + 2 * EPOCH)
    assert weight(net, leaver) == 0 and weight(net, stayer) == len(found[stayer.address])
    submissions = {s.participant: s for s in net.query(
        "PocSubmissions", q.QueryPocSubmissionsRequest(epoch=1)).submissions}
    assert submissions[leaver.address].accepted and submissions[leaver.address].weight == 0
    members = net.query("Epoch", q.QueryEpochRequest(epoch=2)).members
    # Its nonces are no part of the total either: the stayer holds all of the weight.
    assert {m.address: m.weight for m in members.members} == {
        stayer.address: len(found[stayer.address])}
    powers = {v.pubkey: v.power for v in net.query(
        "ConsensusValidators", q.QueryConsensusValidatorsRequest()).validators.validators}
    assert powers == {keys[stayer.address]: len(found[stayer.address])}
    late = submit(net, leaver, 2, nonces_found(epoch_info(net).poc_block_hash, leaver, 500))
    assert late.code == 2 and "not an active participant" in late.log
    assert all(leaver.address not in net.draw(f"gone-{i}") for i in range(20))


def test_a_withdrawn_participant_loses_its_weight_even_where_weights_stay():
    net = poc_net(poc_window_blocks=0, poc_validation_window_blocks=0)
    a = net.parts[0]
    assert net.one(a.tx(MsgWithdrawParticipant(creator=a.address))).code == 0
    to_height(net, 1 + EPOCH)
    assert [weight(net, p) for p in net.parts] == [0, 100, 100]
