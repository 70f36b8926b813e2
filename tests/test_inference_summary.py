"""Once an epoch is settled, each of its inferences whose checks closed is cut to a summary of
about 160 bytes: status, cost, parties, token counts, heights, the number of checks and the
sha256 of the full record it replaced. Prompt, output, artifact, validation task and index
entries leave state; what a developer asks of a settled inference still
answers, nothing about it can be started, finished or reported again, and a node replaying the
chain agrees on every app hash. An epoch's own records go once `settled_epochs_kept` later
epochs are settled. In-process chain, real handlers and replay."""

import hashlib

import grpc
import pytest
from inference_actors import finish_msg, seal_of, validation_msg
from inference_net import Net

from chain.export import export_app_state
from chain.inference.keeper import INFERENCE, STATUS, SUMMARY
from chain.query import QueryError
from chain.store import StateAt
from chain.validation import summaries
from chain.validation.keeper import FINISHED, SUMMARIZING, TASK
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import EXPIRED, VALIDATED
from inferchain_pb.inference.v1.inference_pb2 import FINISHED as DONE

EPOCH = 10
OPENING = 1
REVEAL = 6  # the windows, the votes and their openings
# Epoch 0 is judged and settled at the start of epoch 1 plus the reveal window; its
# inferences are summarized in the block after.
SETTLED = EPOCH + REVEAL
SUMMARIZED = SETTLED + 1


def network() -> Net:
    return Net(4, extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0}},
        "validation": {"params": {
            "validation_window_blocks": 2, "voting_period_blocks": 2,
            "opening_blocks": OPENING, "reveal_window_blocks": REVEAL, "canary_rate_ppm": 0}}})


def state(net: Net):
    return net.app.store.begin_block()


def keys(net: Net, prefix: bytes) -> list[bytes]:
    return [key for key, _ in state(net).iterate(prefix)]


def run_to(net: Net, height: int) -> None:
    while net.height < height:
        net.block([])


def finished(net: Net, label: str, report: bool = True) -> str:
    """A started and finished inference, checked once by a member other than its parties
    (its report sealed, then opened once the window's sealing ends)."""
    agent, executor, start = net.start(label)
    assert net.one(agent.tx(start)).code == 0
    assert net.one(executor.tx(finish_msg(executor, start, [5, 6, 7]))).code == 0
    if report:
        checker = next(p for p in net.parts if p not in (agent, executor))
        (result,) = net.report([(checker, validation_msg(checker, net.inference(label)))])
        assert result.code == 0, result.log
    return start.inference_id


def test_a_settled_inference_keeps_a_hash_linked_summary_and_nothing_else():
    net = network()
    agent, _, lone_start = net.start("lone start")
    assert net.one(agent.tx(lone_start)).code == 0
    _, executor, never_started = net.start("lone finish")
    assert net.one(executor.tx(finish_msg(executor, never_started, [8]))).code == 0
    checked = finished(net, "checked")
    unchecked = finished(net, "unchecked", report=False)
    ids = [checked, unchecked, lone_start.inference_id, never_started.inference_id]
    run_to(net, SETTLED)
    full = {i: state(net).get(INFERENCE + i.encode()) for i in ids}
    before = {i: net.inference(i) for i in ids}
    assert (before[checked].status, before[unchecked].status) == (VALIDATED, DONE)
    assert {before[i].status for i in ids[2:]} == {EXPIRED}
    net.block([])

    for inference_id in ids:
        after, was = net.inference(inference_id), before[inference_id]
        assert after.summarized_height == SUMMARIZED
        assert after.record_sha256 == hashlib.sha256(full[inference_id]).digest()
        assert (after.status, after.cost, after.executor, after.developer,
                after.transfer_agent, after.model_id, after.prompt_tokens,
                after.output_tokens, after.start_height, after.finish_height,
                after.started, after.finished, after.starter, after.agent_fee,
                after.draw_height, after.attempt) == (
            was.status, was.cost, was.executor, was.developer, was.transfer_agent,
            was.model_id, was.prompt_tokens, was.output_tokens, was.start_height,
            was.finish_height, was.started, was.finished, was.starter, was.agent_fee,
            was.draw_height, was.attempt)
        assert not (after.prompt_ids or after.output_ids or after.artifact
                    or after.executor_signature or after.output_hash)
        assert after.draw_height or not was.started, "the start's draw is kept"
        stored = state(net).get(SUMMARY + inference_id.encode())
        assert len(stored) <= 200, len(stored)
    assert (net.inference(checked).checks, net.inference(unchecked).checks) == (1, 0)
    # The full record is the one in the history at the height before: the hash links them.
    old = StateAt(net.app.store, SUMMARIZED - 1).get(INFERENCE + checked.encode())
    assert hashlib.sha256(old).digest() == net.inference(checked).record_sha256
    # Every full record, task and index entry of the epoch is gone.
    assert keys(net, INFERENCE) == keys(net, TASK) == keys(net, FINISHED) == []
    assert keys(net, STATUS) == keys(net, SUMMARIZING) == []
    for status in (VALIDATED, DONE, EXPIRED):
        assert not net.query("Inferences", q.QueryInferencesRequest(
            status=status, from_height=1)).inferences
    with pytest.raises(QueryError, match="not found") as missing:
        net.query("ValidationTask", q.QueryValidationTaskRequest(inference_id=checked))
    assert missing.value.status == grpc.StatusCode.NOT_FOUND
    net.replica()  # a node replaying every block agrees on the app hash
    net.assert_conserved()


def test_nothing_about_a_summarized_inference_can_happen_again():
    net = network()
    # Started first, so that it expires in epoch 0 whatever the check's sealing takes.
    agent, executor, start = net.start("lone start")
    assert net.one(agent.tx(start)).code == 0
    checked = finished(net, "checked")
    run_to(net, SUMMARIZED)
    balances = [net.balance(a) for a in net.all_accounts]
    ids = (checked, start.inference_id)
    summaries_before = {i: state(net).get(SUMMARY + i.encode()) for i in ids}
    done = net.inference(checked)
    checker = next(p for p in net.parts if p.address not in (done.executor,
                                                             done.transfer_agent))
    report = validation_msg(checker, done)
    for tx in (seal_of(report), report):  # neither sealed nor opened
        refused = net.one(checker.tx(tx))
        assert refused.code != 0 and "settled" in refused.log, refused.log
    finish_late = net.one(executor.tx(finish_msg(executor, start, [5])))
    assert finish_late.code != 0 and "closed" in finish_late.log, finish_late.log
    restart = net.one(agent.tx(start))
    assert restart.code != 0 and "already started" in restart.log, restart.log
    # Only the fees moved: each summary is as it was and no other record names the ids.
    assert {i: state(net).get(SUMMARY + i.encode()) for i in ids} == summaries_before
    assert not [k for k, _ in state(net).iterate(b"") if not k.startswith(SUMMARY)
                and any(i.encode() in k for i in ids)]
    assert sum(balances) - sum(net.balance(a) for a in net.all_accounts) == 4 * 20_000
    net.replica()


def test_a_large_epoch_is_summarized_a_bounded_number_per_block(monkeypatch):
    monkeypatch.setattr(summaries, "SUMMARIES_PER_BLOCK", 3)
    net = network()
    ids = [finished(net, f"inference {i}", report=False) for i in range(4)]
    run_to(net, SUMMARIZED)
    left = [i for i in ids if not net.inference(i).summarized_height]
    assert len(left) == 1 and keys(net, SUMMARIZING)
    # The cursor is state like any other: an export carries it, a replay rebuilds it.
    exported = export_app_state(net.app.modules, state(net))["validation"]["summarizing"]
    assert [cursor["height"] for cursor in exported] == [
        str(net.inference(ids[3]).finish_height)]
    net.replica()
    net.block([])
    assert [net.inference(i).summarized_height for i in ids] == \
        [SUMMARIZED] * 3 + [SUMMARIZED + 1]
    assert keys(net, SUMMARIZING) == keys(net, TASK) == []
    net.replica()


def test_settling_an_epoch_drops_the_records_of_the_epoch_kept_before_it():
    net = Net(4, extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0,
                              "settled_epochs_kept": 1}},
        "validation": {"params": {"validation_window_blocks": 2, "voting_period_blocks": 2,
                                  "opening_blocks": OPENING, "reveal_window_blocks": REVEAL,
                                  "canary_rate_ppm": 0}}})
    finished(net, "epoch 0")

    def epoch_keys(epoch: int) -> list[bytes]:
        """Records keyed by the epoch under the modules' per-epoch prefixes."""
        prefixes = (b"validation/members/", b"validation/commit/", b"validation/record/",
                    b"epochs/seedhash/", b"epochs/settlement/")
        return [k for p in prefixes for k in keys(net, p + epoch.to_bytes(8, "big"))]

    run_to(net, SETTLED)
    assert any(k.startswith(b"epochs/settlement/") for k in epoch_keys(0))
    assert any(k.startswith(b"validation/record/") for k in epoch_keys(0))
    run_to(net, SETTLED + EPOCH - 1)
    assert epoch_keys(0)
    net.block([])  # epoch 1 settles: epoch 0's records go, epoch 1's stay
    assert epoch_keys(0) == [] and epoch_keys(1)
    with pytest.raises(QueryError, match="epoch 0 was settled; its records were dropped"):
        net.query("EpochSettlement", q.QueryEpochSettlementRequest(epoch=0))
    assert net.query("EpochSettlement", q.QueryEpochSettlementRequest(epoch=1)).settlement
    net.replica()
    net.assert_conserved()
