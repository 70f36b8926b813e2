"""A 4-validator CometBFT localnet of real chain nodes: agreement, a lost validator, crashes.

Each node is `python -m chain node start`, which runs the app and starts its own CometBFT.
"""

import base64
import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from chain_client import TxSpec, broadcast_raw, ledger, send_msg, signed_tx
from chain_nodes import ChainNode, beacon_tx_hash, funded_keys, template
from conftest import free_port_block
from cosmjs_client import client_flow
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey

from chain import vrf
from chain.epochs import beacon
from genesis.comet_config import find_cometbft
from genesis.homes import NodePorts
from genesis.localnet import PORTS_PER_NODE, layout_localnet
from inferchain_pb.inference.v1 import query_pb2 as q

pytestmark = pytest.mark.skipif(find_cometbft() is None,
                                reason="cometbft is not installed (make cometbft)")



class Localnet:
    def __init__(self, root, validators: int = 4) -> None:
        self.keys = keys = funded_keys(2)
        self.wallets = [LocalWallet(PrivateKey(bytes.fromhex(k.private_key_hex)), prefix="infer")
                        for k in keys]
        self.infos = layout_localnet(template(keys), root, validators=validators,
                                     base_port=free_port_block(validators * PORTS_PER_NODE),
                                     timeout_commit="300ms")
        self.nodes = [ChainNode(i.home, i.ports.grpc) for i in self.infos]

    @contextmanager
    def running(self, height: int = 2) -> Iterator["Localnet"]:
        """Every validator started and past ``height``; all closed on the way out."""
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_height(height)
            yield self
        finally:
            for node in self.nodes:
                node.close()

    def rpc(self, index: int, path: str) -> dict:
        url = f"{self.infos[index].ports.rpc_url}/{path}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.loads(reply.read())["result"]

    def app_hashes(self, index: int, upto: int) -> list[str]:
        """The app hash each block header carries (the state after the previous block)."""
        return [self.rpc(index, f"block?height={h}")["block"]["header"]["app_hash"]
                for h in range(1, upto + 1)]

    def assert_agreement(self, indexes: list[int]) -> int:
        """All nodes named agree on every block header's app hash; returns the height checked."""
        for i in indexes:
            self.nodes[i].wait_height(2)
        upto = min(self.nodes[i].height() for i in indexes)
        reference = self.app_hashes(indexes[0], upto)
        for i in indexes[1:]:
            assert self.app_hashes(i, upto) == reference, f"val{i} diverged"
        height, app_hash = self.nodes[indexes[0]].app_hash_at_latest()
        for i in indexes[1:]:
            self.nodes[i].wait_height(height)
        return upto


@pytest.fixture(scope="module")
def localnet(tmp_path_factory):
    with Localnet(tmp_path_factory.mktemp("localnet") / "net").running() as net:
        yield net


def test_cosmpy_against_a_cometbft_node(localnet):
    client = ledger(localnet.infos[0].ports.grpc)
    other = ledger(localnet.infos[3].ports.grpc)
    alice = localnet.wallets[0]
    fresh = LocalWallet(PrivateKey(), prefix="infer")
    done = client.send_tokens(fresh.address(), 777_000, "ninfer", alice).wait_to_complete()
    assert done.response.code == 0 and done.response.height > 0
    assert client.query_bank_balance(fresh.address(), "ninfer") == 777_000
    spent = other.send_tokens(alice.address(), 1_000, "ninfer", fresh).wait_to_complete()
    assert spent.response.height > done.response.height
    fee = int(spent.response.gas_wanted * 0.01 + 0.999999)
    localnet.nodes[3].wait_height(spent.response.height)
    assert other.query_bank_balance(fresh.address(), "ninfer") == 777_000 - 1_000 - fee


def test_cosmjs_sends_through_one_validator_and_every_validator_indexes_the_tx(localnet):
    alice, bob = localnet.keys
    seen = client_flow(localnet.infos[1].ports.rpc_url, alice.private_key_hex, bob.address,
                       4_321)
    delivered = seen["delivered"]
    assert delivered["code"] == 0 and seen["looked_up"]["hash"] == delivered["hash"]
    before, after = seen["balances_before"], seen["balances_after"]
    assert int(after[bob.address]) - int(before[bob.address]) == 4_321
    assert [seen[bad]["code"] for bad in ("overspend", "wrong_chain", "bad_signature")] == \
        [5, 4, 4]
    assert seen["balances_final"] == after
    for index in (0, 2, 3):
        localnet.nodes[index].wait_height(delivered["height"])
        indexed = localnet.rpc(index, f"tx?hash=0x{delivered['hash']}")
        assert (int(indexed["height"]), indexed["tx_result"]["code"]) == (delivered["height"], 0)
        found = localnet.rpc(index, f'tx_search?query="tx.height={delivered["height"]}"')
        beacon_hash = beacon_tx_hash(localnet.infos[index].ports.rpc_url, delivered["height"])
        assert sorted(tx["hash"] for tx in found["txs"]) == sorted([beacon_hash,
                                                                    delivered["hash"]])


def test_all_validators_agree_at_every_height(localnet):
    assert localnet.assert_agreement([0, 1, 2, 3]) >= 2


def test_every_block_draws_from_its_proposers_vrf_proof_not_its_hash(localnet):
    """The first tx of each committed block is its proposer's VRF proof over the chain id,
    the height and the block before's value; the value every draw reads (here the epoch's
    PoC seed, taken at its first block) is that proof's output, not the block hash the
    proposer could grind."""
    validators = {v["address"]: base64.b64decode(v["pub_key"]["value"])
                  for v in localnet.rpc(0, "validators?height=1")["validators"]}
    chain_id = localnet.rpc(0, "status")["node_info"]["network"]
    previous = hashlib.sha256(beacon.GENESIS_TAG + chain_id.encode()).digest()
    for height in (1, 2, 3):
        block = localnet.rpc(0, f"block?height={height}")
        header = block["block"]["header"]
        proof = beacon.proof_in(base64.b64decode(block["block"]["data"]["txs"][0]))
        assert proof is not None
        output = vrf.verify(validators[header["proposer_address"]], proof,
                            beacon.vrf_input(chain_id, height, previous))
        previous = output[:beacon.VALUE_BYTES]
        if height == 1:
            with grpc.insecure_channel(f"127.0.0.1:{localnet.infos[1].ports.grpc}") as channel:
                epoch = channel.unary_unary(
                    "/inference.v1.Query/Epoch",
                    request_serializer=q.QueryEpochRequest.SerializeToString,
                    response_deserializer=q.QueryEpochResponse.FromString)(
                        q.QueryEpochRequest(epoch=0), timeout=5).current
            assert epoch.start_height == 1 and epoch.poc_block_hash == previous
            assert previous != bytes.fromhex(block["block_id"]["hash"])


def test_hostile_txs_and_queries_leave_every_validator_committing(localnet):
    client = ledger(localnet.infos[0].ports.grpc)
    alice, bob = localnet.wallets
    account = client.query_account(alice.address())
    spec = TxSpec([send_msg(str(alice.address()), str(bob.address()), 1)],
                  sequence=account.sequence, account_number=account.number)
    repeated_body = b"\x0a\x02\xff\xff" + signed_tx(alice, spec).tx.SerializeToString()
    huge_gas = signed_tx(alice, replace(spec, gas_limit=(1 << 64) - 1)).tx.SerializeToString()
    start = localnet.nodes[0].height()
    assert broadcast_raw(client, repeated_body)[:2] == (
        2, "tx is not canonically encoded: unknown or repeated fields, fields out of order, "
           "padded varints or explicit default values")
    assert broadcast_raw(client, huge_gas)[0] == 18
    # Straight to another validator's CometBFT RPC, and ABCI queries with garbage through it.
    assert localnet.rpc(1, f"broadcast_tx_sync?tx=0x{repeated_body.hex()}")["code"] == 2
    out_of_enum = q.QueryInferencesRequest(status=300).SerializeToString().hex()
    for path, data in [("/inference.v1.Query/Inferences", "ffff"),
                       ("/inference.v1.Query/Inferences", out_of_enum),
                       ("/cosmos.bank.v1beta1.Query/Balance", "0a" + "ff" * 8),
                       ("/no.such.Query/Path", "00")]:
        reply = localnet.rpc(2, f'abci_query?path="{path}"&data=0x{data}')["response"]
        assert reply["code"] != 0 and reply["log"]
    localnet.nodes[0].wait_height(start + 4)
    localnet.assert_agreement([0, 1, 2, 3])
    for node in localnet.nodes:
        assert running(comet_pid(node))
    assert client.send_tokens(bob.address(), 5, "ninfer", alice).wait_to_complete() \
        .response.code == 0


@contextmanager
def one_validator(root: Path, settings: str = "") -> Iterator[tuple[ChainNode, NodePorts]]:
    """A one-validator CometBFT localnet node that has made block 2, and its ports; closed on
    the way out. ``settings``: lines added to its app.toml."""
    info, = layout_localnet(template(funded_keys(1)), root / "net", validators=1,
                            base_port=free_port_block(PORTS_PER_NODE), timeout_commit="200ms")
    with (info.home / "config" / "app.toml").open("a") as app_toml:
        app_toml.write(settings)
    node = ChainNode(info.home, info.ports.grpc).start()
    try:
        node.wait_height(2)
        yield node, info.ports
    finally:
        node.close()


def comet_pid(node) -> int:
    """The pid of the CometBFT the node started last (from its log)."""
    lines = (node.home / "node.log").read_text().splitlines()
    line = next(x for x in reversed(lines) if "CometBFT started (pid" in x)
    return int(line.split("(pid ")[1].split(")")[0])


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (a dead child nobody reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_three_keep_committing_without_the_fourth_which_then_catches_up(localnet):
    victim = localnet.nodes[3]
    comet = comet_pid(victim)
    victim.kill()
    # Its CometBFT dies with it: one left running would keep the ports and peers.
    deadline = time.monotonic() + 30
    while running(comet) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(comet), f"CometBFT (pid {comet}) outlived its killed node"
    start = localnet.nodes[0].height()
    localnet.nodes[0].wait_height(start + 5)
    localnet.assert_agreement([0, 1, 2])
    victim.start()
    victim.wait_height(localnet.nodes[0].height())
    localnet.assert_agreement([0, 1, 2, 3])


@pytest.mark.parametrize("point", ["after_finalize", "inside_commit", "after_commit"])
def test_a_crash_at_any_point_of_a_block_recovers_without_divergence(localnet, point):
    victim = localnet.nodes[2]
    victim.stop()
    crash_at = localnet.nodes[0].height() + 4
    victim.start(env={"INFERCHAIN_FAILPOINT": f"{point}@{crash_at}"})
    assert victim.wait_exit(timeout=120) == -9, victim.log_tail()
    assert f"failpoint {point} at height {crash_at}" in victim.log_tail()
    victim.start()
    victim.wait_height(crash_at + 2)
    localnet.assert_agreement([0, 1, 2, 3])
