"""Queries against real node processes: out-of-range ones refused while the chain keeps
committing, and queries at a past height answered from the history the node keeps.

An enum value outside its enum once raised out of ABCI Query; under CometBFT that reply stops
the node. Here a solo node answers such queries by gRPC, and a CometBFT node by its RPC's
``abci_query``, with INVALID_ARGUMENT / code 18, and both keep making blocks.
"""

import json
import urllib.parse
import urllib.request

import grpc
import pytest
from chain_client import ledger
from chain_nodes import ChainNode, funded_keys, template
from conftest import free_port
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from test_chain_cometbft import comet_pid, one_validator, running

from chain.query import HEIGHT_HEADER
from genesis.comet_config import find_cometbft
from genesis.solo import layout_solo
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.query_pb2_grpc import QueryStub

OUT_OF_RANGE = [
    ("Inferences", q.QueryInferencesRequest(status=256)),
    ("Inferences", q.QueryInferencesRequest(status=-1)),
    ("Proposals", q.QueryProposalsRequest(status=1 << 20)),
    ("Proposals", q.QueryProposalsRequest(status=-7)),
]


def test_a_solo_node_refuses_out_of_range_enums_by_grpc_and_keeps_committing(tmp_path):
    port = free_port()
    info = layout_solo(template(funded_keys(1)), tmp_path / "home", grpc_port=port,
                       block_interval_ms=200)
    node = ChainNode(info.home, port).start()
    try:
        node.wait_height(2)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = QueryStub(channel)
            for name, request in OUT_OF_RANGE:
                with pytest.raises(grpc.RpcError) as refused:
                    getattr(stub, name)(request, timeout=5)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "is not a" in refused.value.details()
            garbage = channel.unary_unary("/inference.v1.Query/Inferences")
            with pytest.raises(grpc.RpcError) as undecodable:
                garbage(b"\xff\xff\xff", timeout=5)
            assert undecodable.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert stub.Inferences(q.QueryInferencesRequest(status=1), timeout=5) is not None
        height = node.height()
        node.wait_height(height + 3)
    finally:
        node.close()


def test_a_solo_node_answers_at_a_past_height_it_keeps_and_says_when_it_does_not(tmp_path):
    """``x-cosmos-block-height`` reads the state as of that height: a balance before a send
    it has since received; a height not committed, not a number, or older than the node's
    ``history_keep_blocks`` is refused with the reason."""
    key, = funded_keys(1)
    port = free_port()
    info = layout_solo(template([key]), tmp_path / "home", grpc_port=port,
                       block_interval_ms=200)
    with (info.home / "config" / "app.toml").open("a") as app_toml:
        app_toml.write("history_keep_blocks = 20\n")
    node = ChainNode(info.home, port).start()
    try:
        node.wait_height(2)
        sender = LocalWallet(PrivateKey(bytes.fromhex(key.private_key_hex)), prefix="infer")
        fresh = LocalWallet(PrivateKey(), prefix="infer")
        sent = ledger(port).send_tokens(fresh.address(), 5_000, "ninfer",
                                        sender).wait_to_complete()
        before = sent.response.height - 1
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = QueryStub(channel)

            def balance(height: int | None = None) -> int:
                metadata = [(HEIGHT_HEADER, str(height))] if height is not None else None
                return stub.Account(q.QueryAccountRequest(address=str(fresh.address())),
                                    timeout=5, metadata=metadata).balance

            assert (balance(before), balance(sent.response.height), balance()) == \
                (0, 5_000, 5_000)
            for named, why in ((node.height() + 1_000, "is not a committed height"),
                               ("-3", "is not a block height"),
                               ("tall", "is not a block height")):
                with pytest.raises(grpc.RpcError) as refused:
                    stub.Account(q.QueryAccountRequest(address=str(fresh.address())),
                                 timeout=5, metadata=[(HEIGHT_HEADER, str(named))])
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert why in refused.value.details()
            node.wait_height(before + 40)  # pruned every 10 blocks down to the last 20
            with pytest.raises(grpc.RpcError) as gone:
                balance(before)
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
            assert "no longer kept" in gone.value.details()
            assert balance(node.height() - 5) == 5_000
    finally:
        node.close()


@pytest.mark.skipif(find_cometbft() is None, reason="cometbft is not installed (make cometbft)")
def test_a_cometbft_node_answers_abci_query_with_code_18_and_keeps_running(tmp_path):
    with one_validator(tmp_path) as (node, ports):
        comet = comet_pid(node)
        for name, request in OUT_OF_RANGE:
            query = urllib.parse.urlencode({
                "path": f'"/inference.v1.Query/{name}"',
                "data": "0x" + request.SerializeToString().hex()})
            with urllib.request.urlopen(f"{ports.rpc_url}/abci_query?{query}",
                                        timeout=5) as reply:
                answer = json.loads(reply.read())["result"]["response"]
            assert (answer["code"], answer["codespace"]) == (18, "sdk"), answer
            assert "is not a" in answer["log"]
        height = node.height()
        node.wait_height(height + 3)
        assert running(comet)
