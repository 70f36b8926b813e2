"""An executor is paid for no more output than the request allowed and the developer received
(docs/design.md §3.5, §6.3), through the real Score arithmetic and the chain's real handlers:

- an output that goes on where the seeded rule picks EOS (sampled or greedy), or past a
  complete stop sequence, does not match what the request allows: the inference is
  INVALIDATED and the developer refunded, although it breaks the rule at one position only,
  which the verdict would forgive as rounding;
- a finish whose output is not the one its transfer agent signed as delivered is refused, in
  either order of start and finish, and changes nothing; the delivered output settles.
"""

import pytest
import torch
from inference_actors import PRICE, finish_msg, validation_msg
from test_validation_module import (
    commit_all,
    finished,
    make_net,
    task,
    to_epoch,
    to_tally,
    vote_among,
)

from apinode.validation.figures import Figures, ended_properly, measure
from chain.inference import payload
from chain.inference.artifact import ArtifactStep
from chain.inference.model import DEFAULT_RULES
from chain.validation.verdict import allowed_violations
from inferchain_pb.inference.v1.inference_pb2 import FINISHED, INVALIDATED, STARTED
from inferchain_pb.inference.v1.validation_pb2 import FAILED, IN_VOTE
from mlnode.rule_check import obeys_rule
from mlnode.sampling import draw
from mlnode.sampling_params import SamplingParams
from mlnode.torch_engine import score_positions

VOCAB, EOS, TOP_K = 8, 2, 5
# The half-precision rule, which forgives a violation: the EOS rule must hold even there.
TOLERANCE, GREEDY_TOLERANCE, FIXED, PER_1024 = (
    value / 1e6 if i < 2 else value for i, value in enumerate(DEFAULT_RULES["bfloat16"]))


def peaked(tokens: list[int]) -> torch.Tensor:
    """Logits whose row i puts nearly all probability on tokens[i]."""
    logits = torch.zeros(len(tokens), VOCAB)
    for row, token in enumerate(tokens):
        logits[row, token] = 12.0
    return logits


def figures_of(logits: torch.Tensor, output_ids: list[int], sampling: SamplingParams,
               pieces: list[str] | None = None) -> Figures:
    """What a validator measures for an executor that recorded the validator's own logprobs
    (distance 0): the ML node's Score facts, judged as the validator worker judges them."""
    scored = score_positions(logits, output_ids, TOP_K, sampling, EOS)
    recorded = [ArtifactStep(s.step.token_id, s.step.logprob, s.step.top_ids,
                             s.step.top_logprobs) for s in scored]
    pieces = pieces or [f"<{t}>" for t in output_ids]
    ended = ended_properly(output_ids, sampling.max_tokens, {EOS}, pieces, sampling.stop)
    greedy = sampling.greedy
    return measure(recorded, output_ids, scored, greedy=greedy, ended=ended,
                   tolerance=GREEDY_TOLERANCE if greedy else TOLERANCE)


@pytest.mark.parametrize("temperature", [0.7, 0.0])
def test_going_on_where_the_rule_picks_eos_fails_outright(temperature):
    sampling = SamplingParams(temperature=temperature, max_tokens=4, seed=42)
    logits = peaked([4, EOS, 6, 7])
    assert [draw(row, sampling, i) for i, row in enumerate(logits)] == [4, EOS, 6, 7]
    honest = figures_of(logits[:2], [4, EOS], sampling)
    assert (honest.ids_match, honest.rule_violations) == (True, 0)
    # The executor skips the EOS once and samples on to max_tokens: one position breaks the
    # rule, within what the verdict forgives, yet the output is not what the request allows.
    skipped = figures_of(logits, [4, 5, 6, 7], sampling)
    assert skipped.ids_match is False
    scored = score_positions(logits, [4, 5, 6, 7], TOP_K, sampling, EOS)
    tolerance = GREEDY_TOLERANCE if sampling.greedy else TOLERANCE
    broken = sum(not obeys_rule(s.rule, sampling.greedy, tolerance) for s in scored)
    assert broken == 1 <= allowed_violations(FIXED, PER_1024, 4)
    # Breaking the rule elsewhere (not at an EOS) is still only a counted violation.
    elsewhere = figures_of(logits, [5, EOS], sampling)
    assert (elsewhere.ids_match, elsewhere.rule_violations) == (True, 1)


def test_going_on_past_a_complete_stop_sequence_or_an_eos_fails_outright():
    sampling = SamplingParams(temperature=0.7, max_tokens=4, seed=42, stop=("END",))
    logits = peaked([4, 5, 6, 7])
    at_last = figures_of(logits[:2], [4, 5], sampling, pieces=["a", "END"])
    assert at_last.ids_match
    past = figures_of(logits, [4, 5, 6, 7], sampling, pieces=["a", "END", "b", "c"])
    assert not past.ids_match
    assert not ended_properly([4, EOS, 6, 7], 4, {EOS}, ["a", "", "b", "c"], ())


def test_an_output_that_skipped_its_eos_is_invalidated_and_refunded():
    net = make_net()
    commit_all(net, 1)  # before its epoch: a commitment must precede it
    to_epoch(net, 1)
    executor, inference = finished(net, "skip-eos", [4, 5, 6, 7])
    sampling = SamplingParams(temperature=inference.temperature, top_p=inference.top_p,
                              max_tokens=4, seed=inference.seed)
    figures = figures_of(peaked([4, EOS, 6, 7]), list(inference.output_ids), sampling)
    assert not figures.ids_match
    developer_before = net.balance(net.developer)
    work_before = net.account(executor).work_balance

    def report(validator):
        return validator, validation_msg(validator, inference, figures.distance_micro,
                                         figures.rule_violations, figures.ids_match)

    first = next(p for p in net.parts if p is not executor)
    assert [r.code for r in net.report([report(first)])] == [0]
    assert task(net, "skip-eos").state == IN_VOTE
    ballots = [report(v) for v in vote_among(net, "skip-eos") if v is not first]
    results = net.report(ballots) if ballots else []
    assert all(r.code == 0 for r in results), [r.log for r in results]
    to_tally(net, "skip-eos")
    assert task(net, "skip-eos").state == FAILED
    assert net.inference("skip-eos").status == INVALIDATED
    assert net.balance(net.developer) == developer_before + inference.cost
    assert net.account(executor).work_balance == work_before - inference.cost
    net.assert_conserved()


def test_a_finish_for_more_output_than_was_delivered_is_refused():
    net = make_net()
    agent, executor, start = net.start("more", max_tokens=8)
    assert net.one(agent.tx(start)).code == 0
    escrow = net.account(net.developer).escrow
    for inflated in (finish_msg(executor, start, [7, 8, 9, 10], delivered=[7, 8]),
                     finish_msg(executor, start, [7, 8, 9, 10], delivered=[])):
        refused = net.one(executor.tx(inflated))
        assert (refused.codespace, refused.code) == ("inference", 9), refused.log
        assert net.inference("more").status == STARTED
        assert net.account(net.developer).escrow == escrow
    unsigned = finish_msg(executor, start, [7, 8])
    unsigned.delivery_signature = b""
    assert net.one(executor.tx(unsigned)).code == 9
    assert net.one(executor.tx(finish_msg(executor, start, [7, 8]))).code == 0
    done = net.inference("more")
    assert (done.status, done.cost) == (FINISHED, (len(start.prompt_ids) + 2) * PRICE)
    assert net.account(net.developer).escrow == 0
    net.assert_conserved()


def test_a_start_does_not_settle_a_waiting_finish_for_undelivered_output():
    """The start voids the waiting finish (so no finish can block a start) and the inference
    waits for one whose output the transfer agent signed as delivered."""
    net = make_net()
    agent, executor, start = net.start("first", max_tokens=8)
    work_before = net.account(executor).work_balance
    inflated = finish_msg(executor, start, [7, 8, 9, 10], delivered=[7, 8])
    assert net.one(executor.tx(inflated)).code == 0  # waits: nobody can judge it yet
    assert net.one(agent.tx(start)).code == 0
    voided = net.inference("first")
    assert voided.started and voided.status == STARTED and not voided.output_ids
    assert net.account(executor).work_balance == work_before
    assert net.account(net.developer).escrow == voided.escrow
    assert net.one(executor.tx(finish_msg(executor, start, [7, 8]))).code == 0
    done = net.inference("first")
    assert (done.status, done.cost) == (FINISHED, (len(start.prompt_ids) + 2) * PRICE)
    assert net.account(executor).work_balance == work_before + done.cost
    assert net.account(net.developer).escrow == 0
    net.assert_conserved()


def test_a_finish_with_the_prefix_its_transfer_agent_signed_settles_those_tokens_only():
    """A transfer agent that stopped signing leaves the executor the prefix it signed: that
    settles, charged for its tokens; a prefix signature over other ids, or by another key,
    is refused and changes nothing."""
    net = make_net()
    agent, executor, start = net.start("prefix", max_tokens=8)
    assert net.one(agent.tx(start)).code == 0
    escrow = net.account(net.developer).escrow

    def prefix_signature(key, ids: list[int]) -> bytes:
        return key.sign(payload.prefix_delivery_payload(
            start.inference_id, payload.ids_hash(ids), agent.address,
            executor.address)).signature

    for forged in (prefix_signature(agent.node_key, [7, 9]),
                   prefix_signature(executor.node_key, [7, 8])):
        finish = finish_msg(executor, start, [7, 8])
        finish.delivery_signature = forged
        refused = net.one(executor.tx(finish))
        assert (refused.codespace, refused.code) == ("inference", 9), refused.log
        assert net.inference("prefix").status == STARTED
        assert net.account(net.developer).escrow == escrow
    finish = finish_msg(executor, start, [7, 8])
    finish.delivery_signature = prefix_signature(agent.node_key, [7, 8])
    assert net.one(executor.tx(finish)).code == 0
    done = net.inference("prefix")
    assert (done.status, done.cost) == (FINISHED, (len(start.prompt_ids) + 2) * PRICE)
    assert net.account(net.developer).escrow == 0
    net.assert_conserved()
