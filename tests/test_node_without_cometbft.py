"""A chain node and its CometBFT: while CometBFT cannot take txs (busy, starting, replaying;
stopped here) BroadcastTx is UNAVAILABLE and why, and queries keep being answered; once
CometBFT exits on its own the node stops with an error naming CometBFT's log, so its
supervisor restarts both rather than keep a node that looks alive but never again follows
the chain. Real processes: a one-validator CometBFT localnet node."""

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

pytestmark = pytest.mark.skipif(find_cometbft() is None,
                                reason="cometbft is not installed (make cometbft)")


def test_a_broadcast_while_cometbft_is_stuck_is_unavailable_and_queries_are_answered(
        tmp_path):
    with one_validator(tmp_path) as (node, ports):
        comet = comet_pid(node)
        os.kill(comet, signal.SIGSTOP)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{ports.grpc}") as channel:
                with pytest.raises(grpc.RpcError) as refused:
                    ServiceStub(channel).BroadcastTx(tx_service.BroadcastTxRequest(
                        tx_bytes=b"\x0a\x00", mode=tx_service.BROADCAST_MODE_SYNC), timeout=60)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "CometBFT cannot take txs now" in refused.value.details()
                status = QueryStub(channel).Status(q.QueryStatusRequest(), timeout=5)
                assert status.height >= 2
        finally:
            os.kill(comet, signal.SIGCONT)
        assert node.process.poll() is None
        assert "Unexpected" not in (node.home / "node.log").read_text()


def test_a_node_whose_cometbft_dies_stops_with_an_error_naming_its_log(tmp_path):
    with one_validator(tmp_path) as (node, _):
        comet = comet_pid(node)
        os.kill(comet, signal.SIGKILL)
        assert node.wait_exit(timeout=60) == 1
        assert not running(comet)
        log = (node.home / "node.log").read_text()
        assert "CometBFT exited on its own with code -9" in log
        assert str(node.home / "cometbft.log") in log
        assert "Traceback" not in log


def test_a_node_stopped_by_a_signal_stops_its_cometbft_and_exits_cleanly(tmp_path):
    with one_validator(tmp_path) as (node, _):
        comet = comet_pid(node)
        node.process.send_signal(signal.SIGINT)
        assert node.wait_exit(timeout=60) == 0
        deadline = time.monotonic() + 10
        while running(comet) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(comet)
        assert "exited on its own" not in (node.home / "node.log").read_text()
