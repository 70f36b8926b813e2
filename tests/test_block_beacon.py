"""The block beacon (docs/design.md §2.7) through the app's ABCI methods: the proposer's proof
first in every proposal, the refusals of every other shape, and a value the proposer cannot
choose by choosing the block's txs."""

import hashlib

import pytest
from chain_client import send_msg
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.timestamp_pb2 import Timestamp
from inference_net import T0, Net
from proposals import MAX_TX_BYTES, VALIDATOR_ADDRESS, VALIDATOR_SECRET

from chain import vrf
from chain.app import Application
from chain.epochs import beacon

ACCEPT, REJECT = abci.ResponseProcessProposal.ACCEPT, abci.ResponseProcessProposal.REJECT
OTHER_SECRET = hashlib.sha256(b"another validator").digest()


@pytest.fixture
def net() -> Net:
    return Net(participants=2)


def proposal(app: Application, height: int, txs: list[bytes],
             proposer: bytes = VALIDATOR_ADDRESS) -> list[bytes]:
    return list(app.prepare_proposal(abci.RequestPrepareProposal(
        txs=txs, max_tx_bytes=MAX_TX_BYTES, height=height, time=Timestamp(seconds=T0 + height),
        proposer_address=proposer)).txs)


def verdict(app: Application, height: int, txs: list[bytes],
            proposer: bytes = VALIDATOR_ADDRESS) -> int:
    return app.process_proposal(abci.RequestProcessProposal(
        txs=txs, height=height, time=Timestamp(seconds=T0 + height), hash=bytes(32),
        proposer_address=proposer)).status


def send(net: Net, amount: int) -> bytes:
    return net.developer.tx(send_msg(net.developer.address, net.parts[0].address, amount))


def test_a_blocks_value_is_its_proposers_vrf_output_and_every_draw_reads_it(net):
    height = net.height + 1
    previous = net.app.modules.beacon.previous(net.app.store.begin_block(), "inferchain-test")
    net.block([send(net, 5)])
    request = net.blocks[-1]
    output = vrf.verify(vrf.public_key(VALIDATOR_SECRET), beacon.proof_in(request.txs[0]),
                        beacon.vrf_input("inferchain-test", height, previous))
    value = output[:beacon.VALUE_BYTES]
    state = net.app.store.begin_block()
    assert value != request.hash
    assert net.app.last_block["random"] == value.hex()
    assert net.app.modules.inference.block_hash(state, height) == value  # what draws read
    assert net.app.modules.beacon.previous(state, "inferchain-test") == value
    # The proof is no tx: no result kept for it, no sequence moved, the send's result first.
    assert len(net.last_block.tx_results) == 2 and net.last_block.tx_results[1].code == 0


def test_the_value_does_not_depend_on_the_blocks_txs(net):
    """Ordering, leaving out or adding txs gives the same proof: the proposer cannot grind."""
    height = net.height + 1
    a, b = send(net, 1), send(net, 2)
    proofs = {tuple(proposal(net.app, height, txs))[0] for txs in ([], [a], [b, a], [a, b])}
    assert len(proofs) == 1


@pytest.mark.parametrize("shape", [
    "no proof", "proof not first", "two proofs", "another key's proof", "last block's proof",
    "a bit flipped", "unknown proposer"])
def test_process_proposal_refuses_every_other_shape_and_changes_nothing(net, shape):
    height = net.height + 1
    good = proposal(net.app, height, [])[0]
    tx = send(net, 3)
    other = beacon.TX_PREFIX + vrf.prove(OTHER_SECRET, beacon.vrf_input(
        "inferchain-test", height, net.app.modules.beacon.previous(
            net.app.store.begin_block(), "inferchain-test")))
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    proposer = VALIDATOR_ADDRESS
    txs = {"no proof": [tx], "proof not first": [tx, good], "two proofs": [good, tx, good],
           "another key's proof": [other, tx], "last block's proof": [net.blocks[-1].txs[0]],
           "a bit flipped": [flipped], "unknown proposer": [good]}[shape]
    if shape == "unknown proposer":
        proposer = beacon.consensus_address(vrf.public_key(OTHER_SECRET))
    before = net.app.store.app_hash, net.app.store.height
    assert verdict(net.app, height, txs, proposer) == REJECT
    assert verdict(net.app, height, [good, tx]) == ACCEPT
    assert (net.app.store.app_hash, net.app.store.height) == before


def test_a_node_without_the_proposers_key_proposes_what_every_node_refuses(net, caplog):
    height = net.height + 1
    keyless = net.replica()
    txs = proposal(keyless, height, [send(net, 4)])
    assert beacon.proof_in(txs[0]) is None
    assert "without its key" in caplog.text
    assert verdict(net.app, height, txs) == verdict(keyless, height, txs) == REJECT


def test_bytes_shaped_as_a_proof_are_refused_at_checktx_and_never_proposed(net):
    shaped = proposal(net.app, net.height + 1, [])[0]
    checked = net.app.check_tx(abci.RequestCheckTx(tx=shaped))
    assert checked.code != 0
    assert proposal(net.app, net.height + 1, [shaped]) == [shaped]  # its own proof only


def test_a_block_that_breaks_the_rule_takes_its_hash_on_every_node_alike(net):
    """Only a proposal more than two thirds accepted against the rule gets here; FinalizeBlock
    must still decide the same thing everywhere."""
    replica = net.replica()
    height = net.height + 1
    request = abci.RequestFinalizeBlock(txs=[send(net, 6)], height=height,
                                        time=Timestamp(seconds=T0 + height),
                                        hash=hashlib.sha256(b"some block").digest(),
                                        proposer_address=VALIDATOR_ADDRESS)
    for app in (net.app, replica):
        result = app.finalize_block(request)
        app.commit(abci.RequestCommit())
        assert [r.code for r in result.tx_results] == [0]
        assert app.last_block["random"] == request.hash.hex()
    assert replica.store.app_hash == net.app.store.app_hash
