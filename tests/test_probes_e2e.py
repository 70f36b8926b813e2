"""Probes end to end: real chain, API node and ML node processes, no developer traffic at all.

A member whose model nobody requests used to be paid its whole weight share without serving
or even loading the model. Here two honest members probe the model they share with a third
whose ML node is gone: the probes draw it, it is passed over on its draws and owes checks it
cannot make, and the epoch pays it nothing while the two who served are paid in full. Probes
are owed: the chain counts each member's (API-key requests of its own, committed naming the
model), the two probing members meet the default quota, and the third, which sends none, is
lazy for it.
"""

import socket
from collections.abc import Iterator

import grpc
import pytest
from local_network import LocalNetwork, MlNodes, poll

from chain.validation.params import ValidationParams
from inferchain_pb.inference.v1 import query_pb2 as q

QUOTA = ValidationParams().probe_quota
# 90-second epochs at 300 ms blocks; 36-second check windows, so that two validators on one
# CPU ML node, which the test machine's other work may slow, make every check they owe.
EPOCHS = {"epochs": {"epoch_length_blocks": 300},
          "validation": {"validation_window_blocks": 120, "voting_period_blocks": 30,
                         "opening_blocks": 20, "reveal_window_blocks": 200,
                         "canary_rate_ppm": 0, "probe_quota": QUOTA}}
# Each honest member sends 15 probes in the epoch: of the 30, the gone member is first in the
# draw of about a third; that fewer than two of them name it first happens once in 12,000 runs.
PROBES = 15
PROBER = {"validator_interval_s": 0.5, "probes_per_epoch": PROBES, "probe_max_tokens": 4,
          "first_token_timeout_s": 20.0}


@pytest.fixture(scope="module")
def mlnode_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    nodes = MlNodes(tmp_path_factory.mktemp("mlnode"), 1)
    yield nodes.ports[0]
    nodes.close()


def closed_port() -> int:
    """A loopback port nothing listens on: the gone member's ML node."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probes_draw_a_member_that_left_its_model_unloaded_and_its_epoch_pays_it_nothing(
        mlnode_port, tmp_path):
    net = LocalNetwork(tmp_path, [mlnode_port, mlnode_port, closed_port()], params=EPOCHS,
                       node_settings=[PROBER, PROBER, {"validator_interval_s": 0.5}])
    try:
        *honest, gone = [node.address for node in net.nodes]

        def settlement() -> q.QueryEpochSettlementResponse | None:
            try:
                return net.query("EpochSettlement", q.QueryEpochSettlementRequest(epoch=0),
                                 q.QueryEpochSettlementResponse)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
        settled = poll(settlement, "epoch 0 settled", 400, 1.0).settlement
        records = {address: net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
            address=address, epoch=0), q.QueryValidatorRecordResponse).record
            for address in [*honest, gone]}
        rewards = {r.address: r for r in settled.rewards}
        share = settled.emission // 3

        absent = records[gone]
        assert absent.finished == 0 and absent.passed_over >= 2, absent
        assert absent.unserved >= 1, absent
        assert absent.probes_missed == QUOTA and absent.lazy, absent
        assert rewards[gone].reward_coins == 0, rewards[gone]
        # The probes were the epoch's only work, and the two probing members served them.
        assert sum(records[a].finished for a in honest) >= PROBES, records
        for address in honest:
            assert not records[address].lazy and records[address].unserved == 0, \
                records[address]
            assert records[address].probes_missed == 0, records[address]
            assert abs(rewards[address].reward_coins - share) <= 1, rewards[address]
        assert settled.withheld >= share
    finally:
        net.close()
