"""CometBFT voting power follows epoch weight (docs/design.md §7.4), in-process on the real
Application with real signed txs: FinalizeBlock's validator updates, block by block."""

import hashlib
import json
import logging

import pytest
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from cosmpy.protos.tendermint.crypto.keys_pb2 import PublicKey
from inference_actors import MODEL_ID, WEIGHTS, Actor, genesis_models
from inference_net import Net
from nacl.signing import SigningKey
from proposals import VALIDATOR_SECRET

from apinode.config import ApiNodeConfig
from chain import vrf
from chain.app import Application
from chain.epochs.beacon import consensus_address
from chain.epochs.validator_set import MAX_TOTAL_POWER, scaled
from chain.errors import InvalidRequest
from chain.inference.payload import consensus_key_payload
from chain.store import Store
from genesis.comet_keys import Ed25519Key, write_priv_validator_key
from genesis.template import TemplateError, parse_template
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    MsgRegisterParticipant,
    MsgUpdateParticipant,
    MsgWithdrawParticipant,
)

EPOCH = 6
EPOCHS = {"epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0}}}


CHAIN_ID = "inferchain-test"
SIGNERS: dict[bytes, SigningKey] = {}


def key(name: str) -> bytes:
    """The public half of a named CometBFT validator key (its signer kept to sign with)."""
    signer = SigningKey(hashlib.sha256(name.encode()).digest())
    SIGNERS[bytes(signer.verify_key)] = signer
    return bytes(signer.verify_key)


def sign_key(msg: MsgRegisterParticipant | MsgUpdateParticipant) -> None:
    """The consensus key's proof of possession, where the test holds the key."""
    signer = SIGNERS.get(bytes(msg.consensus_pubkey))
    if signer is not None:
        msg.consensus_key_signature = signer.sign(consensus_key_payload(
            CHAIN_ID, msg.creator, msg.consensus_pubkey)).signature


# The first is the in-process proposer's (tests/proposals.py): its blocks carry its proofs.
GENESIS_KEYS = [vrf.public_key(VALIDATOR_SECRET), key("genesis-b")]


def validator(pubkey: bytes, power: int) -> abci.ValidatorUpdate:
    return abci.ValidatorUpdate(pub_key=PublicKey(ed25519=pubkey), power=power)


@pytest.fixture
def genesis_validators(monkeypatch):
    """InitChain gets these validators, as CometBFT passes genesis.json's."""
    validators: list[abci.ValidatorUpdate] = [validator(k, 10) for k in GENESIS_KEYS]
    original = Application.init_chain

    def init_chain(self, req):
        del req.validators[:]
        req.validators.extend(validators)
        return original(self, req)

    monkeypatch.setattr(Application, "init_chain", init_chain)
    return validators


def recording(net: Net) -> dict[int, list[tuple[bytes, int]]]:
    """From now on, each height's validator updates, as (pubkey, power)."""
    seen: dict[int, list[tuple[bytes, int]]] = {}
    finalize = net.app.finalize_block

    def wrapped(req):
        response = finalize(req)
        seen[req.height] = [(u.pub_key.ed25519, u.power) for u in response.validator_updates]
        return response

    net.app.finalize_block = wrapped
    return seen


def to_height(net: Net, height: int) -> None:
    while net.height < height:
        net.block([])


def consensus(net: Net):
    return net.query("ConsensusValidators",
                     q.QueryConsensusValidatorsRequest()).validators


def powers(net: Net) -> dict[bytes, tuple[int, str]]:
    return {v.pubkey: (v.power, v.participant) for v in consensus(net).validators}


def update_key(actor: Actor, consensus_pubkey: bytes) -> MsgUpdateParticipant:
    registered = actor.register()
    msg = MsgUpdateParticipant(creator=actor.address, url=registered.url,
                               node_pubkey=registered.node_pubkey, models=registered.models,
                               consensus_pubkey=consensus_pubkey)
    sign_key(msg)
    return msg


def genesis_participant(actor: Actor, weight: int, consensus_pubkey: bytes) -> dict:
    return {"address": actor.address, "url": "http://127.0.0.1:1",
            "node_pubkey": bytes(actor.node_key.verify_key).hex(),
            "models": [{"model_id": MODEL_ID, "weights_sha256": WEIGHTS}],
            "weight": weight, "consensus_pubkey": consensus_pubkey.hex()}


def net_with_genesis_participants(entries: list[dict]) -> Net:
    return Net(0, extra_state={**EPOCHS, "inference": {
        "models": genesis_models(), "participants": entries}})


def test_genesis_validators_are_recorded(genesis_validators):
    net = Net(2, extra_state=EPOCHS)
    assert powers(net) == {k: (10, "") for k in GENESIS_KEYS}
    assert consensus(net).height == 0


def test_updates_only_at_epoch_boundaries_and_genesis_validators_leave(genesis_validators):
    net = Net(3, extra_state=EPOCHS)  # in genesis, genesis weight 100
    seen = recording(net)
    a, b, c = net.parts
    results = net.block([a.tx(update_key(a, key("a"))), b.tx(update_key(b, key("b")))])
    assert [r.code for r in results] == [0, 0], [r.log for r in results]
    assert net.participant_record(a).consensus_pubkey == key("a")
    assert net.participant_record(c).consensus_pubkey == b""

    boundary = 1 + EPOCH
    to_height(net, boundary)
    assert all(not seen[h] for h in range(2, boundary)), seen
    expected = sorted([(k, 0) for k in GENESIS_KEYS] + [(key("a"), 100), (key("b"), 100)])
    assert seen[boundary] == expected
    assert powers(net) == {key("a"): (100, a.address), key("b"): (100, b.address)}
    assert consensus(net).height == boundary

    # Epoch 1: c names a key, a leaves; the next boundary adds c and removes a, nothing else.
    results = net.block([c.tx(update_key(c, key("c"))), a.tx(MsgWithdrawParticipant(
        creator=a.address))])
    assert [r.code for r in results] == [0, 0], [r.log for r in results]
    # An update without a key keeps the one registered.
    b_update = update_key(b, b"")
    b_update.url = "http://127.0.0.1:2"
    assert net.one(b.tx(b_update)).code == 0
    assert net.participant_record(b).consensus_pubkey == key("b")
    to_height(net, 1 + 2 * EPOCH + 2)
    assert all(not seen[h] for h in range(boundary + 1, 1 + 2 * EPOCH)), seen
    assert seen[1 + 2 * EPOCH] == sorted([(key("a"), 0), (key("c"), 100)])
    assert not seen[2 + 2 * EPOCH]
    assert powers(net) == {key("b"): (100, b.address), key("c"): (100, c.address)}


def test_a_validator_the_chain_adds_proves_the_blocks_it_proposes(genesis_validators):
    """CometBFT lets a validator the chain added propose two blocks after the update: its
    key must by then verify its beacon proofs, and a key no set ever held must not."""
    net = Net(3, extra_state=EPOCHS)
    a = net.parts[0]
    assert net.one(a.tx(update_key(a, key("a")))).code == 0
    to_height(net, 1 + EPOCH)
    height, state = net.height + 1, net.app.store.begin_block()
    for name, expected in (("a", abci.ResponseProcessProposal.ACCEPT),
                           ("stranger", abci.ResponseProcessProposal.REJECT)):
        proof = net.app.modules.beacon.proposal_tx(state, CHAIN_ID, height,
                                                   hashlib.sha256(name.encode()).digest())
        assert net.app.process_proposal(abci.RequestProcessProposal(
            txs=[proof], height=height, proposer_address=consensus_address(key(name)))
        ).status == expected


def test_an_unchanged_set_gives_no_updates(genesis_validators, caplog):
    net = net_with_genesis_participants([
        genesis_participant(Actor.new(20, 2), 30, GENESIS_KEYS[0]),
        genesis_participant(Actor.new(21, 3), 70, GENESIS_KEYS[1])])
    seen = recording(net)
    with caplog.at_level(logging.INFO, logger="chain.epochs.validator_set"):
        to_height(net, 1 + 2 * EPOCH)
    assert seen[1 + EPOCH] == sorted([(GENESIS_KEYS[0], 30), (GENESIS_KEYS[1], 70)])
    assert not seen[1 + 2 * EPOCH]
    lines = [r.getMessage() for r in caplog.records]
    assert any("epoch 1: CometBFT validator set → 2 validators, total power 100" in line
               for line in lines), lines
    assert any(line.startswith("epoch 2:") and "changes: none" in line for line in lines), lines


def test_no_updates_when_nobody_qualifies(genesis_validators, caplog):
    # Participants without consensus keys, and one with a key but no weight.
    net = Net(2, extra_state={**EPOCHS, "inference": {
        "models": genesis_models(),
        "participants": [genesis_participant(Actor.new(20, 9), 0, key("zero"))]}})
    seen = recording(net)
    with caplog.at_level(logging.INFO, logger="chain.epochs.validator_set"):
        to_height(net, 1 + 2 * EPOCH + 1)
    assert not any(seen.values()), seen
    assert powers(net) == {k: (10, "") for k in GENESIS_KEYS}
    assert consensus(net).height == 0
    assert any("no active participant with a consensus key" in r.getMessage()
               for r in caplog.records)


def test_a_bad_consensus_key_is_refused_and_changes_nothing(genesis_validators):
    net = Net(1, extra_state=EPOCHS)
    part = net.parts[0]
    newcomer = net.developer
    before = net.app.store.app_hash
    msg = newcomer.register()
    msg.consensus_pubkey = bytes(31)
    refused = net.one(newcomer.tx(msg))
    assert (refused.codespace, refused.code) == ("inference", 15), refused.log
    assert "consensus_pubkey" in refused.log
    assert net.query("Participants", q.QueryParticipantsRequest()).participants[0].address \
        == part.address
    assert len(net.query("Participants", q.QueryParticipantsRequest()).participants) == 1

    results = net.block([part.tx(update_key(part, bytes(33))),
                         part.tx(update_key(part, key("p")[:31]))])
    assert [(r.codespace, r.code) for r in results] == [("inference", 15)] * 2
    assert net.participant_record(part).consensus_pubkey == b""
    assert net.app.store.app_hash != before  # fees and sequences moved, nothing else
    to_height(net, 1 + EPOCH)
    assert powers(net) == {k: (10, "") for k in GENESIS_KEYS}


def test_a_key_already_taken_is_refused(genesis_validators):
    net = Net(2, extra_state=EPOCHS)
    a, b = net.parts
    assert net.one(a.tx(update_key(a, key("shared")))).code == 0
    taken = net.one(b.tx(update_key(b, key("shared"))))
    assert (taken.codespace, taken.code) == ("inference", 15)
    assert a.address in taken.log
    assert net.participant_record(b).consensus_pubkey == b""
    # Its own key again is fine, and so is a newcomer with a key nobody has.
    assert net.one(a.tx(update_key(a, key("shared")))).code == 0
    newcomer = net.developer
    msg = newcomer.register()
    msg.consensus_pubkey = key("shared")
    sign_key(msg)
    assert net.one(newcomer.tx(msg)).code == 15
    msg.consensus_pubkey = key("newcomer")
    sign_key(msg)
    assert net.one(newcomer.tx(msg)).code == 0
    assert net.participant_record(newcomer).consensus_pubkey == key("newcomer")


def test_a_consensus_key_needs_its_own_signature_for_this_participant(genesis_validators):
    """Nobody can claim another operator's validator: the key must sign the registration,
    and a signature made for one participant does not serve another."""
    net = Net(2, extra_state=EPOCHS)
    a, b = net.parts
    unsigned = update_key(a, key("a"))
    unsigned.consensus_key_signature = b""
    forged = update_key(a, key("a"))
    forged.consensus_key_signature = SigningKey(bytes(32)).sign(consensus_key_payload(
        CHAIN_ID, a.address, key("a"))).signature
    replayed = update_key(b, key("a"))
    replayed.consensus_key_signature = update_key(a, key("a")).consensus_key_signature
    for sender, msg in [(a, unsigned), (a, forged), (b, replayed)]:
        refused = net.one(sender.tx(msg))
        assert (refused.codespace, refused.code) == ("inference", 15), refused.log
        assert "consensus_key_signature" in refused.log
    assert [net.participant_record(p).consensus_pubkey for p in (a, b)] == [b"", b""]
    assert net.one(a.tx(update_key(a, key("a")))).code == 0
    assert net.participant_record(a).consensus_pubkey == key("a")


def test_genesis_refuses_a_shared_or_malformed_consensus_key():
    for second in (key("one"), key("one")[:31]):
        app = Application(Store.memory())
        entries = [genesis_participant(Actor.new(20, 2), 5, key("one")),
                   genesis_participant(Actor.new(21, 3), 5, second)]
        with pytest.raises(InvalidRequest, match="consensus_pubkey"):
            app.init_chain(abci.RequestInitChain(
                chain_id="inferchain-test", initial_height=1, app_state_bytes=json.dumps({
                    "inference": {"models": genesis_models(), "participants": entries}
                }).encode()))


def test_powers_above_cometbfts_limit_are_scaled_down(genesis_validators):
    huge = 2**63
    net = net_with_genesis_participants([
        genesis_participant(Actor.new(20, 2), huge, key("big")),
        genesis_participant(Actor.new(21, 3), huge // 2, key("half")),
        genesis_participant(Actor.new(22, 4), 1, key("tiny"))])
    seen = recording(net)
    to_height(net, 1 + EPOCH)
    got = dict(seen[1 + EPOCH])
    assert got[GENESIS_KEYS[0]] == got[GENESIS_KEYS[1]] == 0
    assert got[key("tiny")] == 1
    assert sum(got.values()) <= MAX_TOTAL_POWER
    assert got[key("big")] - 2 * got[key("half")] in (0, 1)
    assert got[key("big")] > MAX_TOTAL_POWER // 2
    assert {k: p for k, (p, _) in powers(net).items()} == {
        k: p for k, p in got.items() if p}


def test_scaling_rule():
    assert scaled({b"a": 30, b"b": 70}) == {b"a": 30, b"b": 70}
    assert scaled({b"a": 30, b"b": 70}, limit=10) == {b"a": 2, b"b": 5}
    assert scaled({b"a": 1, b"b": 10**6}, limit=100) == {b"a": 1, b"b": 97}
    many = {bytes([i]): 1 for i in range(50)} | {b"z": 10**9}
    out = scaled(many, limit=1000)
    assert sum(out.values()) <= 1000 and min(out.values()) == 1


def test_template_and_api_node_config_carry_the_consensus_key(tmp_path):
    actor = Actor.new(20, 2)
    comet = Ed25519Key.generate()
    entry = genesis_participant(actor, 5, comet.public_key)
    base = {"chain_id": "c", "validators": [{"name": "val0", "power": 1}],
            "models": [{"id": MODEL_ID, "weights_sha256": WEIGHTS}]}
    template = parse_template({**base, "participants": [entry]})
    assert template.participants[0]["consensus_pubkey"] == comet.public_key.hex()
    with pytest.raises(TemplateError, match="consensus_pubkey"):
        parse_template({**base, "participants": [{**entry, "consensus_pubkey": "ab"}]})

    write_priv_validator_key(tmp_path, comet)
    config = ApiNodeConfig(home=tmp_path, chain_id="c",
                           consensus_key_file="config/priv_validator_key.json")
    assert bytes(config.consensus_key().verify_key) == comet.public_key
    assert ApiNodeConfig(home=tmp_path, chain_id="c").consensus_key() is None
