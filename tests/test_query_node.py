"""Out-of-range queries against real node processes: refused, and the chain keeps committing.

An enum value outside its enum once raised out of ABCI Query; under CometBFT that reply stops
the node. Here a solo node answers such queries by gRPC, and a CometBFT node by its RPC's
``abci_query``, with INVALID_ARGUMENT / code 18, and both keep making blocks.
"""

import json
import urllib.parse
import urllib.request

import grpc
import pytest
from chain_nodes import ChainNode, funded_keys, template
from conftest import free_port
from test_chain_cometbft import comet_pid, one_validator, running

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
