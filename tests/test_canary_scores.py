"""A claimed canary is settled by the scores of the checks that failed its shifted artifact.

Each report commits the hash of the scores it was measured from; once the executor claims
the canary, a member whose report failed the shifted artifact opens its scores and the chain
measures them against the real artifact. When every such member's pass, the claim's fresh
vote closes PASSED with no ballot: its drawn voters owe nothing, so none of them can save a
re-score by passing, unread, a real artifact everyone knew would pass. Scores that fail the
real artifact settle nothing: the vote decides, and the reporter whose scores it went
against pays a reputation step, and a checker that never opens its scores has missed a
vote. Played in process through FinalizeBlock.
"""

from inference_actors import Actor, validation_msg
from inference_net import Net
from test_validation_module import (
    PASS,
    assigned,
    canary_finished,
    claim,
    commit_all,
    judge_epoch_zero,
    make_net,
    record,
    seed,
    stats,
    task,
    to_height,
    to_tally,
    vote_among,
)

from chain.auth import address
from chain.inference import artifact
from chain.scales import PPM
from chain.validation import canary, logprob_scores
from chain.validation.verdict import threshold_micro
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import VALIDATED, Inference
from inferchain_pb.inference.v1.validation_pb2 import (
    IN_VOTE,
    PASSED,
    MsgOpenScores,
)

CLAIM_BLOCKS = 3
# Checks a newcomer's inference is owed: enough that every other member is assigned it.
EVERYONE = 10 * PPM


def scores_of(data: bytes) -> bytes:
    """The scores of a validator whose logprobs are those of the artifact ``data``."""
    _, steps = artifact.decode(data)
    return logprob_scores.encode(logprob_scores.of_artifact(steps))


def open_scores(member: Actor, inference_id: str, scores: bytes) -> bytes:
    return member.tx(MsgOpenScores(creator=member.address, inference_id=inference_id,
                                   scores=scores))


def canary_checked_by_all(participants: int, label: str
                          ) -> tuple[Net, Actor, Inference, bytes, list[Actor]]:
    """A network of newcomers whose every other member is assigned each inference, and a
    canary finished on it: the net, the executor, the inference with its shifted artifact,
    the real artifact and the members assigned to check it."""
    net = make_net(participants=participants, canary_rate_ppm=PPM, reveal_window_blocks=14,
                   canary_claim_blocks=CLAIM_BLOCKS, max_expected_checks_ppm=EVERYONE)
    commit_all(net, 0)
    executor, shifted, real = canary_finished(net, label)
    return net, executor, shifted, real, assigned(net, task(net, label))


def test_a_canary_its_checkers_scores_pass_closes_without_its_voters():
    net, executor, shifted, real, checkers = canary_checked_by_all(5, "canary-scores")
    blind, careful = checkers[:2]
    scores = scores_of(real)
    measured = canary.distance_micro(real, shifted.artifact)  # the careful re-score's figure
    results = net.report([(blind, validation_msg(blind, shifted, PASS)),
                          (careful, validation_msg(careful, shifted, measured, scores=scores))])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    inference_id = shifted.id
    early = net.one(open_scores(careful, inference_id, scores))
    assert (early.codespace, early.code) == ("validation", 9), early.log  # not claimed yet
    to_height(net, task(net, "canary-scores").open_until)
    key = canary.key(seed(executor, 0), inference_id)
    assert net.one(claim(executor, inference_id, key)).code == 0
    claimed = task(net, "canary-scores")
    assert claimed.state == IN_VOTE and claimed.voters and not claimed.reports

    # Hostile openings change nothing.
    refusals = net.block([
        open_scores(careful, inference_id, scores + b"\x00"),  # not what it committed
        open_scores(blind, inference_id, scores),  # it passed the shifted artifact
        open_scores(executor, inference_id, scores),  # never a check of its own
        open_scores(net.developer, inference_id, scores),  # no participant
        open_scores(careful, "f" * 64, scores),  # no such task
    ])
    assert [(r.codespace, r.code) for r in refusals] == [
        ("validation", 13), ("validation", 7), ("validation", 7), ("validation", 2),
        ("validation", 6)], [r.log for r in refusals]
    assert task(net, "canary-scores") == claimed

    opened = net.one(open_scores(careful, inference_id, scores))
    assert opened.code == 0, opened.log
    done = task(net, "canary-scores")
    assert done.state == PASSED and net.inference("canary-scores").status == VALIDATED
    report, = done.reports
    assert (report.validator, report.from_scores, report.passed) == (careful.address, True, True)
    assert report.distance_micro < threshold_micro(net.query(
        "Model", q.QueryModelRequest(id=shifted.model_id)).model)
    # The validator fee share went to the check that caught the shift.
    work = net.app.modules.inference.work_at(net.app.store.begin_block(), done.finish_height,
                                             address.decode(careful.address))
    assert work > 0
    again = net.one(open_scores(careful, inference_id, scores))
    assert (again.codespace, again.code) == ("validation", 9)
    assert stats(net, executor).invalidations == 0

    judge_epoch_zero(net, 14)
    assert record(net, blind, 0).canaries_passed == 1 and record(net, blind, 0).lazy
    assert record(net, careful, 0).canaries_caught == 1 and not record(net, careful, 0).lazy
    for voter in claimed.voters:  # drawn, and owing nothing once the scores settled it
        assert record(net, net.actor(voter), 0).missed_votes == 0
    assert not record(net, executor, 0).lazy
    net.assert_conserved()


def test_scores_that_fail_the_real_artifact_leave_the_vote_to_its_voters():
    """A checker whose committed scores fail the real artifact too (a member lying about an
    honest executor's canary) settles nothing, nor do scores that do not decode: the drawn
    voters pass the real artifact, and the liar's measured report is charged as one the vote
    went against."""
    net, executor, shifted, real, checkers = canary_checked_by_all(6, "canary-lie")
    careful, liar, garbled = checkers[:3]
    garbage = b"\x01\x03scores"
    honest_scores = scores_of(real)
    # Logprobs made up a nat below the real ones: far from both artifacts.
    _, real_steps = artifact.decode(real)
    lying_scores = logprob_scores.encode([
        logprob_scores.PositionScores(p.sampled - PPM, p.floor - PPM,
                                      tuple(t - PPM for t in p.tops))
        for p in logprob_scores.of_artifact(real_steps)])
    _, recorded = artifact.decode(shifted.artifact)
    lie = round(logprob_scores.distance(recorded, logprob_scores.decode(
        lying_scores, recorded)) * PPM)
    results = net.report([
        (careful, validation_msg(careful, shifted, canary.distance_micro(
            real, shifted.artifact), scores=honest_scores)),
        (liar, validation_msg(liar, shifted, lie, scores=lying_scores)),
        (garbled, validation_msg(garbled, shifted, lie, scores=garbage))])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    to_height(net, task(net, "canary-lie").open_until)
    key = canary.key(seed(executor, 0), shifted.id)
    assert net.one(claim(executor, shifted.id, key)).code == 0
    opened = net.block([open_scores(careful, shifted.id, honest_scores),
                        open_scores(liar, shifted.id, lying_scores),
                        open_scores(garbled, shifted.id, garbage)])
    assert [(r.codespace, r.code) for r in opened] == [
        ("", 0), ("", 0), ("validation", 10)], [r.log for r in opened]
    measured = {r.validator: r.passed for r in task(net, "canary-lie").reports}
    assert measured == {careful.address: True, liar.address: False}
    assert task(net, "canary-lie").state == IN_VOTE  # not settled: the voters decide
    step = stats(net, liar).reputation_ppm
    ballots = [(v, validation_msg(v, net.inference("canary-lie"), PASS))
               for v in vote_among(net, "canary-lie") if v not in (careful, liar, garbled)]
    results = net.report(ballots)
    assert all(r.code == 0 for r in results), [r.log for r in results]
    to_tally(net, "canary-lie")
    to_height(net, task(net, "canary-lie").canary_claim_height + CLAIM_BLOCKS)
    late = net.one(open_scores(garbled, shifted.id, garbage))
    assert (late.codespace, late.code) == ("validation", 9), late.log
    assert task(net, "canary-lie").state == PASSED
    assert net.inference("canary-lie").status == VALIDATED
    assert stats(net, executor).invalidations == 0
    assert record(net, liar, 0).votes_against == 1
    assert stats(net, liar).reputation_ppm <= step
    assert record(net, careful, 0).votes_against == 0
    # The checker whose scores never opened left the vote to the voters: a vote missed.
    assert record(net, garbled, 0).missed_votes == 1
    assert record(net, careful, 0).missed_votes == record(net, liar, 0).missed_votes == 0
    net.assert_conserved()
