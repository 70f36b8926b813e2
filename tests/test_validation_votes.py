"""Votes against a colluding minority, through real signed transactions driven in-process
(docs/design.md §6.5): members outside a vote are refused, a report the vote goes against costs
its reporter, and a coalition flips a vote only when it holds two of its three seats, as often
as the draw gives it those seats."""

from fractions import Fraction

import pytest
from inference_actors import Actor, seal_of, validation_msg
from inference_net import Net
from test_validation_module import (
    FAIL,
    PASS,
    assigned,
    commit_all,
    finished,
    members_total,
    record,
    seed,
    stats,
    task,
    to_height,
    to_tally,
    vote_among,
)

from chain.epochs.params import EpochsParams
from chain.inference.draw import Candidate, draw_order
from chain.scales import PPM
from chain.validation.keeper import BLOCK_VALUE, BOND_ACCOUNT
from chain.validation.seals import window_opening_height
from inferchain_pb.inference.v1.inference_pb2 import INVALIDATED, VALIDATED, Inference
from inferchain_pb.inference.v1.validation_pb2 import (
    FAILED,
    IN_VOTE,
    PASSED,
    MsgClaimRewards,
    ValidationTask,
)

EPOCH = 100
REVEAL = 10
FEE_SHARE_PPM = EpochsParams().validator_fee_share_ppm  # the default share
STEP = -(-PPM // 30)  # one reputation step at the default epochs_to_max


def make_net(participants: int, reputation_ppm: int, epoch: int = EPOCH, **validation) -> Net:
    params = {"validation_window_blocks": 4, "voting_period_blocks": 4, "opening_blocks": 1,
              "reveal_window_blocks": REVEAL, "canary_rate_ppm": 0, **validation}
    net = Net(participants, expiration_blocks=50, extra_state={
        "epochs": {"params": {"epoch_length_blocks": epoch, "poc_window_blocks": 0}},
        "validation": {"params": params, "reputations": [
            {"address": Actor.new(10 + i, 2 + i).address, "reputation_ppm": reputation_ppm}
            for i in range(participants)]}})
    commit_all(net, 1)  # before epoch 1 begins: a commitment must precede its epoch
    to_height(net, 1 + epoch)
    return net


def refused(net: Net, actors: list[Actor], inference: Inference, distance: int) -> None:
    """``actors``, not drawn for the open vote, can neither seal a report nor open one."""
    reports = [(a, validation_msg(a, inference, distance)) for a in actors]
    for result in net.block([a.tx(seal_of(report)) for a, report in reports]):
        assert (result.codespace, result.code) == ("validation", 7), result.log
        assert "not drawn for the vote" in result.log
    for result in net.block([a.tx(report) for a, report in reports]):
        assert (result.codespace, result.code) == ("validation", 7), result.log
        assert "sealed no report" in result.log


def voted(net: Net, inference: Inference, ballots: list[tuple[Actor, object]]) -> None:
    """The drawn voters' ``ballots`` sealed, then opened, and the vote tallied."""
    if ballots:
        results = net.report(ballots)
        assert all(r.code == 0 for r in results), [r.log for r in results]
    to_tally(net, inference.id)


def work(net: Net, actors: list[Actor]) -> dict[str, int]:
    return {a.address: net.account(a).work_balance for a in actors}


def unreported(net: Net, inference_id: str, actors: list[Actor]) -> list[Actor]:
    reported = {r.validator for r in task(net, inference_id).reports}
    return [a for a in actors if a.address not in reported]


def opened_vote(net: Net, name: str, opener_of, before=None) -> tuple:
    """Finishes inferences until the vote that ``opener_of``'s pick opens on one draws
    neither it nor the member ``before(executor, inference)`` returned beside its reports
    (run first on each: reports sealed ahead of the failing one and opened ahead of it in
    the block after the window's sealing); (executor, inference, opener, voters, that). An
    attempt that drew them is voted to its end by the drawn voters passing the output."""
    for attempt in range(20):
        executor, inference = finished(net, f"{name}-{attempt}")
        extra, ahead = before(executor, inference) if before else (None, [])
        opener = opener_of(executor, inference, extra)
        if ahead:
            net.seal(ahead)
        failing = (opener, validation_msg(opener, inference, FAIL))
        net.seal([failing])
        results = net.open_reports(ahead + [failing])
        assert all(r.code == 0 for r in results), [r.log for r in results]
        voters = vote_among(net, inference.id)
        if opener not in voters and extra not in voters:
            return executor, inference, opener, voters, extra
        voted(net, inference, [(v, validation_msg(v, inference, PASS))
                               for v in unreported(net, inference.id, voters)])
    pytest.fail("the opener was drawn in every attempt")


def test_colluders_outside_a_vote_are_refused_and_an_honest_output_stays_validated():
    """Sixteen equal members, four colluding: one opens a vote on an honest output with a
    failing report it was not assigned (the chain cannot refuse it while seeds are secret),
    the other three are refused; the drawn voters keep the output, the executor is paid, and
    at judging the opener's unassigned report makes it lazy."""
    net = make_net(16, PPM, p_min_ppm=200_000)
    used: set[str] = set()

    def opener_of(executor: Actor, inference: Inference, _) -> Actor:
        found = task(net, inference.id)
        pick = next(p for p in net.parts if p is not executor and p.address not in used and
                    p not in assigned(net, found))
        used.add(pick.address)
        return pick

    def honest_checks(executor: Actor, inference: Inference) -> tuple[None, list]:
        checkers = assigned(net, task(net, inference.id))
        return None, [(c, validation_msg(c, inference, PASS)) for c in checkers]

    executor, inference, opener, voters, _ = opened_vote(net, "honest", opener_of, honest_checks)
    developer_before = net.balance(net.developer)
    found = task(net, inference.id)
    # The other three have reported nothing yet (openers of earlier attempts lost their votes).
    colluders = [opener] + [p for p in net.parts if p not in voters and p is not executor
                            and p.address not in used and p not in assigned(net, found)][:3]
    before = work(net, [executor, *net.parts])
    refused(net, colluders[1:], inference, FAIL)
    assert len(task(net, inference.id).reports) == len(found.reports)
    assert task(net, inference.id).seals == []
    voted(net, inference, [(v, validation_msg(v, inference, PASS))
                           for v in unreported(net, inference.id, voters)])
    found = task(net, inference.id)
    assert found.state == PASSED and net.inference(inference.id).status == VALIDATED
    assert stats(net, executor).invalidations == 0
    assert net.balance(net.developer) == developer_before  # no refund
    passers = [r.validator for r in found.reports if r.passed]
    each = inference.cost * FEE_SHARE_PPM // PPM // len(passers)
    after = work(net, [executor, *net.parts])
    assert after[executor.address] == before[executor.address] - each * len(passers) > 0
    for actor in net.parts:
        if actor is not executor:
            assert after[actor.address] - before[actor.address] == \
                (each if actor.address in passers else 0)
    assert stats(net, opener).reputation_ppm == PPM - STEP
    assert all(stats(net, c).reputation_ppm == PPM for c in colluders[1:])
    net.assert_conserved()

    to_height(net, 1 + 2 * EPOCH)
    net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=1, seed=seed(a, 1)))
               for a in net.parts])
    to_height(net, 1 + 2 * EPOCH + REVEAL)
    opened = record(net, opener, 1)
    assert (opened.unassigned_reports, opened.votes_against, opened.lazy) == (1, 1, True)
    # An opener of an earlier attempt that its vote drew made an unassigned window report
    # all the same: it is left out here (the vote's drawing it excuses nothing).
    for actor in colluders[1:] + [v for v in voters if v.address not in used]:
        judged = record(net, actor, 1)
        assert judged.settled and not judged.lazy and judged.unassigned_reports == 0


def test_colluders_cannot_rescue_a_cheating_output():
    """A colluder passes a forged output ahead of the honest check (taken, no say, and
    charged once the vote goes against it); the others are refused once the vote is open;
    the drawn voters invalidate it and the developer is refunded."""
    net = make_net(16, PPM, p_min_ppm=200_000)

    def early_pass(executor: Actor, inference: Inference) -> tuple[Actor, list]:
        found = task(net, inference.id)
        early = next(p for p in reversed(net.parts) if p is not executor and
                     p not in assigned(net, found))
        return early, [(early, validation_msg(early, inference, PASS))]

    def honest_opener(executor: Actor, _: Inference, early: Actor) -> Actor:
        return next(p for p in net.parts if p not in (executor, early))

    executor, inference, opener, voters, early = opened_vote(net, "forged", honest_opener,
                                                              early_pass)
    developer_before = net.balance(net.developer)
    work_before = net.account(executor).work_balance
    colluders = [p for p in net.parts if p not in voters and p not in (executor, opener, early)]
    refused(net, colluders[:3], inference, PASS)
    assert task(net, inference.id).state == IN_VOTE
    voted(net, inference, [(v, validation_msg(v, inference, FAIL, rule_violations=5))
                           for v in unreported(net, inference.id, voters)])
    assert task(net, inference.id).state == FAILED
    assert net.inference(inference.id).status == INVALIDATED
    assert net.balance(net.developer) == developer_before + inference.cost
    assert net.account(executor).work_balance == work_before - inference.cost
    assert stats(net, executor).invalidations == 1
    assert stats(net, early).reputation_ppm == PPM - STEP
    assert record(net, early, 1).votes_against == 1
    for colluder in colluders[:3]:
        assert stats(net, colluder).reputation_ppm == PPM
        assert record(net, colluder, 1).votes_against == 0
    net.assert_conserved()


@pytest.mark.parametrize("honest_output", [True, False])
def test_a_drawn_voter_against_the_outcome_loses_reputation_and_its_fee_share(honest_output):
    """A liar among the drawn voters: failing an honest output or passing a forged one. The
    vote goes against it: it loses a reputation step at once and earns no part of the
    validator fee, and its epoch is not clean; the honest voters keep theirs."""
    net = make_net(5, PPM // 2, epoch=40)
    executor, inference = finished(net, "liar")
    opener = next(p for p in net.parts if p is not executor)
    assert [r.code for r in net.report([(opener, validation_msg(opener, inference, FAIL))])] \
        == [0]
    voters = vote_among(net, inference.id)
    # Failing an honest output, the opener is the liar if drawn (its ballot counts once);
    # passing a forged one, the liar is another voter.
    liar = opener if honest_output and opener in voters else \
        next(v for v in voters if v is not opener)
    honest = [v for v in voters if v is not liar]
    reputations = {a.address: stats(net, a).reputation_ppm for a in net.parts}
    before = work(net, net.parts)
    voted(net, inference, [(v, validation_msg(v, inference, PASS if honest_output else FAIL))
                           for v in honest if v is not opener] +
          [(liar, validation_msg(liar, inference, FAIL if honest_output else PASS))] *
          (liar is not opener))
    assert task(net, inference.id).state == (PASSED if honest_output else FAILED)
    after = work(net, net.parts)
    assert stats(net, liar).reputation_ppm == reputations[liar.address] - STEP
    assert after[liar.address] == before[liar.address]
    assert record(net, liar, 1).votes_against == 1
    each = inference.cost * FEE_SHARE_PPM // PPM // len(honest) if honest_output else 0
    assert each > 0 or not honest_output
    for voter in honest:
        assert stats(net, voter).reputation_ppm == reputations[voter.address]
        assert after[voter.address] - before[voter.address] == each
        assert record(net, voter, 1).votes_against == 0
    to_height(net, 1 + 2 * 40)  # epoch 1's reputations: the liar's epoch was not clean
    assert stats(net, liar).reputation_ppm == reputations[liar.address] - STEP
    for voter in honest:
        assert stats(net, voter).reputation_ppm == reputations[voter.address] + STEP


def seats_probability(weights: dict[str, int], coalition: set[str], seats: int,
                      need: int) -> Fraction:
    """Exact chance that the vote draw (weighted, without replacement, docs/design.md §3.3)
    gives the coalition at least ``need`` of ``seats`` seats."""
    def chance(left: dict[str, int], seats_left: int, held: int) -> Fraction:
        if held >= need:
            return Fraction(1)
        if seats_left == 0 or held + seats_left < need:
            return Fraction(0)
        total = sum(left.values())
        return sum((Fraction(w, total) * chance({a: x for a, x in left.items() if a != addr},
                                                seats_left - 1, held + (addr in coalition))
                    for addr, w in left.items()), Fraction(0))
    return chance(dict(weights), seats, 0)


def test_a_coalition_flips_a_vote_only_with_two_of_three_seats_as_often_as_drawn():
    """Sixteen equal members, four colluding, on outputs of honest and of forging executors:
    colluders open votes on honest outputs and fail them, pass forged ones, and report in
    every vote they are drawn for. A vote where they hold fewer than two seats never flips;
    over the votes, the flip rate matches the exact chance of two seats, 70/455 ≈ 0.154
    (3s² − 2s³ ≈ 0.175 at s = 4/15 for many small members). Vote bonds are off: hundreds
    of votes in one epoch would lock more than the test accounts hold, and the bond does
    not change who sits in a vote."""
    net = make_net(16, PPM, epoch=10_000, p_min_ppm=0, p_max_ppm=0,
                   invalid_after_consecutive=100_000, invalid_min_count=100_000, vote_bond=0)
    colluders = net.parts[:4]
    flips = votes = 0
    for n in range(400):
        honest_output = n % 2 == 0
        executor, inference = finished(net, f"seats-{n}")
        if executor in colluders:
            continue
        opener = colluders[n % 4] if honest_output else \
            next(p for p in net.parts[4:] if p is not executor)
        assert [r.code for r in net.report([(opener, validation_msg(opener, inference,
                                                                     FAIL))])] == [0]
        voters = vote_among(net, inference.id)
        lie = PASS if not honest_output else FAIL
        truth = PASS if honest_output else FAIL
        voted(net, inference, [(v, validation_msg(v, inference,
                                                  lie if v in colluders else truth))
                               for v in voters if v is not opener])
        state = task(net, inference.id).state
        flipped = state == (FAILED if honest_output else PASSED)
        held = sum(v in colluders for v in voters)
        assert state in (PASSED, FAILED)
        assert flipped == (held >= 2), (inference.id, held, state)
        flips += flipped
        votes += 1
    candidates = {p.address: 1 for p in net.parts[:-1]}  # an honest executor left out
    exact = seats_probability(candidates, {c.address for c in colluders}, 3, 2)
    assert exact == Fraction(70, 455)
    rate = flips / votes
    sigma = (float(exact) * (1 - float(exact)) / votes) ** 0.5
    assert abs(rate - float(exact)) < 4 * sigma, (flips, votes, float(exact))


def test_one_heavy_member_never_flips_a_vote_whatever_its_weight():
    """A member with 60 % of the weight is drawn into most votes, and opens each one by
    failing an honest output: one ballot of three, it never invalidates one."""
    net = Net(5, expiration_blocks=50, weights=[600, 100, 100, 100, 100], extra_state={
        "epochs": {"params": {"epoch_length_blocks": 10_000, "poc_window_blocks": 0}},
        "validation": {"params": {"validation_window_blocks": 4, "voting_period_blocks": 4,
                                  "opening_blocks": 1, "reveal_window_blocks": 10,
                                  "canary_rate_ppm": 0}}})
    heavy = net.parts[0]
    drawn = 0
    for n in range(24):
        executor, inference = finished(net, f"heavy-{n}")
        if executor is heavy:
            continue
        assert [r.code for r in net.report([(heavy, validation_msg(heavy, inference,
                                                                    FAIL))])] == [0]
        voters = vote_among(net, inference.id)
        drawn += heavy in voters
        voted(net, inference, [(v, validation_msg(v, inference, PASS))
                               for v in voters if v is not heavy])
        assert task(net, inference.id).state == PASSED
        assert net.inference(inference.id).status == VALIDATED
    assert drawn >= 5, drawn


def test_every_vote_a_sacrificial_member_forces_costs_its_bond_at_the_reveal():
    """One member opens votes on five honest outputs its seed did not assign it (the chain
    cannot tell while seeds are secret): each failing report locks the vote bond. Another,
    assigned, opens one vote and a third, unassigned, never reveals. At the reveal the
    sacrificial member's five bonds are burned and its reputation drops to 0 at once; the
    assigned opener's comes back whatever the vote decided; the silent one's burns when the
    epoch is judged. The price of forcing a vote is the bond plus a reputation step."""
    net = make_net(16, PPM, p_min_ppm=200_000)
    bond = 100_000_000  # validation.vote_bond's default
    fee = 20_000  # what every test tx pays (inference_actors.Actor.tx)
    bank = net.app.modules.bank
    sacrificed, silent = net.parts[1], net.parts[2]

    def coins(raw: bytes) -> int:
        return bank.balance(net.app.store.begin_block(), raw, "ninfer")

    def supply() -> int:
        return bank.supply(net.app.store.begin_block(), "ninfer")

    def force(opener_of, label: str) -> tuple[Actor, Inference]:
        """Finishes inferences until ``opener_of(executor, its task)`` names an opener the
        vote does not draw; it opens that vote with a failing report (its balance paying the
        fees of seal and opening, and the bond), the members assigned the check pass it and
        the drawn voters keep the output."""
        for attempt in range(40):
            executor, inference = finished(net, f"{label}-{attempt}")
            found = task(net, inference.id)
            opener = opener_of(executor, found)
            # Every member the seeds assign makes its check, so that no missed one is lazy.
            checks = [(c, validation_msg(c, inference, PASS)) for c in assigned(net, found)
                      if c is not opener]
            if opener is None:
                if checks:
                    results = net.report(checks)
                    assert all(r.code == 0 for r in results), [r.log for r in results]
                continue
            before = net.balance(opener)
            failing = (opener, validation_msg(opener, inference, FAIL))
            net.seal(checks + [failing])
            results = net.open_reports(checks + [failing])
            assert all(r.code == 0 for r in results), [r.log for r in results]
            assert net.balance(opener) == before - 2 * fee - bond
            voters = vote_among(net, inference.id)
            voted(net, inference, [(v, validation_msg(v, inference, PASS))
                                   for v in unreported(net, inference.id, voters)])
            assert task(net, inference.id).state == PASSED
            if opener not in voters:
                return opener, inference
            drawn[opener.address] = drawn.get(opener.address, 0) + 1  # the vote gave it
        pytest.fail(f"{label}: no inference to open as wanted")

    drawn: dict[str, int] = {}  # votes an opener opened and was then drawn into

    def unassigned(member: Actor):
        return lambda executor, found: None if executor is member or \
            member in assigned(net, found) else member

    def any_assigned(executor: Actor, found) -> Actor | None:
        return next((a for a in assigned(net, found) if a not in (sacrificed, silent)), None)

    forced = [force(unassigned(sacrificed), f"forced-{n}")[1] for n in range(5)]
    honest, _ = force(any_assigned, "assigned")
    force(unassigned(silent), "silent")
    assert coins(BOND_ACCOUNT) == (7 + sum(drawn.values())) * bond
    lost = 5 + drawn.get(sacrificed.address, 0)  # every vote it opened went against it
    assert stats(net, sacrificed).reputation_ppm == max(0, PPM - lost * STEP)
    held = {a.address: net.balance(a) for a in (sacrificed, honest, silent)}
    assert honest not in (sacrificed, silent)

    to_height(net, 1 + 2 * EPOCH)
    supply_before = supply()
    results = net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=1, seed=seed(a, 1)))
                         for a in net.parts if a is not silent])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    # Every bond of the sacrificial member burns, those of the votes that then drew it too
    # (its reports were sealed unassigned before any vote); the assigned opener's come back.
    assert net.balance(sacrificed) == held[sacrificed.address] - fee
    assert stats(net, sacrificed).reputation_ppm == 0
    assert net.balance(honest) == \
        held[honest.address] - fee + (1 + drawn.get(honest.address, 0)) * bond
    assert coins(BOND_ACCOUNT) == (1 + drawn.get(silent.address, 0)) * bond  # until judging
    burned_at_reveal = supply_before - supply()
    assert burned_at_reveal == (len(forced) + drawn.get(sacrificed.address, 0)) * bond
    to_height(net, 1 + 2 * EPOCH + REVEAL)
    # Judging burns the silent member's bond (settlement mints the epoch's rewards then, so
    # supply says nothing here): it leaves the bond account and never reaches its owner.
    assert coins(BOND_ACCOUNT) == 0 and net.balance(silent) == held[silent.address]
    opened = record(net, sacrificed, 1)
    # Its window reports were all unassigned, those of the votes that then drew it too.
    assert opened.lazy and \
        opened.unassigned_reports == len(forced) + drawn.get(sacrificed.address, 0)
    assert not record(net, honest, 1).lazy
    print(f"\nforcing {len(forced)} votes cost the sacrificial member {len(forced) * bond} "
          f"ninfer in bonds ({bond} each, burned at its reveal), its reputation ({PPM} ppm → "
          f"{max(0, PPM - lost * STEP)} as the votes went against it, 0 at the reveal) and "
          f"the "
          f"epoch's rewards; the assigned opener got its bond back")


def vote_opened_late(label: str, delay: int) -> tuple[Net, ValidationTask]:
    """A fresh network of sixteen equal members (the same genesis and blocks whatever the
    arguments) on which ``label``'s inference finishes and a member seals a failing report,
    then opens it ``delay`` blocks after the window's reports first open; the vote's task."""
    net = make_net(16, PPM, opening_blocks=8, reveal_window_blocks=30, vote_bond=0)
    executor, inference = finished(net, label)
    opener = next(p for p in net.parts if p is not executor)
    report = validation_msg(opener, inference, FAIL)
    net.seal([(opener, report)])
    to_height(net, window_opening_height(task(net, inference.id)) - 1 + delay)
    assert net.one(opener.tx(report)).code == 0
    found = task(net, inference.id)
    assert found.state == IN_VOTE and len(found.voters) == 3
    return net, found


def test_a_vote_draws_the_same_voters_whenever_its_failing_report_is_opened():
    """The opener of a vote picks the block its opening lands in, anywhere in the opening
    period, and a member proposing one of those blocks knows its value in advance: were the
    voters drawn from that block's value, a coalition could hold its opening for a block whose
    value gave it two seats. They are drawn from the value of the window's first opening
    height instead, fixed once no window report can be sealed: opened at once or seven blocks
    later, the vote has the same voters, and those the draw gives for that value."""
    for label in ("late-a", "late-b", "late-c"):
        net, first = vote_opened_late(label, 0)
        height = window_opening_height(first)
        state = net.app.store.begin_block()
        value = net.app.modules.validation.block_value(state, height)
        weights, _ = members_total(net, first.epoch)
        candidates = [Candidate(a, w, PPM) for a, w in weights.items() if a != first.executor]
        assert list(first.voters) == draw_order(first.inference_id + "/vote", value,
                                                candidates)[:3]
        for delay in (3, 7):
            late, later = vote_opened_late(label, delay)
            assert later.voters == first.voters, (label, delay)
        # What each block the opening could land in would have given: timing would matter.
        state = late.app.store.begin_block()
        by_block = {tuple(draw_order(first.inference_id + "/vote",
                                     late.app.modules.validation.block_value(state, h),
                                     candidates)[:3])
                    for h in range(height, height + 8)}
        assert len(by_block) > 1


def test_the_values_votes_draw_from_are_kept_only_as_long_as_a_vote_may_open():
    """One key a block, and only for the blocks a vote can still draw from: the records stay
    bounded however long the chain runs."""
    net = make_net(4, PPM)
    state = net.app.store.begin_block()
    kept = net.app.modules.validation.params(state).block_values_kept
    heights = [int.from_bytes(key[len(BLOCK_VALUE):], "big")
               for key, _ in state.iterate(BLOCK_VALUE)]
    assert heights == list(range(net.height - kept + 1, net.height + 1))
    assert net.app.modules.validation.block_value(state, net.height) == \
        net.app.modules.inference.block_hash(state, net.height)
