"""The validation module through real signed transactions, driven in-process block by block:
seeds, sampled checks, votes, invalidation with refunds, INVALID status, reputation, lazy
validators and canaries (docs/design.md §6)."""

import decimal
import hashlib
import math
import random

import grpc
import pytest
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from inference_actors import (
    DTYPE,
    MODEL_ID,
    WEIGHTS,
    Actor,
    canary_steps,
    finish_msg,
    genesis_models,
    seal_of,
    signed_figures,
    start_msg,
    validation_msg,
)
from inference_net import T0, Net

from chain.epochs.settlement import split_by_weight
from chain.inference import payload
from chain.inference.artifact import ArtifactStep
from chain.inference.draw import Candidate, draw_order
from chain.inference.keeper import invalid_now
from chain.query import QueryError
from chain.scales import PPM
from chain.validation import canary, judging
from chain.validation.params import ValidationParams
from chain.validation.sampling import (
    CheckShares,
    check_probability_ppm,
    expected_checks_ppm,
    must_check,
    seed_hash,
    threshold,
)
from chain.validation.seals import window_opening_height
from chain.validation.verdict import (
    allowed_violations,
    passes,
    threshold_micro,
    vote_upholds_failure,
    weighted_median,
)
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    FINISHED,
    INVALIDATED,
    VALIDATED,
    VOTING,
    Inference,
    MsgUpdateParticipant,
    ServedModel,
)
from inferchain_pb.inference.v1.validation_pb2 import (
    FAILED,
    IN_VOTE,
    OPEN,
    PASSED,
    UNCHECKED,
    MsgClaimCanary,
    MsgClaimRewards,
    MsgCommitSeed,
    MsgSealValidation,
    ReportSeal,
    ValidationReport,
    ValidationTask,
)

EPOCH = 10
WINDOW = 4
VOTING_PERIOD = 4
OPENING = 1
REVEAL = 10
PASS = 1_000  # micro-nats, under the default threshold of 0.05 nats
FAIL = 3_000_000


def make_net(participants: int = 5, reputations: list[dict] | None = None,
             weights: list[int] | None = None, models: list[dict] | None = None,
             serves: list[tuple[str, ...]] | None = None,
             inference_params: dict | None = None, **validation: int) -> Net:
    params = {"validation_window_blocks": WINDOW, "voting_period_blocks": VOTING_PERIOD,
              "opening_blocks": OPENING, "reveal_window_blocks": REVEAL, "canary_rate_ppm": 0,
              **validation}
    return Net(participants, expiration_blocks=50, weights=weights, models=models,
               serves=serves, inference_params=inference_params, extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0}},
        "validation": {"params": params, "reputations": reputations or []}})


def seed(actor: Actor, epoch: int) -> bytes:
    return hashlib.sha256(f"{actor.address}/{epoch}".encode()).digest()


def to_height(net: Net, height: int) -> None:
    while net.height < height:
        net.block([])


def to_epoch(net: Net, epoch: int) -> None:
    to_height(net, 1 + epoch * EPOCH)


def judge_epoch_zero(net: Net, reveal_window: int) -> None:
    """Into epoch 1, every member reveals its epoch-0 seed, on to the height epoch 0 is
    judged at with a reveal window of ``reveal_window`` blocks."""
    to_epoch(net, 1)
    net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=0, seed=seed(a, 0)))
               for a in net.parts])
    to_height(net, 1 + EPOCH + reveal_window)


def commit_all(net: Net, epoch: int, actors: list[Actor] | None = None) -> None:
    results = net.block([a.tx(MsgCommitSeed(creator=a.address, epoch=epoch,
                                            seed_hash=seed_hash(seed(a, epoch))))
                         for a in actors or net.parts])
    assert all(r.code == 0 for r in results), [r.log for r in results]


def finished(net: Net, inference_id: str, output: list[int] | None = None) -> tuple[Actor,
                                                                                    Inference]:
    agent, executor, start = net.start(inference_id, max_tokens=8)
    results = net.block([agent.tx(start),
                         executor.tx(finish_msg(executor, start, output or [7, 8, 9]))])
    assert [r.code for r in results] == [0, 0], [r.log for r in results]
    return executor, net.inference(inference_id)


def task(net: Net, inference_id: str) -> ValidationTask:
    """The task by inference id, or by the label of a request ``net.start`` built."""
    return net.query("ValidationTask", q.QueryValidationTaskRequest(
        inference_id=net.ids.get(inference_id, inference_id))).task


def record(net: Net, actor: Actor, epoch: int):
    return net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
        address=actor.address, epoch=epoch)).record


def stats(net: Net, actor: Actor):
    return net.query("ExecutorStats", q.QueryExecutorStatsRequest(address=actor.address)).stats


def members_total(net: Net, epoch: int) -> tuple[dict[str, int], int]:
    members = net.query("Epoch", q.QueryEpochRequest(epoch=epoch)).members
    return {m.address: m.weight for m in members.members}, members.total_weight


def assigned(net: Net, found: ValidationTask) -> list[Actor]:
    """Members whose seed says they must check this task (what each decides privately)."""
    shares = CheckShares(net.query("Epoch", q.QueryEpochRequest(epoch=found.epoch)).members)
    return [a for a in net.parts if shares.owes(seed(a, found.epoch), found, a.address)]


def vote_among(net: Net, inference_id: str) -> list[Actor]:
    return [net.actor(v) for v in task(net, inference_id).voters]


def to_tally(net: Net, inference_id: str) -> None:
    """On to the height a vote every voter answered is tallied at, if it was not yet: a vote
    never closes while the window's reports may still be opened."""
    if task(net, inference_id).state == IN_VOTE:
        to_height(net, task(net, inference_id).vote_open_until)


def test_seeds_are_committed_ahead_and_revealed_only_after_the_epoch():
    net = make_net()
    a, b = net.parts[:2]
    outsider = net.developer
    commit = MsgCommitSeed(creator=a.address, epoch=5, seed_hash=seed_hash(seed(a, 5)))
    result = net.one(a.tx(commit))
    assert (result.codespace, result.code) == ("validation", 3) and "epoch" in result.log
    result = net.one(outsider.tx(MsgCommitSeed(creator=outsider.address, epoch=0,
                                               seed_hash=b"x" * 32)))
    assert (result.codespace, result.code) == ("validation", 2)
    commit_all(net, 1, [a, b])
    result = net.one(a.tx(MsgCommitSeed(creator=a.address, epoch=1, seed_hash=b"y" * 32)))
    assert (result.codespace, result.code) == ("validation", 4)
    reveal = MsgClaimRewards(creator=a.address, epoch=1, seed=seed(a, 1))
    to_epoch(net, 1)
    result = net.one(a.tx(reveal))
    assert (result.codespace, result.code) == ("validation", 3) and "not over" in result.log
    to_epoch(net, 2)
    result = net.one(a.tx(MsgClaimRewards(creator=a.address, epoch=1, seed=seed(b, 1))))
    assert (result.codespace, result.code) == ("validation", 5)
    assert net.one(a.tx(reveal)).code == 0
    assert net.one(a.tx(reveal)).code == 4
    to_height(net, 1 + 2 * EPOCH + REVEAL)
    late = net.one(b.tx(MsgClaimRewards(creator=b.address, epoch=1, seed=seed(b, 1))))
    assert (late.codespace, late.code) == ("validation", 9)
    kept = net.query("SeedCommitment", q.QuerySeedCommitmentRequest(address=a.address, epoch=1))
    assert kept.commitment.seed == seed(a, 1)


def test_a_newcomer_is_checked_by_every_member_and_passes():
    net = make_net(participants=3)  # genesis members of epoch 0, without a reputation yet
    commit_all(net, 0)
    executor, inference = finished(net, "new-1")
    found = task(net, "new-1")
    assert (found.state, found.p_ppm, found.epoch) == (OPEN, 1_000_000, 0)
    assert found.expected_checks_ppm == 2_000_000  # both others: a share of 1/2 each
    checkers = assigned(net, found)
    assert {c.address for c in checkers} == {p.address for p in net.parts} - {executor.address}
    reports = [(c, validation_msg(c, inference, PASS)) for c in checkers]
    # One of the two sealed: the other could still copy its report, so it opens only once
    # the window's sealing ended.
    first, opener = reports[0]
    net.seal(reports[:1])
    early = net.one(first.tx(opener))
    assert (early.codespace, early.code) == ("validation", 9), early.log
    assert f"opens from height {found.deadline + 1}" in early.log
    # Both sealed: nobody is left to copy, so both open at once, within the window.
    net.seal(reports[1:])
    sealed = task(net, "new-1")
    assert (sealed.state, sealed.reports, len(sealed.seals)) == (OPEN, [], 2)
    assert sealed.window_sealed_height == net.height
    assert net.inference("new-1").status == FINISHED  # nothing shows before the openings
    results = net.open_reports(reports)
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert net.height == sealed.window_sealed_height + 1 <= found.deadline
    assert net.inference("new-1").status == VALIDATED
    # Every checker reported: the window closes at once, as of its last opening height.
    closed = task(net, "new-1")
    assert (closed.state, closed.closed_height) == (PASSED, found.open_until)
    assert stats(net, executor).epoch_passed == 1


def test_a_vote_in_a_window_every_checker_sealed_is_tallied_as_its_last_voter_reports():
    """Every other member sealed its report on a newcomer's inference, so they open at once;
    one fails it and its vote draws the three, whose opened reports are their ballots. No
    report can come any more, so the vote is tallied in the block of the openings, long
    before the window's openings would have ended, and the vote counts against the
    dissenter."""
    net = make_net(participants=4, validation_window_blocks=30, opening_blocks=10,
                   voting_period_blocks=10, reveal_window_blocks=60,
                   max_expected_checks_ppm=3_000_000)
    commit_all(net, 0)
    executor, inference = finished(net, "all-sealed")
    found = task(net, "all-sealed")
    others = [p for p in net.parts if p is not executor]
    dissenter = others[0]
    reports = [(c, validation_msg(c, inference, FAIL if c is dissenter else PASS))
               for c in others]
    net.seal(reports)
    results = net.open_reports(reports)
    assert all(r.code == 0 for r in results), [r.log for r in results]
    tallied = task(net, "all-sealed")
    assert set(tallied.voters) == {c.address for c in others}
    assert (tallied.state, net.inference("all-sealed").status) == (PASSED, VALIDATED)
    assert net.height < found.deadline < found.open_until
    assert record(net, dissenter, 0).votes_against == 1
    net.assert_conserved()


def test_bad_reports_are_refused_and_change_nothing():
    net = make_net(participants=3, validation_window_blocks=20, opening_blocks=8,
                   reveal_window_blocks=40)
    commit_all(net, 1)
    to_epoch(net, 1)
    executor, inference = finished(net, "bad-1")
    other = next(p for p in net.parts if p is not executor)
    honest = validation_msg(other, inference, PASS)
    forged = validation_msg(other, inference, PASS)
    forged.distance_micro += 1  # no longer what the node key signed
    unknown = validation_msg(other, Inference(id="no-such", output_hash=inference.output_hash,
                                              output_ids=inference.output_ids), PASS)
    by_executor = validation_msg(executor, inference, PASS)
    by_developer = validation_msg(net.developer, inference, PASS)
    mismatch = validation_msg(other, Inference(id=inference.id, output_hash=b"\1" * 32,
                                               output_ids=inference.output_ids), PASS)
    # Seals: nobody but a member other than the executor seals a report on a known task.
    for msg, sender, code in [(unknown, other, 6), (by_executor, executor, 7),
                              (by_developer, net.developer, 2)]:
        result = net.one(sender.tx(seal_of(msg)))
        assert (result.codespace, result.code) == ("validation", code), result.log
    assert (task(net, "bad-1").seals, task(net, "bad-1").reports) == ([], [])
    net.seal([(other, honest)])
    again = net.one(other.tx(seal_of(honest)))
    assert (again.codespace, again.code) == ("validation", 8)
    sealed = task(net, "bad-1")
    assert [s.validator for s in sealed.seals] == [other.address] and sealed.reports == []
    # Openings, once the window's sealing ended: each is checked as a report was.
    to_height(net, sealed.deadline)
    for msg, sender, code in [(forged, other, 11), (unknown, other, 6),
                              (by_executor, executor, 7), (by_developer, net.developer, 2),
                              (mismatch, other, 10)]:
        result = net.one(sender.tx(msg))
        assert (result.codespace, result.code) == ("validation", code), result.log
    assert task(net, "bad-1") == sealed
    assert net.one(other.tx(honest)).code == 0
    opened = task(net, "bad-1")
    assert opened.seals == [] and [r.validator for r in opened.reports] == [other.address]
    again = net.one(other.tx(validation_msg(other, inference, PASS)))
    assert (again.codespace, again.code) == ("validation", 8)
    third = next(p for p in net.parts if p not in (executor, other))
    closed = net.one(third.tx(seal_of(validation_msg(third, inference, PASS))))
    assert (closed.codespace, closed.code) == ("validation", 9)
    assert task(net, "bad-1").reports == opened.reports


def test_a_report_shows_nothing_to_copy_until_its_window_closes():
    """Until the sealing ends the chain shows who sealed, never what; a copied seal opens for
    nobody."""
    net = make_net(participants=4, opening_blocks=3, reveal_window_blocks=14)
    commit_all(net, 0)
    executor, inference = finished(net, "copy-1")
    first, second, copier = [p for p in net.parts if p is not executor]
    reports = [(a, validation_msg(a, inference, FAIL)) for a in (first, second)]
    net.seal(reports)
    (_, first_report), (_, second_report) = reports
    assert first_report.salt != second_report.salt
    seals = {s.validator: s.seal for s in task(net, "copy-1").seals}
    assert seals == {a.address: seal_of(r).seal for a, r in reports}
    assert seals[first.address] != seals[second.address]  # the same figures, measured twice
    # Without the salt the likely figures cannot be tried against a seal.
    assert seals[first.address] != payload.validation_seal(second_report.salt,
                                                           signed_figures(first_report))
    copied = MsgSealValidation(creator=copier.address, inference_id=inference.id,
                               seal=seals[first.address])
    assert net.one(copier.tx(copied)).code == 0  # a seal is bytes: the chain cannot tell
    found = task(net, "copy-1")
    to_height(net, found.deadline)  # the last height reports are sealed at
    feed = net.query("ValidationTasks", q.QueryValidationTasksRequest(
        from_height=found.finish_height, to_height=found.finish_height)).tasks
    for shown in (task(net, "copy-1"), next(t for t in feed if t.inference_id == inference.id)):
        assert (shown.state, list(shown.reports), list(shown.voters)) == (OPEN, [], [])
        assert [s.validator for s in shown.seals] == [first.address, second.address,
                                                      copier.address]
    assert [f.name for f in ReportSeal.DESCRIPTOR.fields] == ["validator", "seal", "height"]
    assert net.inference("copy-1").status == FINISHED
    results = net.open_reports(reports)  # the figures show now: two failures, a vote
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert task(net, "copy-1").state == IN_VOTE
    # The copier knows the first report's figures and salt now, and still cannot open the
    # copied seal: the seal covers its sealer's address.
    as_copied = validation_msg(copier, inference, FAIL)
    as_copied.salt = first_report.salt
    for attempt in (as_copied, validation_msg(copier, inference, FAIL)):
        result = net.one(copier.tx(attempt))
        assert (result.codespace, result.code) == ("validation", 13), result.log
    assert net.height <= found.open_until
    after = task(net, "copy-1")
    assert [r.validator for r in after.reports] == [first.address, second.address]
    assert [s.validator for s in after.seals] == [copier.address]


def test_refused_seals_and_openings_change_nothing():
    """Every refused seal or opening leaves the task and the inference exactly as they would
    be had it never been sent: a node that took the same block without it agrees."""
    net = make_net(participants=6, validation_window_blocks=6, opening_blocks=5,
                   reveal_window_blocks=20, voters_per_vote=2)
    executor, inference = finished(net, "refused")
    opener, passer, idle, *others = [p for p in net.parts if p is not executor]
    found = task(net, "refused")
    inference_id = net.ids["refused"]

    def refused(sender: Actor, msg, code: int) -> None:
        twin = net.replica()
        result = net.one(sender.tx(msg))
        assert (result.codespace, result.code) == ("validation", code), result.log
        taken = net.blocks[-1]
        twin.finalize_block(abci.RequestFinalizeBlock(
            txs=taken.txs[:1], height=taken.height, time=taken.time, hash=taken.hash,
            proposer_address=taken.proposer_address))  # the beacon proof alone
        twin.commit(abci.RequestCommit())
        untouched = (twin.queries.call("/inference.v1.Query/ValidationTask",
                                       q.QueryValidationTaskRequest(inference_id=inference_id)
                                       ).task,
                     twin.queries.call("/inference.v1.Query/Inference", q.QueryInferenceRequest(
                         id=inference_id)).inference.status)
        assert (task(net, "refused"), net.inference("refused").status) == untouched

    late = others[0]
    short = seal_of(validation_msg(late, inference, PASS))
    short.seal = short.seal[:31]
    refused(late, short, 13)
    failing = validation_msg(opener, inference, FAIL)
    passing = validation_msg(passer, inference, PASS)
    net.seal([(opener, failing), (passer, passing),
              (idle, validation_msg(idle, inference, PASS))])
    refused(opener, seal_of(failing), 8)
    refused(opener, failing, 9)  # the window still takes seals
    to_height(net, found.deadline)
    refused(late, validation_msg(late, inference, PASS), 7)  # nothing sealed to open
    refused(late, seal_of(validation_msg(late, inference, PASS)), 9)
    salted = validation_msg(passer, inference, PASS)
    salted.salt = hashlib.sha256(b"another salt").digest()
    refused(passer, salted, 13)
    refused(passer, validation_msg(passer, inference, PASS + 1), 13)
    assert net.height == found.open_until - 1
    results = net.block([opener.tx(failing), passer.tx(passing)])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    voting = task(net, "refused")
    assert voting.state == IN_VOTE and [s.validator for s in voting.seals] == [idle.address]
    refused(idle, validation_msg(idle, inference, PASS), 9)  # its openings are over
    # Two voters: one of them at least has no ballot yet (the opener's report would be its
    # ballot, were it drawn), so the vote stays open.
    outsider = next(p for p in [*others, passer] if p.address not in voting.voters)
    refused(outsider, seal_of(validation_msg(outsider, inference, PASS)), 7)
    assert net.height <= voting.vote_deadline


def reveal_and_judge(net: Net, epoch: int) -> None:
    """Every member reveals its seed of ``epoch``, and blocks pass until the epoch is judged."""
    to_epoch(net, epoch + 1)
    net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=epoch, seed=seed(a, epoch)))
               for a in net.parts])
    to_height(net, 1 + (epoch + 1) * EPOCH + REVEAL - 1)


def owed_by_both(label: str) -> tuple[Net, Inference, ValidationTask, list[Actor]]:
    """A three-member network in epoch 0 and a newcomer's inference, which both members
    other than its executor owe a check."""
    net = make_net(participants=3)
    commit_all(net, 0)
    _, inference = finished(net, label)
    found = task(net, label)
    checkers = assigned(net, found)
    assert len(checkers) == 2
    return net, inference, found, checkers


def test_a_member_that_seals_and_never_opens_is_judged_lazy():
    """A seal fixes a report but is no check until it is opened: left unopened, it is missed."""
    net, inference, found, (opener, sealer) = owed_by_both("unopened")
    reports = [(a, validation_msg(a, inference, PASS)) for a in (opener, sealer)]
    net.seal(reports)
    assert [r.code for r in net.open_reports(reports[:1])] == [0]
    to_height(net, found.open_until)
    closed = task(net, "unopened")
    assert closed.state == PASSED and closed.seals == []
    assert [r.validator for r in closed.reports] == [opener.address]
    reveal_and_judge(net, 0)
    judged = record(net, sealer, 0)
    assert judged.settled and judged.lazy, judged
    assert (judged.required, judged.done, judged.missed, judged.unassigned_reports) == (1, 0, 1, 0)
    honest = record(net, opener, 0)
    assert not honest.lazy and honest.required == honest.done == 1


def test_an_assigned_member_that_reports_only_as_a_drawn_voter_missed_its_check():
    """Votes open only after the window, so a ballot sealed after the deadline is no check."""
    net, inference, found, (opener, voter) = owed_by_both("voted-only")
    assert [r.code for r in net.report([(opener, validation_msg(opener, inference,
                                                                 FAIL))])] == [0]
    assert set(task(net, "voted-only").voters) == {opener.address, voter.address}
    ballot = [(voter, validation_msg(voter, inference, FAIL))]
    assert [r.code for r in net.report(ballot)] == [0]
    to_tally(net, "voted-only")
    voted = task(net, "voted-only")
    assert voted.state == FAILED
    assert {r.validator: r.sealed_height > found.deadline for r in voted.reports} == {
        opener.address: False, voter.address: True}
    assert net.height < 1 + EPOCH, "the vote must fall in epoch 0"
    reveal_and_judge(net, 0)
    judged = record(net, voter, 0)
    assert judged.settled and judged.lazy, judged
    assert (judged.required, judged.done, judged.missed) == (1, 0, 1)
    assert (judged.missed_votes, judged.unassigned_reports) == (0, 0)  # it did vote
    honest = record(net, opener, 0)
    assert not honest.lazy and honest.required == honest.done == 1


def test_ballots_open_before_the_vote_sealing_ends_only_once_every_voter_sealed():
    """An early ballot would show the voters still sealing what to vote: none is left then."""
    net = make_net(voting_period_blocks=6, reveal_window_blocks=12)
    commit_all(net, 0)
    executor, inference = finished(net, "ballots")
    opener = next(p for p in net.parts if p is not executor)
    assert [r.code for r in net.report([(opener, validation_msg(opener, inference,
                                                                 FAIL))])] == [0]
    found = task(net, "ballots")
    assert found.state == IN_VOTE
    ballots = [(v, validation_msg(v, inference, FAIL)) for v in vote_among(net, "ballots")
               if v is not opener]
    (early, early_ballot), *rest = ballots
    assert rest, "at least two drawn voters besides the opener"
    net.seal([(early, early_ballot)])

    def pending(voter: Actor) -> list[str]:
        return [t.inference_id for t in net.query("PendingVotes", q.QueryPendingVotesRequest(
            voter=voter.address)).tasks]

    assert pending(early) == [] and all(pending(v) == [inference.id] for v, _ in rest)
    result = net.one(early.tx(early_ballot))
    assert (result.codespace, result.code) == ("validation", 9), result.log
    assert task(net, "ballots").reports == found.reports
    net.seal(rest)
    results = net.block([v.tx(ballot) for v, ballot in ballots])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert net.height < found.vote_deadline  # the sealing would have gone on
    closed = task(net, "ballots")
    assert closed.state == FAILED and closed.seals == []
    assert {r.validator for r in closed.reports} == {opener.address} | {
        v.address for v, _ in ballots}
    assert net.inference("ballots").status == INVALIDATED


def test_a_failure_opens_a_vote_and_an_upheld_one_refunds_the_developer():
    net = make_net()
    commit_all(net, 1)
    to_epoch(net, 1)
    executor, inference = finished(net, "cheat-1")
    developer_before = net.balance(net.developer)
    work_before = net.account(executor).work_balance
    first = next(p for p in net.parts if p is not executor)
    assert [r.code for r in net.report([(first, validation_msg(first, inference, FAIL))])] == [0]
    found = task(net, "cheat-1")
    assert found.state == IN_VOTE and net.inference("cheat-1").status == VOTING
    voters = vote_among(net, "cheat-1")
    assert len(voters) == 3 and executor not in voters
    pending = net.query("PendingVotes", q.QueryPendingVotesRequest(voter=voters[0].address))
    assert [t.inference_id for t in pending.tasks] == (
        [] if voters[0] is first else [net.ids["cheat-1"]])
    # One voter lies ("pass"); the others measured what the first validator measured.
    liar, *honest = [v for v in voters if v is not first]
    ballots = [(liar, validation_msg(liar, inference, PASS))] + \
        [(v, validation_msg(v, inference, FAIL, rule_violations=5)) for v in honest]
    net.seal(ballots)
    pending = net.query("PendingVotes", q.QueryPendingVotesRequest(voter=liar.address))
    assert list(pending.tasks) == []  # sealed: nothing left to do but open it
    results = net.open_reports(ballots)
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert task(net, "cheat-1").state == FAILED
    assert net.inference("cheat-1").status == INVALIDATED
    assert net.balance(net.developer) == developer_before + inference.cost
    assert net.account(executor).work_balance == work_before - inference.cost
    executor_stats = stats(net, executor)
    assert (executor_stats.invalidations, executor_stats.consecutive_invalidations) == (1, 1)
    net.assert_conserved()


def test_one_lying_voter_cannot_invalidate_an_honest_output():
    net = make_net()
    commit_all(net, 1)
    to_epoch(net, 1)
    executor, inference = finished(net, "honest-1")
    liar = next(p for p in net.parts if p is not executor)
    assert [r.code for r in net.report([(liar, validation_msg(liar, inference, FAIL))])] == [0]
    voters = [v for v in vote_among(net, "honest-1") if v is not liar]
    # If the liar was not drawn, one drawn voter lies too: still only half the weight.
    lying_voter = voters[0] if len(voters) == 3 else None
    results = net.report([(v, validation_msg(v, inference, FAIL if v is lying_voter else PASS))
                          for v in voters])
    assert all(r.code == 0 for r in results)
    assert task(net, "honest-1").state == PASSED
    assert net.inference("honest-1").status == VALIDATED
    assert stats(net, executor).invalidations == 0


def test_a_vote_closes_at_its_deadline_and_silent_voters_are_recorded():
    net = make_net()
    commit_all(net, 1)
    to_epoch(net, 1)
    executor, inference = finished(net, "quiet-1")
    first = next(p for p in net.parts if p is not executor)
    assert [r.code for r in net.report([(first, validation_msg(first, inference, FAIL))])] == [0]
    found = task(net, "quiet-1")
    # Two of the three drawn voters say fail (the first reporter counts only if drawn); the
    # third stays silent.
    voters = vote_among(net, "quiet-1")
    others = [v for v in voters if v is not first]
    speaking = others[:2 - (first in voters)]
    ballots = [(v, validation_msg(v, inference, FAIL)) for v in speaking]
    net.seal(ballots)
    to_height(net, found.vote_deadline)
    assert task(net, "quiet-1").state == IN_VOTE
    # With a voter silent, the ballots open only once the vote's sealing ends, and the vote
    # is tallied when its openings end.
    results = net.open_reports(ballots)
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert net.height == found.vote_deadline + 1 == found.vote_open_until
    assert task(net, "quiet-1").state == FAILED  # the only reports say fail
    for voter in others:
        if voter not in speaking:
            assert record(net, voter, 1).missed_votes == 1


def test_repeated_invalidations_make_an_executor_invalid_until_the_epoch_ends():
    net = make_net(participants=4, invalid_after_consecutive=2, voters_per_vote=1)
    commit_all(net, 1)
    to_epoch(net, 1)
    cheater = net.parts[0]
    # Only the cheater's requests are sent, finished and checked together, so the two
    # invalidations fit in epoch 1 (each takes a window, its opening and a vote).
    inferences = finish_together(net, executed_by(net, cheater, 2, "rep"))
    judge = next(p for p in net.parts if p is not cheater)
    # Both tasks have the same deadline: the judge's reports open in one block.
    results = net.report([(judge, validation_msg(judge, i, FAIL)) for i in inferences])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    ballots = [(v, validation_msg(v, i, FAIL)) for i in inferences
               for v in vote_among(net, i.id) if v is not judge]
    if ballots:  # each vote's one voter sealed: its ballot opens in the next block
        net.seal(ballots)
        results = net.block([v.tx(ballot) for v, ballot in ballots])
        assert all(r.code == 0 for r in results), [r.log for r in results]
    for inference in inferences:
        to_tally(net, inference.id)
    assert [task(net, i.id).state for i in inferences] == [FAILED, FAILED]
    assert stats(net, cheater).consecutive_invalidations == 2
    assert net.height < 1 + 2 * EPOCH, "the invalidations must fall in epoch 1"
    assert invalid_now(net.participant_record(cheater))
    for i in range(30):
        assert cheater.address not in net.draw(f"after-{i}")
    to_epoch(net, 2)
    assert not invalid_now(net.participant_record(cheater))
    assert stats(net, cheater).reputation_ppm == 0
    assert any(cheater.address in net.draw(f"later-{i}") for i in range(10))


def test_reputation_sets_the_sampling_rate_and_grows_with_clean_epochs():
    net = make_net(participants=3, epochs_to_max=4)
    trusted = net.parts[0].address
    net2 = make_net(participants=3, epochs_to_max=4, reputations=[
        {"address": trusted, "reputation_ppm": 1_000_000}])
    commit_all(net2, 1)
    to_epoch(net2, 1)
    for i in range(40):
        executor, _ = finished(net2, f"trust-{i}")
        if executor.address == trusted:
            assert task(net2, f"trust-{i}").p_ppm == 10_000
            break
    else:
        pytest.fail("the trusted participant was never drawn")
    assert stats(net, net.parts[1]).reputation_ppm == 0
    to_epoch(net, 1)  # epoch 0: a member, no misses, no invalidations
    assert stats(net, net.parts[1]).reputation_ppm == 250_000
    to_epoch(net, 2)
    assert stats(net, net.parts[1]).reputation_ppm == 500_000
    assert check_probability_ppm(500_000, 10_000, 1_000_000) == 505_000


@pytest.mark.parametrize("reveal", [REVEAL, EPOCH + 5])  # a window may outlast an epoch
def test_a_validator_that_skips_its_checks_is_caught_at_seed_reveal(reveal):
    net = make_net(participants=3, reveal_window_blocks=reveal)
    commit_all(net, 1)
    to_epoch(net, 1)
    lazy, honest, silent = net.parts
    # Finished together, the three tasks share a window: their checks open in one block.
    inferences = finish_together(net, [f"lazy-{i}" for i in range(3)])
    results = net.report([(c, validation_msg(c, inference, PASS)) for inference in inferences
                          for c in assigned(net, task(net, inference.id)) if c is not lazy])
    assert all(r.code == 0 for r in results)
    assert net.height < 1 + 2 * EPOCH, "the checks must all fall in epoch 1"
    to_epoch(net, 2)
    net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=1, seed=seed(a, 1)))
               for a in (lazy, honest)])
    to_height(net, 1 + 2 * EPOCH + reveal - 2)
    assert not record(net, lazy, 1).settled
    net.block([])
    lazy_record, honest_record, silent_record = (record(net, a, 1) for a in net.parts)
    assert lazy_record.settled and lazy_record.lazy and lazy_record.missed > 0
    assert lazy_record.done == 0 and lazy_record.required == lazy_record.missed
    assert honest_record.settled and not honest_record.lazy
    assert honest_record.required == honest_record.done > 0
    assert silent_record.lazy and silent_record.committed and not silent_record.revealed


def test_members_owe_checks_only_of_the_models_they_serve():
    """Two models, two members serving each: a member owes no check of the other model's
    inferences (it has no ML node to score them with), so leaving them is no laziness; each
    model's servers share its checks, only they may seal a report on it, and only they are
    drawn to vote on it."""
    other = f"{MODEL_ID}/other"
    serves = [(MODEL_ID,), (MODEL_ID,), (other,), (other,)]
    net = make_net(participants=4, models=[*genesis_models(),
                                           {**genesis_models()[0], "id": other}], serves=serves)
    servers = {model: {a.address for a, (m,) in zip(net.parts, serves, strict=True) if m == model}
               for model in (MODEL_ID, other)}
    commit_all(net, 1)
    to_epoch(net, 1)
    members = net.query("Epoch", q.QueryEpochRequest(epoch=1)).members.members
    assert {m.address: tuple(m.model_ids) for m in members} == {
        a.address: models for a, models in zip(net.parts, serves, strict=True)}
    # Finished together, the four tasks share a window: their checks open in one block.
    txs, starts = [], []
    for i, model in enumerate([MODEL_ID, other] * 2):
        agent, executor, start = net.start(f"two-models-{i}", max_tokens=8, model_id=model)
        txs += [agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))]
        starts.append((model, executor, start))
    results = net.block(txs)
    assert all(r.code == 0 for r in results), [r.log for r in results]
    reports = []
    for model, executor, start in starts:
        inference = net.inference(start.inference_id)
        # A newcomer's inference is owed two checks, more than its model's one other server
        # can make: that one owes it for certain, and nobody else owes it at all.
        checkers = assigned(net, task(net, inference.id))
        assert {c.address for c in checkers} == servers[model] - {executor.address}
        reports += [(c, validation_msg(c, inference, PASS)) for c in checkers]
    assert all(r.code == 0 for r in net.report(reports))
    assert net.height < 1 + 2 * EPOCH, "the inferences must all fall in epoch 1"
    to_epoch(net, 2)
    net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=1, seed=seed(a, 1)))
               for a in net.parts])
    to_height(net, 1 + 2 * EPOCH + REVEAL)
    judged = {a.address: record(net, a, 1) for a in net.parts}
    for found in judged.values():
        assert found.settled and not found.lazy and found.required == found.done, found
    for model in (MODEL_ID, other):  # two inferences of each, one check each
        assert sum(judged[a].required for a in servers[model]) == 2
    # A failure report on the other model's inference opens a vote among its servers only.
    agent, executor, start = net.start("vote", max_tokens=8, model_id=other)
    results = net.block([agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))])
    assert [r.code for r in results] == [0, 0], [r.log for r in results]
    inference = net.inference(start.inference_id)
    # A member without the model cannot score the output: its seal is refused, and leaves
    # the task as it was.
    outsider = net.actor(next(iter(servers[MODEL_ID])))
    refused = net.one(outsider.tx(seal_of(validation_msg(outsider, inference, PASS))))
    assert (refused.codespace, refused.code) == ("validation", 7), refused.log
    assert f"served model {other} at its start" in refused.log
    assert (task(net, inference.id).seals, task(net, inference.id).window_sealed_height) == \
        ([], 0)
    reporter = net.actor(next(iter(servers[other] - {executor.address})))
    assert [r.code for r in net.report([(reporter, validation_msg(reporter, inference,
                                                                   FAIL))])] == [0]
    assert [v.address for v in vote_among(net, inference.id)] == [reporter.address]


def test_a_model_no_other_member_serves_is_drawn_for_nobody_until_a_second_one_does():
    """A model only one member serves would have nobody to check its outputs, so its server
    could answer anything and be paid: the draw names nobody for it (the Draw query says why
    and a start naming its server is refused, moving nothing) until another member serves it
    from an epoch's start; then its inferences are started and owed checks as usual."""
    other = f"{MODEL_ID}/other"
    net = make_net(participants=3, models=[*genesis_models(),
                                           {**genesis_models()[0], "id": other}],
                   serves=[(MODEL_ID,), (MODEL_ID,), (MODEL_ID, other)])
    sole, second = net.parts[2], net.parts[1]
    with pytest.raises(QueryError) as refused:
        net.draw_at("anything", net.height, other)
    assert refused.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert "too few validators" in refused.value.message
    assert net.draw_at("anything", net.height)  # the model the others serve is drawn as usual

    def start_of_sole(label: str):
        return start_msg(net.parts[0], net.developer, label, sole.address, net.height,
                         T0 + net.height, [1, 2, 3, 4], max_tokens=8, model_id=other)

    before = net.balance(net.developer)
    result = net.one(net.parts[0].tx(start := start_of_sole("sole")))
    assert result.code == 10 and "too few validators" in result.log, result.log
    assert net.balance(net.developer) == before
    with pytest.raises(QueryError):
        net.inference(start.inference_id)
    declare = MsgUpdateParticipant(creator=second.address, url="http://127.0.0.1:9001",
                                   node_pubkey=second.register().node_pubkey,
                                   models=[*second.register().models, ServedModel(
                                       model_id=other, weights_sha256=WEIGHTS, dtype=DTYPE)])
    assert net.one(second.tx(declare)).code == 0
    # The members and their models are fixed at the epoch's start; until then, still nobody.
    assert net.one(net.parts[0].tx(start_of_sole("declared"))).code == 10
    to_epoch(net, 1)
    agent, executor, start = net.start("checked", max_tokens=8, model_id=other)
    assert executor in (sole, second)
    validator = second if executor is sole else sole
    results = net.block([agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))])
    assert [r.code for r in results] == [0, 0], [r.log for r in results]
    checkers = assigned(net, task(net, start.inference_id))
    assert [c.address for c in checkers] == [validator.address]


@pytest.mark.parametrize("share_ppm, served", [(333_333, False), (250_000, True)])
def test_a_model_served_by_too_light_a_share_of_the_weight_is_drawn_for_nobody(share_ppm,
                                                                               served):
    """Two members serving a model check each other, and nobody else checks them: if they
    were one coalition, its outputs would be checked by itself. So the model's servers must
    hold the param's share of the weight (a third by default, more than a coalition the
    protocol tolerates) for either to be drawn: here they hold a quarter."""
    other = f"{MODEL_ID}/other"
    net = make_net(participants=4, weights=[300, 300, 100, 100],
                   models=[*genesis_models(), {**genesis_models()[0], "id": other}],
                   serves=[(MODEL_ID,), (MODEL_ID,), (other,), (other,)],
                   inference_params={"min_model_server_share_ppm": share_ppm})
    if not served:
        with pytest.raises(QueryError) as refused:
            net.draw_at("light", net.height, other)
        assert f"{share_ppm} ppm of the weight" in refused.value.message
        return
    agent, executor, start = net.start("light", max_tokens=8, model_id=other)
    assert executor in net.parts[2:]
    results = net.block([agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))])
    assert [r.code for r in results] == [0, 0], [r.log for r in results]


def test_a_network_of_one_member_is_served_with_nobody_to_check_it():
    """One member is the whole network, consensus included: there is no second member to
    ask, and its draws name it as before."""
    net = make_net(participants=1)
    agent, executor, start = net.start("alone", max_tokens=8)
    assert agent is executor is net.parts[0]
    results = net.block([agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))])
    assert [r.code for r in results] == [0, 0], [r.log for r in results]


def judged_records(net: Net, tasks: int) -> list:
    """Epoch 0 with ``tasks`` checked inferences, the lazy member checking none of its share;
    the members' records once judged, and how many blocks after the reveal window's last one
    the judgement took."""
    commit_all(net, 0)
    lazy, honest, _ = net.parts
    # Finished together, the tasks share a window: their checks open in one block.
    inferences = finish_together(net, [f"judged-{i}" for i in range(tasks)])
    results = net.report([(c, validation_msg(c, inference, PASS)) for inference in inferences
                          for c in assigned(net, task(net, inference.id)) if c is not lazy])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert net.height < 1 + EPOCH, "the checks must all fall in epoch 0"
    to_epoch(net, 1)
    net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=0, seed=seed(a, 0)))
               for a in (lazy, honest)])
    to_height(net, 1 + EPOCH + REVEAL - 1)
    blocks = 0
    while not record(net, lazy, 0).settled:
        blocks += 1
        net.block([])
    return [record(net, a, 0) for a in net.parts], blocks


def test_judging_validators_is_spread_over_blocks_and_counts_the_same(monkeypatch):
    full, blocks = judged_records(make_net(participants=3), tasks=3)
    assert blocks == 0, "a small epoch is judged in the block its reveal window ends"
    monkeypatch.setattr(judging, "PAIRS_PER_BLOCK", 2)  # one task a block: two revealed seeds
    spread, blocks = judged_records(make_net(participants=3), tasks=3)
    assert blocks == 2  # three tasks: the reveal window's last block and two more
    assert spread == full
    assert full[0].lazy and full[0].missed > 0 and not full[1].lazy
    assert full[1].required == full[1].done > 0


def canary_finished(net: Net, label: str, steps: list[ArtifactStep] | None = None
                    ) -> tuple[Actor, Inference, bytes]:
    """An inference its executor recorded as a canary (every inference is one at a rate of
    10^6 ppm): the artifact (``steps``, made up unless given) shifted, the real one returned
    beside it."""
    agent, executor, start = net.start(label, max_tokens=8)
    output = [s.token_id for s in steps] if steps else [7, 8, 9]
    plain = finish_msg(executor, start, output, steps=steps)
    model = net.query("Model", q.QueryModelRequest(id=start.model_id)).model
    steps = canary_steps(plain.artifact, canary.key(seed(executor, 0), start.inference_id),
                         model)
    results = net.block([agent.tx(start), executor.tx(finish_msg(executor, start, output,
                                                                 steps=steps))])
    assert [r.code for r in results] == [0, 0], [r.log for r in results]
    return executor, net.inference(label), plain.artifact


def claim(executor: Actor, inference_id: str, key: bytes) -> bytes:
    return executor.tx(MsgClaimCanary(creator=executor.address, inference_id=inference_id,
                                      key=key))


def test_a_blind_pass_of_a_canary_is_lazy_once_the_claim_shows_the_real_artifact_passes():
    """The executor records a canary's artifact shifted: the careful member fails it, the
    blind one passes it. The claim, once a vote opened, puts the real artifact on record and
    a fresh vote passes it: the executor is paid, the blind member is lazy at judging."""
    net = make_net(participants=3, canary_rate_ppm=PPM, reveal_window_blocks=14,
                   canary_claim_blocks=3)
    commit_all(net, 0)
    executor, shifted, real = canary_finished(net, "canary-1")
    blind, careful = [p for p in net.parts if p is not executor]
    developer_before = net.balance(net.developer)
    key = canary.key(seed(executor, 0), shifted.id)
    early = net.one(claim(executor, shifted.id, key))
    assert (early.codespace, early.code) == ("validation", 7) and "open" in early.log
    results = net.report([(blind, validation_msg(blind, shifted, PASS)),
                          (careful, validation_msg(careful, shifted, FAIL))])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    voting = task(net, "canary-1")
    assert voting.state == IN_VOTE and len(voting.reports) == 2
    assert voting.vote_open_until == voting.closed_height + 3, "held open for the claim"
    stranger = net.one(claim(blind, shifted.id, key))
    assert (stranger.codespace, stranger.code) == ("validation", 7)
    assert net.one(claim(executor, shifted.id, key)).code == 0
    claimed = task(net, "canary-1")
    assert claimed.state == IN_VOTE and not claimed.reports and claimed.canary_key == key
    assert [r.validator for r in claimed.canary_reports] == [blind.address, careful.address]
    assert claimed.canary_distance_micro >= 2 * threshold_micro(
        net.query("Model", q.QueryModelRequest(id=shifted.model_id)).model)
    assert net.inference("canary-1").artifact == real
    again = net.one(claim(executor, shifted.id, key))
    assert (again.codespace, again.code) == ("validation", 12)
    result = net.report([(v, validation_msg(v, net.inference("canary-1"), PASS))
                         for v in vote_among(net, "canary-1")])
    assert all(r.code == 0 for r in result), [r.log for r in result]
    assert task(net, "canary-1").state == PASSED
    assert net.inference("canary-1").status == VALIDATED
    assert stats(net, executor).invalidations == 0
    assert net.balance(net.developer) == developer_before
    judge_epoch_zero(net, 14)
    assert record(net, blind, 0).canaries_passed == 1 and record(net, blind, 0).lazy
    assert record(net, careful, 0).canaries_caught == 1 and not record(net, careful, 0).lazy
    assert not record(net, executor, 0).lazy, record(net, executor, 0)
    net.assert_conserved()


def test_a_canary_claimed_early_or_late_has_its_fresh_vote_drawn_among_the_same_voters():
    """The executor picks the block of its claim within ``canary_claim_blocks``, and the
    claim opens the fresh vote on the real artifact: were its voters drawn from that block's
    value, an executor that proposes blocks (or whose accomplices do) could time the claim
    for voters that pass a bad real output. They come from the window's first opening
    height's value, so a claim in the first block of the period or four blocks later draws
    the same voters."""
    voters = []
    for wait in (0, 4):
        net = make_net(participants=8, canary_rate_ppm=PPM, reveal_window_blocks=20,
                       canary_claim_blocks=6, voting_period_blocks=7)
        commit_all(net, 0)
        executor, shifted, real = canary_finished(net, "canary-timed")
        careful = next(p for p in net.parts if p is not executor)
        results = net.report([(careful, validation_msg(careful, shifted, FAIL))])
        assert all(r.code == 0 for r in results), [r.log for r in results]
        to_height(net, task(net, "canary-timed").open_until + wait)
        key = canary.key(seed(executor, 0), shifted.id)
        assert net.one(claim(executor, shifted.id, key)).code == 0
        claimed = task(net, "canary-timed")
        assert net.inference("canary-timed").artifact == real and len(claimed.voters) == 3
        state = net.app.store.begin_block()
        value = net.app.modules.validation.block_value(state, window_opening_height(claimed))
        weights, _ = members_total(net, claimed.epoch)
        assert list(claimed.voters) == draw_order(
            claimed.inference_id + "/canary-vote", value,
            [Candidate(a, w, PPM) for a, w in weights.items() if a != executor.address])[:3]
        voters.append(list(claimed.voters))
    assert voters[0] == voters[1]


def test_a_canary_shifted_too_little_to_fail_an_honest_rescore_makes_nobody_lazy():
    """Seven of eight positions have no alternative to move: the shifted artifact lies
    within two thresholds of the real one, where an honest re-score may pass it, so the
    pass before the claim is no evidence of laziness."""
    net = make_net(participants=3, canary_rate_ppm=PPM, reveal_window_blocks=14,
                   canary_claim_blocks=3)
    commit_all(net, 0)
    steps = [ArtifactStep(t, -0.01, (t,), (-0.01,)) for t in range(20, 27)]
    steps.append(ArtifactStep(30, -0.5, (30, 31, 32, 33, 34), (-0.5, -1.5, -2.5, -3.5, -4.5)))
    executor, shifted, real = canary_finished(net, "canary-weak", steps)
    assert shifted.artifact != real
    blind, careful = [p for p in net.parts if p is not executor]
    results = net.report([(a, validation_msg(a, shifted, PASS)) for a in (blind, careful)])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    to_height(net, task(net, "canary-weak").open_until)
    key = canary.key(seed(executor, 0), shifted.id)
    assert net.one(claim(executor, shifted.id, key)).code == 0
    model = net.query("Model", q.QueryModelRequest(id=shifted.model_id)).model
    weak = task(net, "canary-weak")
    assert 0 < weak.canary_distance_micro < 2 * threshold_micro(model)
    results = net.report([(v, validation_msg(v, net.inference("canary-weak"), PASS))
                          for v in vote_among(net, "canary-weak")])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    assert task(net, "canary-weak").state == PASSED
    judge_epoch_zero(net, 14)
    for member in (blind, careful, executor):
        judged = record(net, member, 0)
        assert judged.canaries_passed == 0 and not judged.lazy, judged


def test_an_unclaimed_canary_and_a_claim_its_seed_does_not_back_make_the_executor_lazy():
    """Planting canaries is owed: a canary its executor never claims, and a claim with a key
    its seed does not give (taken while the seed is secret), both show at judging."""
    net = make_net(participants=3, canary_rate_ppm=PPM, reveal_window_blocks=14,
                   canary_claim_blocks=3)
    commit_all(net, 0)
    silent, _, _ = canary_finished(net, "canary-silent")
    liar, lied, _ = canary_finished(net, "canary-lied")
    to_height(net, task(net, "canary-lied").open_until)
    assert task(net, "canary-lied").state == UNCHECKED
    assert net.one(claim(liar, lied.id, bytes(32))).code == 0
    to_height(net, task(net, "canary-silent").closed_height + 4)
    late = net.one(claim(silent, net.ids["canary-silent"],
                         canary.key(seed(silent, 0), net.ids["canary-silent"])))
    assert (late.codespace, late.code) == ("validation", 9)
    judge_epoch_zero(net, 14)
    missed = {a.address: record(net, a, 0) for a in net.parts}
    assert missed[liar.address].false_canary_claims == 1 and missed[liar.address].lazy
    assert missed[silent.address].canary_claims_missed >= 1 and missed[silent.address].lazy


def test_a_claim_must_match_the_revealed_seed_and_win_the_lottery():
    """Once the executor's seed is out, a claim whose key it does not give is refused at
    once; so is any key that does not make the inference a canary at the task's rate."""
    net = make_net(participants=3, canary_rate_ppm=PPM, reveal_window_blocks=14,
                   canary_claim_blocks=3)
    commit_all(net, 0)
    to_height(net, EPOCH - 1)
    executor, shifted, _ = canary_finished(net, "canary-late")
    to_epoch(net, 1)
    assert net.one(executor.tx(MsgClaimRewards(creator=executor.address, epoch=0,
                                                seed=seed(executor, 0)))).code == 0
    to_height(net, task(net, "canary-late").open_until)
    wrong, short = net.block([claim(executor, shifted.id, bytes(32)),
                              claim(executor, shifted.id, b"key")])
    assert (wrong.codespace, wrong.code) == ("validation", 12) and "seed" in wrong.log
    assert (short.codespace, short.code) == ("validation", 12)
    assert net.one(claim(executor, shifted.id,
                         canary.key(seed(executor, 0), shifted.id))).code == 0
    assert task(net, "canary-late").canary_claim_height == net.height
    net.assert_conserved()


def test_window_without_checks_leaves_the_inference_unchecked():
    net = make_net(participants=3, p_max_ppm=10_000, p_min_ppm=0)
    to_epoch(net, 1)
    executor, inference = finished(net, "skip-1")
    found = task(net, "skip-1")
    to_height(net, found.open_until - 1)
    assert task(net, "skip-1").state == OPEN  # its seals, had there been any, may open
    to_height(net, found.open_until)
    assert task(net, "skip-1").state == UNCHECKED
    assert net.inference("skip-1").status == FINISHED


def test_the_sampling_rule_owes_each_inference_a_bounded_number_of_checks_split_by_weight():
    """Over many inference ids: an inference of check probability p is owed −ln(1 − p)
    checks, at most two, whatever the number of members; each member's share follows its
    weight; and the share checked by nobody is at most 1 − p (e^−2 past the cap)."""
    rng = random.Random(7)
    cap = ValidationParams().max_expected_checks_ppm
    n = 8_000
    for members in (3, 15, 63):  # the others: the executor is left out of the total
        weights = [300 if m == 0 else 100 for m in range(members)]
        seeds = [rng.randbytes(32) for _ in weights]
        for p_ppm in (10_000, 500_000, PPM):
            checks_ppm = expected_checks_ppm(p_ppm, cap)
            assert checks_ppm == min(cap, int(-math.log1p(-p_ppm / PPM) * PPM)) \
                if p_ppm < PPM else cap
            expected = sum(min(1.0, checks_ppm / PPM * w / sum(weights)) for w in weights)
            counted, nobody, per_member = 0, 0, [0] * members
            for i in range(n):
                hits = [must_check(s, f"inf-{i}", checks_ppm, w, sum(weights))
                        for s, w in zip(seeds, weights, strict=True)]
                counted += sum(hits)
                nobody += not any(hits)
                per_member = [c + h for c, h in zip(per_member, hits, strict=True)]
            assert expected <= checks_ppm / PPM + 1e-9 and checks_ppm <= 2 * PPM
            assert abs(counted / n - expected) < 4 * math.sqrt(expected / n) + 1e-9, \
                (members, p_ppm, counted / n, expected)
            unchecked = max(1 - p_ppm / PPM, math.exp(-2))
            assert nobody / n <= unchecked + 4 * math.sqrt(unchecked / n), (members, p_ppm)
            if p_ppm == 500_000 and members == 63:  # small shares: in proportion to weight
                ratio = per_member[0] / (sum(per_member[1:]) / (members - 1))
                assert abs(ratio - 3) < 0.6, ratio
    assert threshold(2 * PPM, 1, 2) == 1 << 64  # a share of 1/2 owes both checks
    assert threshold(2 * PPM, 1, 4) == 1 << 63
    assert threshold(0, 1, 10) == 0
    assert expected_checks_ppm(0, cap) == 0 and expected_checks_ppm(PPM, 0) == 0


def test_the_assignment_is_the_same_integer_on_every_node_whatever_its_decimal_settings():
    """Nodes agree on who checks: m is computed in a private 40-digit decimal context and the
    threshold in integers, so a process whose global decimal context differs (precision,
    rounding) gets the same figures; they are the exact floors of the definitions."""
    cap = ValidationParams().max_expected_checks_ppm
    cases = [(p, w, total) for p in (1, 10_000, 505_000, 864_664, 999_999, PPM)
             for w, total in ((1, 3), (7, 100), (300, 6_300), (10**12, 3 * 10**12 + 1))]
    before = [(expected_checks_ppm(p, cap), threshold(expected_checks_ppm(p, cap), w, total))
              for p, w, total in cases]
    with decimal.localcontext() as other:
        other.prec, other.rounding = 6, decimal.ROUND_UP
        after = [(expected_checks_ppm(p, cap),
                  threshold(expected_checks_ppm(p, cap), w, total)) for p, w, total in cases]
    assert before == after
    assert expected_checks_ppm(500_000, cap) == 693_147  # ln 2 = 0.6931471805…
    assert expected_checks_ppm(10_000, cap) == 10_050  # −ln 0.99 = 0.0100503358…


def test_an_executor_learns_nothing_of_its_next_check_from_the_checks_it_saw():
    """During the epoch an executor sees, on chain, which of its finished inferences each
    member reported on; the seed behind them stays secret until the epoch is over. Those
    reports tell it nothing about the next inference: over many members' seeds, the chance
    that a member checks the next one is q whether or not it checked each of the last two."""
    rng = random.Random(11)
    checks_ppm, weight, total = 2 * PPM, 1, 6  # q = 1/3
    q = threshold(checks_ppm, weight, total) / 2**64
    seen: dict[tuple[bool, bool], list[bool]] = {}
    for _ in range(30_000):
        seed = rng.randbytes(32)
        past = tuple(must_check(seed, f"inf-{i}", checks_ppm, weight, total) for i in (1, 2))
        seen.setdefault(past, []).append(must_check(seed, "inf-3", checks_ppm, weight, total))
    assert len(seen) == 4
    for past, nexts in seen.items():
        rate = sum(nexts) / len(nexts)
        assert abs(rate - q) < 4 * math.sqrt(q * (1 - q) / len(nexts)), (past, rate)


def test_a_start_drawn_before_its_executor_became_invalid_is_still_accepted():
    """INVALID applies to draws seeded from the height it began: a transfer agent that drew
    the executor before (its request already served) still gets its start accepted."""
    net = make_net(participants=3, invalid_after_consecutive=1, voters_per_vote=1)
    commit_all(net, 1)
    to_epoch(net, 1)
    cheater, inference = finished(net, "first")
    drawn_at = net.height
    agent = next(p for p in net.parts if p is not cheater)
    pending_id = next(f"pending-{i}" for i in range(100)
                      if net.drawn(agent, f"pending-{i}")[0] == cheater.address)
    pending = start_msg(agent, net.developer, pending_id, cheater.address, drawn_at,
                        T0 + drawn_at, [1, 2, 3, 4])
    judge = agent
    assert [r.code for r in net.report([(judge, validation_msg(judge, inference, FAIL))])] == [0]
    ballots = [(v, validation_msg(v, inference, FAIL)) for v in vote_among(net, inference.id)
               if v is not judge]
    if ballots:
        assert [r.code for r in net.report(ballots)] == [0]
    to_tally(net, inference.id)
    assert invalid_now(net.participant_record(cheater))
    assert net.one(agent.tx(pending)).code == 0
    assert all(cheater.address not in net.draw(f"after-{i}") for i in range(20))


def test_the_verdict_allows_violations_by_length_and_takes_the_weighted_median():
    assert [allowed_violations(2, 16, n) for n in (8, 128, 1024, 2048)] == [2, 4, 18, 34]
    fail = ValidationReport(ids_match=True, distance_micro=10, rule_violations=3, weight=1)
    clean = ValidationReport(ids_match=True, distance_micro=10, rule_violations=0, weight=1)
    assert not passes(fail, allowed_violations(2, 16, 8), 150_000)
    assert passes(fail, allowed_violations(2, 16, 128), 150_000)
    # Equal weights split evenly: the lower median keeps the output; more weight decides.
    assert not vote_upholds_failure([fail, clean], 2, 150_000)
    heavy = ValidationReport(ids_match=False, weight=3)
    assert vote_upholds_failure([heavy, clean, clean], 2, 150_000)
    assert weighted_median([(5, 1), (1, 1), (9, 2)]) == 5


# Seed commitments come before the epoch they cover.

def finish_together(net: Net, ids: list[str]) -> list[Inference]:
    """Starts and finishes these inferences in one block."""
    txs = []
    for inference_id in ids:
        agent, executor, start = net.start(inference_id, max_tokens=8)
        txs += [agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))]
    assert all(r.code == 0 for r in net.block(txs))
    return [net.inference(i) for i in ids]


def executed_by(net: Net, actor: Actor, count: int, prefix: str) -> list[str]:
    """Requests that ``Net.start`` now gives ``actor`` to execute."""
    return [i for i in (f"{prefix}-{n}" for n in range(200))
            if net.serving(i)[1] is actor][:count]


def check_assigned(net: Net, inferences: list[Inference], skipper: Actor) -> None:
    """Every member but ``skipper`` reports a pass on the checks its seed assigns: sealed at
    once, opened when the window's sealing ends (the inferences finished together, so they
    share a window)."""
    reports = [(c, validation_msg(c, inference, PASS)) for inference in inferences
               for c in assigned(net, task(net, inference.id)) if c is not skipper]
    assert all(r.code == 0 for r in net.report(reports))


def settlement(net: Net, epoch: int):
    return net.query("EpochSettlement", q.QueryEpochSettlementRequest(epoch=epoch)).settlement


def test_a_seed_committed_after_its_epoch_began_is_refused_and_its_member_is_paid_nothing():
    """A member that skips epoch 1's checks and commits its seed only once the epoch is under
    way (its first block, a later one, its last one) is refused every time: without a seed
    committed ahead it has nothing to reveal, so it is judged lazy, its work coins are
    burned and its reward is withheld. The members that committed during epoch 0 owe the
    checks from the epoch's first block on and are paid their full share."""
    net = make_net(participants=3)
    *honest, late = net.parts
    commit_all(net, 1, honest)
    late_commit = MsgCommitSeed(creator=late.address, epoch=1,
                                seed_hash=seed_hash(seed(late, 1)))
    to_height(net, EPOCH)
    refused = [net.one(late.tx(late_commit))]  # epoch 1's first block
    inferences = finish_together(net, executed_by(net, late, 2, "late") +
                                 executed_by(net, honest[0], 1, "a") +
                                 executed_by(net, honest[1], 1, "b"))
    assert inferences[0].finish_height == 1 + EPOCH + 1  # owed from the epoch's start
    check_assigned(net, inferences, late)
    refused.append(net.one(late.tx(late_commit)))
    to_height(net, 2 * EPOCH - 1)
    refused.append(net.one(late.tx(late_commit)))  # epoch 1's last block
    assert net.height == 2 * EPOCH
    assert [(r.codespace, r.code) for r in refused] == [("validation", 3)] * 3
    assert "for epoch 2 only" in refused[-1].log
    work = {a.address: net.account(a).work_balance for a in net.parts}
    assert all(work.values())

    to_epoch(net, 2)
    claims = net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=1, seed=seed(a, 1)))
                        for a in net.parts])
    assert [(r.codespace, r.code) for r in claims] == [("", 0), ("", 0), ("validation", 5)]
    balances = {a.address: net.balance(a) for a in net.parts}
    to_height(net, 1 + 2 * EPOCH + REVEAL - 1)
    late_record = record(net, late, 1)
    assert late_record.settled and late_record.lazy and not late_record.committed
    for actor in honest:
        honest_record = record(net, actor, 1)
        assert not honest_record.lazy and honest_record.required == honest_record.done > 0
    settled = settlement(net, 1)
    rewards = {r.address: r for r in settled.rewards}
    weights, _ = members_total(net, 1)
    shares = split_by_weight(settled.emission, weights)
    assert not rewards[late.address].paid and rewards[late.address].reward_coins == 0
    assert rewards[late.address].work_coins == work[late.address] > 0
    assert settled.work_burned == work[late.address]
    assert settled.withheld == shares[late.address] > 0
    assert net.balance(late) == balances[late.address]
    for actor in honest:
        paid = rewards[actor.address]
        assert paid.paid and paid.reward_coins == shares[actor.address] > 0
        assert net.balance(actor) == balances[actor.address] + work[actor.address] + \
            shares[actor.address]
    net.assert_conserved()


def test_genesis_members_commit_for_epoch_zero_until_its_first_inference_finishes():
    """Epoch 0 has no epoch before it: its commitments are taken from its first block until
    the first inference finishes, so every seed still precedes every task it is judged on. A
    genesis member that commits later is refused and forfeits epoch 0 like one that never
    committed."""
    net = make_net(participants=3, weights=[100, 100, 100])
    *honest, late = net.parts
    commit_all(net, 0, honest)
    inferences = finish_together(net, executed_by(net, late, 1, "late") +
                                 executed_by(net, honest[0], 1, "a"))
    refused = net.one(late.tx(MsgCommitSeed(creator=late.address, epoch=0,
                                            seed_hash=seed_hash(seed(late, 0)))))
    assert (refused.codespace, refused.code) == ("validation", 3)
    check_assigned(net, inferences, late)
    to_epoch(net, 1)
    claims = net.block([a.tx(MsgClaimRewards(creator=a.address, epoch=0, seed=seed(a, 0)))
                        for a in net.parts])
    assert [r.code for r in claims] == [0, 0, 5]
    to_height(net, 1 + EPOCH + REVEAL - 1)
    assert record(net, late, 0).lazy and not record(net, late, 0).committed
    for actor in honest:  # reputation 0: every member checks every other's inference
        assert not record(net, actor, 0).lazy and record(net, actor, 0).required == \
            record(net, actor, 0).done == 1 + (actor is honest[1])
    rewards = {r.address: r for r in settlement(net, 0).rewards}
    assert [rewards[a.address].paid for a in net.parts] == [True, True, False]
    assert rewards[late.address].work_coins > 0 and rewards[late.address].reward_coins == 0
