"""Proof of compute end to end on a local network: a real chain, API nodes whose PoC workers
prove on real ML node processes (tiny preset, one CPU thread each) and check each other.

Three participants in genesis: A computes N nonces per epoch, B N/2, C submits made-up nonces
without computing. Over one whole epoch (the first that starts after every node is up, and
whose members include A and B), the test shows:

- the chain's epoch stages as a client sees them: POC, then POC_VALIDATION, then INFERENCE,
  and the chain node's log line when the PoC window closes;
- A's and B's submissions accepted with passing verdicts from the other members, C's refused
  on failing verdicts from A and B;
- at the next epoch's first block: weight(B) / weight(A) ≈ 1/2 (within a bound from the
  binomial spread of ~2.9 % acceptance), weight(C) = 0, and the new epoch's members carry
  these weights;
- B's weight is exactly what its ML node finds among nonces 0 … N/2 − 1 under its seed: no
  nonce lost or counted twice on the way through batches, outbox and chain.
"""

import math
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from local_network import LocalNetwork, MlNodes, poll

from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.epochs_pb2 import (
    INFERENCE,
    POC,
    POC_VALIDATION,
    Epoch,
    PocSubmission,
)
from inferchain_pb.inference.v1.validation_pb2 import EpochMembers
from inferchain_pb.mlnode.v1 import mlnode_pb2 as ml
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc
from mlnode.poc import DEFAULT_TARGETS, PRESETS, expected_acceptance, poc_seed

N = 16_000
TINY = PRESETS["tiny"]
TARGET = DEFAULT_TARGETS["tiny"]
SAMPLE_SIZE = 20
# Blocks of 300 ms. Sized on the 2-core development machine: with A's and B's sprints side by
# side on one CPU thread each, A's 16,000 tiny nonces took 13-24 s (up to ~80 blocks) of the
# window, which is 200 blocks (60 s) for a machine busier still; the 40-block check window
# holds two 20-nonce samples per member (~0.1 s each) many times over.
POC_PARAMS = {
    "epochs": {"epoch_length_blocks": 300, "poc_window_blocks": 200,
               "poc_validation_window_blocks": 40, "max_weight_share_ppm": 1_000_000,
               "poc_sample_size": SAMPLE_SIZE},
    "validation": {"validation_window_blocks": 20, "voting_period_blocks": 20,
                   "opening_blocks": 20, "reveal_window_blocks": 90, "canary_rate_ppm": 0},
}
WORKER = {"poc_interval_s": 0.5, "poc_submit_margin_blocks": 10, "validator_interval_s": 1.0}
STAGES = {POC: "POC", POC_VALIDATION: "POC_VALIDATION", INFERENCE: "INFERENCE"}


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Two ML nodes, one CPU thread each (the machine has two cores): A proves on the first,
    B on the second, which C (computing nothing) shares."""
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 2)
    yield nodes.ports
    nodes.close()


class StageWatch:
    """Asks the chain for its current epoch every 0.2 s, in a thread, and keeps the stages
    each epoch was seen in (in order) and the Epoch as first seen in each stage."""

    def __init__(self, net: LocalNetwork) -> None:
        self.net = net
        self.seen: dict[int, list[int]] = {}
        self.first: dict[tuple[int, int], Epoch] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                current = self.net.query("Epoch", q.QueryEpochRequest(),
                                         q.QueryEpochResponse).current
            except grpc.RpcError:
                current = None
            if current is not None:
                stages = self.seen.setdefault(current.number, [])
                if not stages or stages[-1] != current.stage:
                    stages.append(current.stage)
                    self.first[(current.number, current.stage)] = current
            self._stop.wait(0.2)

    def current(self) -> Epoch:
        return self.net.query("Epoch", q.QueryEpochRequest(), q.QueryEpochResponse).current

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def members(net: LocalNetwork, epoch: int) -> EpochMembers:
    return net.query("Epoch", q.QueryEpochRequest(epoch=epoch), q.QueryEpochResponse).members


def submissions(net: LocalNetwork, epoch: int) -> dict[str, PocSubmission]:
    reply = net.query("PocSubmissions", q.QueryPocSubmissionsRequest(epoch=epoch),
                      q.QueryPocSubmissionsResponse)
    return {s.participant: s for s in reply.submissions}


def accepted_among(port: int, seed: bytes, count: int, exhaustive: bool = False) -> int:
    """Accepted nonces among 0 … count − 1 under ``seed``, straight from an ML node: as its
    prover finds them (screened), or every one."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ml_grpc.MLNodeStub(channel)
        *_, last = stub.ProofOfCompute(ml.PocRequest(
            spec=ml.PocModelSpec(hidden=TINY.hidden, layers=TINY.layers, heads=TINY.heads,
                                 ffn=TINY.ffn, seq_len=TINY.seq_len),
            seed=seed, nonce_start=0, nonce_count=count, target_distance=TARGET,
            exhaustive=exhaustive), timeout=600)
        assert last.computed == count
        return last.accepted_total


def ratio_bound(n_a: int, n_b: int, p: float, sigmas: float = 4.0) -> tuple[float, float]:
    """Where accepted(B) / accepted(A) lies for binomial counts (delta method): the ratio's
    relative spread is sqrt((1 − p)(1/(n_a p) + 1/(n_b p)))."""
    ratio = n_b / n_a
    spread = sigmas * ratio * math.sqrt((1 - p) * (1 / (n_a * p) + 1 / (n_b * p)))
    return ratio - spread, ratio + spread


def test_weights_follow_compute_and_fabricated_nonces_are_refused(mlnodes, tmp_path):
    a_port, b_port = mlnodes
    settings = [{**WORKER, "poc_max_nonces": N}, {**WORKER, "poc_max_nonces": N // 2},
                {**WORKER, "poc_max_nonces": N, "poc_fault": "fabricate"}]
    started = time.monotonic()
    net = LocalNetwork(tmp_path, [a_port, b_port, b_port], params=POC_PARAMS,
                       in_genesis=True, node_settings=settings)
    watch = StageWatch(net)
    try:
        a, b, c = (node.address for node in net.nodes)
        ready = watch.current()
        print(f"network up after {time.monotonic() - started:.0f}s, at epoch {ready.number} "
              f"({STAGES[ready.stage]})")
        # The first epoch that starts with every node up, and has A and B as members (their
        # weights come from the epoch before, which they may have joined late).
        judged = ready.number + 1
        while True:
            poll(lambda epoch=judged: watch.current().number >= epoch or None,
                 f"epoch {judged} to start", 300, 0.5)
            found = {m.address for m in members(net, judged).members}
            if {a, b} <= found:
                break
            assert judged < ready.number + 3, f"A and B are not both members: {found}"
            judged += 1
        judged_start = time.monotonic()

        # The judged epoch's window: every node proves, then the members check.
        poll(lambda: watch.current().number >= judged + 1 or None,
             f"epoch {judged + 1} to start", 400, 0.5)
        print(f"epoch {judged} took {time.monotonic() - judged_start:.0f}s")
        assert watch.seen[judged] == [POC, POC_VALIDATION, INFERENCE], watch.seen
        poc = watch.first[(judged, POC)]
        checks = watch.first[(judged, POC_VALIDATION)]
        assert not poc.poc_sample_seed and checks.poc_sample_seed
        assert f"epoch {judged}: PoC window closed at height {poc.poc_end_height}" in \
            (net.chain.home / "node.log").read_text()

        # What each node did and saw, in its own words.
        a_log, b_log, c_log = (node.log() for node in net.nodes)
        assert f"PoC epoch {judged}: {N:,} nonces computed" in a_log, a_log[-3000:]
        assert f"PoC epoch {judged}: {N // 2:,} nonces computed" in b_log, b_log[-3000:]
        assert "budget spent" in a_log and "budget spent" in b_log
        assert "FAULT INJECTION 'fabricate'" in c_log
        for log, other in ((a_log, c), (b_log, c)):
            assert f"PoC check of {other} (epoch {judged}" in log

        # The verdicts, and the weights they gave at the next epoch's first block.
        subs = submissions(net, judged)
        assert set(subs) == {a, b, c}
        voters = {m.address for m in members(net, judged).members}
        for mine in (a, b):
            sub = subs[mine]
            assert sub.settled and sub.accepted and sub.weight == sub.nonces > 0, sub
            assert {v.validator for v in sub.verdicts} == voters - {mine}, sub
            assert all(v.passed and v.checked == SAMPLE_SIZE and not v.failed
                       for v in sub.verdicts), sub
        forged = subs[c]
        assert forged.settled and not forged.accepted and forged.weight == 0, forged
        failed_by = {v.validator for v in forged.verdicts if not v.passed}
        assert {a, b} <= failed_by, forged
        assert all(v.checked == SAMPLE_SIZE and v.failed >= SAMPLE_SIZE // 2
                   for v in forged.verdicts if v.validator in (a, b)), forged

        weights = {addr: net.participant(addr).weight for addr in (a, b, c)}
        assert weights == {a: subs[a].nonces, b: subs[b].nonces, c: 0}
        p = expected_acceptance(TARGET, TINY.hidden)
        low, high = ratio_bound(N, N // 2, p)
        ratio = weights[b] / weights[a]
        print(f"epoch {judged}: weights A {weights[a]}, B {weights[b]}, C {weights[c]}; "
              f"B/A = {ratio:.3f} (4-sigma bound {low:.3f}-{high:.3f})")
        assert low < ratio < high
        for addr, n in ((a, N), (b, N // 2)):  # the screen finds most, not all
            spread = 4 * math.sqrt(n * p * (1 - p))
            assert 0.8 * n * p - spread < weights[addr] < n * p + spread, (addr, weights[addr])

        new_members = members(net, judged + 1)
        assert {m.address: m.weight for m in new_members.members} == \
            {a: weights[a], b: weights[b]}
        assert new_members.total_weight == weights[a] + weights[b]

        # Exactly what B's prover finds in its budget under its seed: no nonce lost or
        # counted twice; and none that the exhaustive search would not accept.
        b_seed = poc_seed(poc.poc_block_hash, b)
        assert accepted_among(b_port, b_seed, N // 2) == weights[b]
        assert weights[b] <= accepted_among(b_port, b_seed, N // 2, exhaustive=True)
        print(f"whole test {time.monotonic() - started:.0f}s")
    finally:
        watch.close()
        net.close()
