"""Governance end to end: a model registered by a proposal, submitted and voted with the
``python -m chain gov`` CLI against a local network, appears in the API node's /v1/models
once a participant serves it."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from chain_client import TxSpec, broadcast_raw, ledger, signed_tx
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from inference_actors import WEIGHTS
from local_network import MODEL, LocalNetwork, MlNodes, poll

from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.gov_pb2 import PROPOSAL_STATUS_PASSED
from inferchain_pb.inference.v1.inference_pb2 import MsgUpdateParticipant, ServedModel

NEW_MODEL = {"id": "acme/tiny-chat", "weights_sha256": "cd" * 32, "price_per_token": 50,
             "context_length": 2048, "validation_threshold": "0.2", "top_k": 5,
             "serving_dtype": "float32"}
# 100 blocks of 300 ms: time for two CLI processes to start and vote on a loaded machine.
GOV = {"min_deposit": 1_000, "min_initial_deposit": 1_000, "voting_period_blocks": 100}


def gov_cli(net: LocalNetwork, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "chain", "gov", "--grpc",
                           f"127.0.0.1:{net.chain.grpc_port}", *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def served_ids(net: LocalNetwork) -> list[str]:
    with urllib.request.urlopen(f"{net.nodes[0].url}/v1/models", timeout=5) as reply:
        return [m["id"] for m in json.load(reply)["data"]]


def test_a_model_registered_by_proposal_is_listed_once_served(tmp_path: Path):
    mlnodes = MlNodes(tmp_path, 1)
    net = LocalNetwork(tmp_path / "net", mlnodes.ports, params={"gov": GOV}, in_genesis=True)
    try:
        assert served_ids(net) == [MODEL]
        proposal = tmp_path / "proposal.json"
        proposal.write_text(json.dumps({
            "title": "Register acme/tiny-chat", "summary": "a smaller model", "deposit": 1_000,
            "messages": [{"@type": "/inference.v1.RegisterModel", "model": NEW_MODEL}]}))
        submitted = gov_cli(net, "submit", str(proposal), "--key", net.developer.private_key_hex)
        pid = int(submitted["events"]["submit_proposal"]["proposal_id"])
        participant = net.nodes[0]
        key_file = participant.home / "account.key"
        gov_cli(net, "vote", str(pid), "yes", "--key", str(key_file))
        poll(lambda: gov_cli(net, "proposal", str(pid))["proposal"]["status"] ==
             "PROPOSAL_STATUS_PASSED" or None, "the proposal to pass", timeout=90)
        reply = net.query("Proposal", q.QueryProposalRequest(proposal_id=pid),
                          q.QueryProposalResponse)
        assert reply.proposal.status == PROPOSAL_STATUS_PASSED
        assert served_ids(net) == [MODEL]  # registered, but nobody serves it yet
        wallet = LocalWallet(PrivateKey(bytes.fromhex(participant.key.private_key_hex)),
                             prefix="infer")
        client = ledger(net.chain.grpc_port)
        account = client.query_account(wallet.address())
        update = MsgUpdateParticipant(
            creator=participant.address, url=participant.url,
            node_pubkey=bytes(net.node_keys[0].verify_key),
            models=[ServedModel(model_id=MODEL, weights_sha256=WEIGHTS, dtype="float32"),
                    ServedModel(model_id=NEW_MODEL["id"],
                                weights_sha256=NEW_MODEL["weights_sha256"], dtype="float32")])
        code, log, _ = broadcast_raw(client, signed_tx(wallet, TxSpec(
            [update], sequence=account.sequence, account_number=account.number,
            gas_limit=400_000, fee=4_000)).tx.SerializeToString())
        assert code == 0, log
        poll(lambda: NEW_MODEL["id"] in served_ids(net) or None,
             "the new model in /v1/models", timeout=30)
        assert sorted(served_ids(net)) == sorted([MODEL, NEW_MODEL["id"]])
    finally:
        net.close()
        mlnodes.close()
