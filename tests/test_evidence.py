"""Evidence accumulates per executor and epoch (docs/design.md §6.7), through the chain's real
handlers in process: every passed check adds its figures to the executor's epoch record and
one bet of the sequential test; an executor whose outputs are further from the validators'
than the registry's honest reference crosses 1/α and is INVALID for the epoch (no rewards, no
routing), while honest executors' evidence shrinks."""

import random

from inference_actors import Actor, finish_msg, genesis_models, validation_msg
from inference_net import Net

from chain.inference.keeper import invalid_now
from chain.validation import evidence
from chain.validation.tasks import running_bets
from chain.validation.verdict import threshold_micro
from inferchain_pb.inference.v1 import query_pb2 as q

EPOCH = 400  # the checks of a hundred inferences, so that evidence crosses in one epoch
WINDOW = 2
ALPHA_PPM = 1_000


def make_net() -> Net:
    """Four newcomers under a registry whose rule allows violations (2 + 8 per 1,024
    positions, half precision's), so that a cheat can stay within it check by check, and
    whose violation bet is on (the reference and bet of the fp32 calibration)."""
    (model,) = genesis_models()
    return Net(4, expiration_blocks=50, models=[
        {**model, "max_rule_violations": 2, "rule_violations_per_1024": 8,
         "reference_violations_ppm": 673, "violation_bet_ppm": 50_000}], extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0}},
        "validation": {"params": {"validation_window_blocks": WINDOW, "voting_period_blocks": 2,
                                  "opening_blocks": 1, "reveal_window_blocks": 10,
                                  "canary_rate_ppm": 0,
                                  "evidence_alpha_ppm": ALPHA_PPM}}})


def record(net: Net, actor: Actor, epoch: int):
    return net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
        address=actor.address, epoch=epoch)).record


def check_one(net: Net, label: str, distance_of, violations_of=lambda _e, _c: 0
              ) -> tuple[Actor, list[int], int]:
    """One inference started, finished and checked by every other member (newcomers are
    checked with p = 1), each reporting ``distance_of(executor, checker)`` and
    ``violations_of(executor, checker)`` rule violations in its 3 positions (sealed, then
    opened once the window's sealing ends); its window closes."""
    agent, executor, start = net.start(label, max_tokens=8)
    results = net.block([agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))])
    assert [r.code for r in results] == [0, 0], [r.log for r in results]
    inference = net.inference(start.inference_id)
    checkers = [c for c in net.parts if c is not executor]
    distances = [distance_of(executor, c) for c in checkers]
    results = net.report([(c, validation_msg(c, inference, d, violations_of(executor, c)))
                          for c, d in zip(checkers, distances, strict=True)])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    task = net.query("ValidationTask", q.QueryValidationTaskRequest(
        inference_id=start.inference_id)).task
    while net.height < task.open_until:
        net.block([])
    return executor, distances, task.epoch


def test_a_substitute_is_caught_by_its_accumulated_evidence_and_honest_executors_never():
    net = make_net()
    (model,) = net.query("Models", q.QueryModelsRequest()).models
    reference, cap = model.reference_distance_micro, threshold_micro(model)
    cheater = net.parts[-1]  # net.start's first agent, parts[0], is seldom its executor
    rng = random.Random(7)
    # Honest figures spread around 0.8 μ0; the substitute's sit at 1.7 μ0, every one of them
    # under the per-inference threshold, so each of its checks passes alone.
    honest = lambda: rng.randint(reference // 2, reference * 11 // 10)  # noqa: E731
    substitute = reference * 17 // 10
    assert substitute < cap
    expected: dict[tuple[str, int], list[int]] = {}  # (executor, epoch) -> wealth, n, sum
    caught_after = caught_epoch = None
    bets = running_bets(model)  # the violation bet runs beside it: each at α/bets
    for i in range(100):
        executor, distances, epoch = check_one(
            net, f"evidence-{i}", lambda e, _: substitute if e is cheater else honest())
        median = sorted(distances)[(len(distances) - 1) // 2]
        mine = expected.setdefault((executor.address, epoch), [evidence.WEALTH_ONE, 0, 0])
        if not evidence.crossed(mine[0], ALPHA_PPM, bets):
            mine[0] = evidence.bet(mine[0], median, reference, cap, model.evidence_bet_ppm)
        mine[1], mine[2] = mine[1] + 1, mine[2] + median
        if executor is cheater and evidence.crossed(mine[0], ALPHA_PPM, bets):
            caught_after, caught_epoch = mine[1], epoch
            break
    for (address, epoch), (wealth, checks, total) in expected.items():
        found = record(net, net.actor(address), epoch)
        assert (found.evidence_checks, found.evidence_distance_micro, found.evidence_wealth) == (
            checks, total, wealth)
        assert found.evidence_positions == 3 * checks
    assert caught_after is not None, "the substitute was never caught"
    caught = record(net, cheater, caught_epoch)
    assert caught.evidence_checks == caught_after
    assert caught.evidence_crossed and caught.invalid
    assert invalid_now(net.participant_record(cheater))
    honest_checks = 0
    for actor in net.parts[:-1]:
        for epoch in {e for _, e in expected}:
            clean = record(net, actor, epoch)
            honest_checks += clean.evidence_checks
            assert not clean.evidence_crossed and not clean.invalid
            if clean.evidence_checks >= 5:
                assert clean.evidence_wealth < evidence.WEALTH_ONE  # under H0 it shrinks
        assert not invalid_now(net.participant_record(actor))
    assert honest_checks >= 20


def test_a_cheat_within_the_violation_allowance_is_caught_by_its_violation_evidence():
    """A wrong temperature or seed keeps the real model's logprobs (an honest distance) and
    breaks the sampling rule a little: every check of this executor passes alone (its
    violations within the allowance V) while its violation bet grows to 2/α (both bets
    running, each at α/2); honest executors, without violations, see theirs shrink."""
    net = make_net()
    (model,) = net.query("Models", q.QueryModelsRequest()).models
    assert running_bets(model) == 2
    cheater = net.parts[-1]
    allowed = model.max_rule_violations
    honest = model.reference_distance_micro // 2
    expected: dict[tuple[str, int], list[int]] = {}  # (executor, epoch) -> wealth, checks
    caught_epoch = None
    for i in range(80):
        executor, _, epoch = check_one(net, f"rule-{i}", lambda _e, _c: honest,
                                       lambda e, _c: allowed if e is cheater else 0)
        mine = expected.setdefault((executor.address, epoch), [evidence.WEALTH_ONE, 0])
        mine[0] = evidence.bet_violations(mine[0], allowed if executor is cheater else 0, 3,
                                          model.reference_violations_ppm,
                                          model.violation_bet_ppm)
        mine[1] += 1
        if executor is cheater and evidence.crossed(mine[0], ALPHA_PPM, 2):
            caught_epoch = epoch
            break
    assert caught_epoch is not None, "the rule cheat was never caught"
    for (address, epoch), (wealth, checks) in expected.items():
        found = record(net, net.actor(address), epoch)
        assert (found.evidence_checks, found.evidence_violation_wealth) == (checks, wealth)
        assert found.evidence_crossed == (address == cheater.address and epoch == caught_epoch)
        if address != cheater.address:
            assert found.evidence_violations == 0 and not found.invalid
            assert wealth < evidence.WEALTH_ONE
    caught = record(net, cheater, caught_epoch)
    assert caught.invalid and caught.evidence_violations == allowed * caught.evidence_checks
    assert caught.evidence_wealth < evidence.WEALTH_ONE  # its distances were honest
    assert invalid_now(net.participant_record(cheater))


def test_one_lying_checker_among_three_cannot_push_an_honest_executor_over():
    """Nor with its distances, nor with its violations: each figure is the reports' lower
    median."""
    net = make_net()
    (model,) = net.query("Models", q.QueryModelsRequest()).models
    liar = net.parts[0]
    cap = threshold_micro(model)
    honest = model.reference_distance_micro // 2
    allowed = model.max_rule_violations
    epochs = {check_one(net, f"liar-{i}", lambda _, c: cap if c is liar else honest,
                        lambda _, c: allowed if c is liar else 0)[2]
              for i in range(30)}
    checked = 0
    for actor in net.parts[1:]:
        for epoch in epochs:
            found = record(net, actor, epoch)
            checked += found.evidence_checks
            assert found.evidence_distance_micro == honest * found.evidence_checks
            assert found.evidence_violations == 0
            assert not found.evidence_crossed and not found.invalid
    assert checked > 10


def test_one_report_weighs_at_most_one_plus_three_bets_and_never_zeroes_the_wealth():
    one = evidence.WEALTH_ONE
    # A report at the model's threshold, 300 μ0 away, counts as 4 μ0: a factor of 1 + 3b.
    assert evidence.bet(one, 150_000, 500, 150_000, 900_000) == one * 37 // 10
    assert evidence.bet(one, 0, 500, 150_000, 999_999) > 0
    assert evidence.bet(one, 500, 500, 150_000, 900_000) == one  # at μ0 nothing moves
    assert evidence.bet(one, 10**6, 0, 150_000, 900_000) == one  # no reference: no test
    assert not evidence.crossed(one * 999, 1_000) and evidence.crossed(one * 1_000, 1_000)
    assert not evidence.crossed(one * 10**6, 0)  # α = 0 turns the test off
    # Two bets side by side: each must reach 2/α.
    assert not evidence.crossed(one * 1_999, 1_000, 2) and evidence.crossed(one * 2_000, 1_000, 2)
    # Violations are bet on as millionths against e = μv × positions, clipped so that one
    # report gains at most 1 + 2.7 whatever the bet: a small bet gains as much on a violation.
    assert evidence.bet_violations(one, 1, 8, 1_000, 900_000) == one * 37 // 10
    assert evidence.bet_violations(one, 1, 8, 1_000, 100_000) == one * 37 // 10
    assert evidence.bet_violations(one, 0, 8, 1_000, 100_000) == one * 9 // 10
    assert evidence.bet_violations(one, 5, 8, 0, 900_000) == one  # no reference: no bet
    assert evidence.bet_violations(one, 5, 8, 1_000, 0) == one  # no bet: nothing moves
