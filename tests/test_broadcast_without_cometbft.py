"""A chain node whose CometBFT cannot take txs (killed here; starting or replaying in life)
answers BroadcastTx with UNAVAILABLE and why, rather than an unexpected error, and keeps
answering queries. Real processes: a one-validator CometBFT localnet node."""

import os
import signal
import time

import grpc
import pytest
from cosmpy.protos.cosmos.tx.v1beta1 import service_pb2 as tx_service
from cosmpy.protos.cosmos.tx.v1beta1.service_pb2_grpc import ServiceStub
from test_chain_cometbft import comet_pid, one_validator, running

from genesis.comet_config import find_cometbft
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.query_pb2_grpc import QueryStub


@pytest.mark.skipif(find_cometbft() is None, reason="cometbft is not installed (make cometbft)")
def test_a_broadcast_while_cometbft_is_gone_is_unavailable_and_the_node_keeps_answering(
        tmp_path):
    with one_validator(tmp_path) as (node, ports):
        comet = comet_pid(node)
        os.kill(comet, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while running(comet) and time.monotonic() < deadline:
            time.sleep(0.1)
        with grpc.insecure_channel(f"127.0.0.1:{ports.grpc}") as channel:
            with pytest.raises(grpc.RpcError) as refused:
                ServiceStub(channel).BroadcastTx(tx_service.BroadcastTxRequest(
                    tx_bytes=b"\x0a\x00", mode=tx_service.BROADCAST_MODE_SYNC), timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "CometBFT cannot take txs now" in refused.value.details()
            status = QueryStub(channel).Status(q.QueryStatusRequest(), timeout=5)
            assert status.height >= 2
        assert "Unexpected" not in (node.home / "node.log").read_text()
