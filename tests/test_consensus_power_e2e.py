"""CometBFT voting power = epoch weight, on a real 2-validator CometBFT localnet.

Genesis gives both validators power 10 and registers two participants whose consensus keys
are the validators' keys, with weights 30 and 70. At the first epoch boundary FinalizeBlock
returns the updates; from two heights later CometBFT's own /validators shows 30 and 70, the
chain's ConsensusValidators query agrees, and both nodes keep committing the same app hashes.
"""

import base64
import json
import urllib.request

import grpc
import pytest
from chain_nodes import CHAIN_ID, FUNDS, ChainNode, funded_keys
from conftest import free_port_block
from inference_actors import MODEL_ID, WEIGHTS, genesis_models
from local_network import poll
from nacl.signing import SigningKey

from genesis.comet_config import find_cometbft
from genesis.localnet import PORTS_PER_NODE, layout_localnet
from genesis.template import parse_template
from inferchain_pb.inference.v1 import query_pb2 as q

pytestmark = pytest.mark.skipif(find_cometbft() is None,
                                reason="cometbft is not installed (make cometbft)")

EPOCH = 10
WEIGHTS_BY_VALIDATOR = [30, 70]
BOUNDARY = 1 + EPOCH  # epoch 1's first block: the updates are returned here
EFFECTIVE = BOUNDARY + 2  # CometBFT applies them two heights later


def rpc(url: str, path: str) -> dict:
    with urllib.request.urlopen(f"{url}/{path}", timeout=5) as reply:
        return json.loads(reply.read())["result"]


def comet_powers(url: str, height: int) -> dict[bytes, int]:
    found = rpc(url, f"validators?height={height}&per_page=100")
    return {base64.b64decode(v["pub_key"]["value"]): int(v["voting_power"])
            for v in found["validators"]}


def validator_pubkey(home) -> bytes:
    data = json.loads((home / "config" / "priv_validator_key.json").read_text())
    return base64.b64decode(data["pub_key"]["value"])


@pytest.fixture
def network(tmp_path):
    keys = funded_keys(2)
    participants = [
        {"address": k.address, "url": f"http://127.0.0.1:{8100 + i}",
         "node_pubkey": bytes(SigningKey.generate().verify_key).hex(),
         "models": [{"model_id": MODEL_ID, "weights_sha256": WEIGHTS}], "weight": weight}
        for i, (k, weight) in enumerate(zip(keys, WEIGHTS_BY_VALIDATOR, strict=True))]
    template = parse_template({
        "chain_id": CHAIN_ID,
        "accounts": [{"address": k.address, "coins": f"{FUNDS}ninfer"} for k in keys],
        "validators": [{"name": "val0", "power": 10}],
        "models": genesis_models(), "participants": participants,
        "params": {"epochs": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0}}})
    infos = layout_localnet(template, tmp_path / "net", validators=2,
                            base_port=free_port_block(2 * PORTS_PER_NODE),
                            timeout_commit="300ms")
    # The validator keys exist only now: name them as the participants' consensus keys.
    pubkeys = [validator_pubkey(info.home) for info in infos]
    for info in infos:
        path = info.home / "config" / "genesis.json"
        genesis = json.loads(path.read_text())
        assert [int(v["power"]) for v in genesis["validators"]] == [10, 10]
        for entry, pubkey in zip(genesis["app_state"]["inference"]["participants"], pubkeys,
                                 strict=True):
            entry["consensus_pubkey"] = pubkey.hex()
        path.write_text(json.dumps(genesis, indent=2) + "\n")
    nodes = [ChainNode(info.home, info.ports.grpc) for info in infos]
    try:
        for node in nodes:
            node.start()
        yield infos, nodes, pubkeys, keys
    finally:
        for node in nodes:
            node.close()


def consensus_validators(grpc_port: int):
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        call = channel.unary_unary(
            "/inference.v1.Query/ConsensusValidators",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=q.QueryConsensusValidatorsResponse.FromString)
        return call(q.QueryConsensusValidatorsRequest(), timeout=5).validators


def test_voting_power_follows_epoch_weight(network):
    infos, nodes, pubkeys, keys = network
    urls = [info.ports.rpc_url for info in infos]
    for node in nodes:
        node.wait_height(2)
    genesis_set = {k: 10 for k in pubkeys}
    assert comet_powers(urls[0], 1) == genesis_set
    before = consensus_validators(infos[0].ports.grpc)
    assert before.height == 0
    assert {v.pubkey: (v.power, v.participant) for v in before.validators} == {
        k: (10, "") for k in pubkeys}

    # Several blocks past the change: the chain goes on under the new powers.
    for node in nodes:
        node.wait_height(EFFECTIVE + 5, timeout=240)
    expected = dict(zip(pubkeys, WEIGHTS_BY_VALIDATOR, strict=True))
    for url in urls:
        assert comet_powers(url, BOUNDARY) == genesis_set
        assert comet_powers(url, BOUNDARY + 1) == genesis_set
        assert comet_powers(url, EFFECTIVE) == expected
        assert comet_powers(url, EFFECTIVE + 5) == expected
    for info in infos:
        found = consensus_validators(info.ports.grpc)
        assert found.height == BOUNDARY
        assert {v.pubkey: (v.power, v.participant) for v in found.validators} == {
            pubkeys[i]: (WEIGHTS_BY_VALIDATOR[i], keys[i].address) for i in range(2)}

    # Both nodes committed the same blocks: every header's app hash agrees.
    upto = min(node.height() for node in nodes)
    assert upto >= EFFECTIVE + 5
    hashes = [[rpc(url, f"block?height={h}")["block"]["header"]["app_hash"]
               for h in range(1, upto + 1)] for url in urls]
    assert hashes[0] == hashes[1]
    # The boundary block's results carry the updates CometBFT applied.
    results = rpc(urls[0], f"block_results?height={BOUNDARY}")
    updates = {base64.b64decode(u["pub_key"]["Sum"]["value"]["ed25519"])
               if "Sum" in u["pub_key"] else base64.b64decode(u["pub_key"]["ed25519"]):
               int(u["power"]) for u in results["validator_updates"]}
    assert updates == expected
    # And it keeps going.
    height = nodes[0].height()
    poll(lambda: True if min(n.height() for n in nodes) >= height + 3 else None,
         "both nodes advance after the change", 120)
