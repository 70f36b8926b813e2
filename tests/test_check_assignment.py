"""Who checks what, played on the chain's own handlers in process (bench/economics/simulation.py):
an honest network of newcomers whose members each report on exactly the inferences their secret
seeds assign them. The checks an inference gets stay near two however many members there are,
the chain's judgement after the reveal finds that every member did exactly what its seed
assigned (the worker's rule and the chain's agree), and a second node replaying the blocks
reaches the same app hash. Lazy members are still caught under the same assignment."""

import math

import pytest

from bench.economics.simulation import Play, Setup, Simulation
from chain.scales import PPM
from inferchain_pb.inference.v1 import query_pb2 as q

HONEST = Play()


def epoch_of(members: int, play: Play = HONEST, canary_rate_ppm: int = 0) -> Simulation:
    simulation = Simulation(Setup(members=members, epochs=1, inferences_per_block=6,
                                  canary_rate_ppm=canary_rate_ppm), play)
    simulation.run()
    # The epoch's inferences are cut to summaries once its judgement settled it, in the
    # blocks after its reveal window (which outlasts the windows, votes and openings).
    net = simulation.net
    for _ in range(20):
        if all(net.inference(i).summarized_height for i in simulation.ours):
            break
        net.block([])
    return simulation


def record(simulation: Simulation, index: int):
    return simulation.net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
        address=simulation.parts[index].address, epoch=0)).record


@pytest.mark.parametrize("members", [5, 24])
def test_a_newcomers_inference_gets_two_checks_whatever_the_network_size(members):
    simulation = epoch_of(members)
    net = simulation.net
    tasks = [net.closed_task(i) for i in simulation.ours]
    assert {(t.p_ppm, t.expected_checks_ppm) for t in tasks} == {(PPM, 2 * PPM)}
    checks = sum(len(t.reports) for t in tasks)
    assert checks == sum(net.inference(i).checks for i in simulation.ours)
    # Each of the N − 1 others checks with probability 2 / (N − 1), independently.
    q_each = 2 / (members - 1)
    sigma = math.sqrt(len(tasks) * (members - 1) * q_each * (1 - q_each))
    assert abs(checks - 2 * len(tasks)) < 4 * sigma, (checks, len(tasks))
    for index in range(members):
        judged = record(simulation, index)
        assert judged.settled and judged.revealed and not judged.lazy, judged
        assert judged.required == judged.done > 0, judged
    net.replica()  # a second node replaying every block reaches the same app hash


def test_a_member_that_skips_its_assigned_checks_is_still_judged_lazy():
    simulation = epoch_of(6, Play(name="skip", deviants=(0,), lazy="skip", g=1.0))
    skipper = record(simulation, 0)
    assert skipper.required > 0 and skipper.done == 0 and skipper.lazy, skipper
    assert not any(record(simulation, i).lazy for i in range(1, 6))


def test_a_member_that_passes_without_checking_meets_a_canary_and_is_judged_lazy():
    simulation = epoch_of(6, Play(name="blind", deviants=(0,), lazy="blind-pass", g=1.0),
                          canary_rate_ppm=PPM)
    blind = record(simulation, 0)
    assert blind.canaries_passed > 0 and blind.lazy, blind
    assert not any(record(simulation, i).lazy for i in range(1, 6))
