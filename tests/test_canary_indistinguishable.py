"""What a validator can read of a canary before its checks are due, and why it is not enough.

Canaries are real inferences whose executor recorded the artifact shifted (docs/design.md
§6.9). A validator that wants to skip re-scores without meeting one must tell them apart from
what the chain shows: the records and tasks its queries answer, the transactions in its
history, and the artifacts themselves. The first two show nothing (the same messages, fields
and values of every kind); the artifacts are measured here on real outputs of the default
model (fp32, from bench/detection/gpu-h200.json.gz), against features any reader computes
without the model (bench/detection/canaries.py prints them for every dtype), beside a naive
shift those features catch at once.
"""

import json

import numpy as np
import pytest
from inference_actors import canary_steps, finish_msg
from inference_net import Net

from bench.detection import canaries
from chain.inference import artifact
from chain.scales import PPM
from chain.validation import canary
from chain.validation.sampling import seed_hash
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.validation_pb2 import MsgCommitSeed

FP32_THRESHOLD_MICRO = canaries.threshold_micro("float32")
K = canaries.K


@pytest.fixture(scope="module")
def honest() -> list[bytes]:
    """270 real fp32 artifacts of the default model (8, 32 and 128 tokens), top-5."""
    return canaries.honest_artifacts("float32")


def quanta() -> int:
    return canary.shift_quanta(FP32_THRESHOLD_MICRO, K)


def test_the_shift_keeps_what_a_reader_can_check_and_undoes_itself(honest):
    for i, data in enumerate(honest):
        shifted = canary.shift(data, canaries.bench_key(i), quanta())
        assert canary.shift(shifted, canaries.bench_key(i), quanta()) == data
        assert artifact.token_ids(shifted) == artifact.token_ids(data)
        _, before = artifact.decode(data)
        _, after = artifact.decode(shifted)
        for old, new in zip(before, after, strict=True):
            assert new.top_ids == old.top_ids
            assert new.top_logprobs[:1] == old.top_logprobs[:1]  # the most likely stays
            assert list(new.top_logprobs) == sorted(new.top_logprobs, reverse=True)
            assert all(lp <= 0 for lp in (new.logprob, *new.top_logprobs))


def test_an_honest_rescore_of_a_canary_fails_it_by_several_thresholds(honest):
    """The validator's own logprobs are the real ones: its distance to the shifted artifact
    is the shift, at least three times the fp32 threshold on every real output, and the
    chain computes the same figure when the canary is claimed."""
    threshold = FP32_THRESHOLD_MICRO / PPM
    for i, data in enumerate(honest):
        shifted = canary.shift(data, canaries.bench_key(i), quanta())
        measured = canaries.rescore_distance(data, shifted)
        assert measured > 3 * threshold
        # Scores keep micro-nats: the real artifact measured against itself is off by that
        # rounding only.
        assert canaries.rescore_distance(data, data) < 1e-6
        # The chain's own figure for the claim is the validator's measure.
        assert canary.distance_micro(data, shifted) == round(measured * PPM)


def test_no_model_free_feature_tells_canaries_from_honest_artifacts(honest):
    """Over 270 real outputs, each feature's AUC between honest and shifted artifacts stays
    within 0.1 of 0.5 (its standard error here is about 0.025). The naive uniform shift of
    the same size leaves a tell instead: no near-certain top token survives it, so every
    honest artifact that has one (a third or more of them) could be passed unchecked."""
    shifted = [canary.shift(data, canaries.bench_key(i), quanta())
               for i, data in enumerate(honest)]
    naive = [canaries.uniform_shift(data, quanta()) for data in honest]
    mine, theirs, bad = ([canaries.features(d, quanta()) for d in group]
                         for group in (honest, shifted, naive))
    for name in mine[0]:
        score = canaries.auc([f[name] for f in mine], [f[name] for f in theirs])
        assert abs(score - 0.5) < 0.1, (name, score)
    assert all(f[canaries.NEAR_CERTAIN] == 0 for f in bad)
    assert np.mean([f[canaries.NEAR_CERTAIN] > 0 for f in mine]) > 0.3
    assert quanta() / 1024 < 0.01  # far under an int8 copy's 0.09 nats


def test_the_chain_shows_a_canary_as_it_shows_any_inference():
    """Half the inferences are canaries (their executors' seeds say which): each has one start
    and one finish signed by its executor with the same fields as every other, and before a
    claim the Inference and ValidationTask queries and the feed answer the same fields for
    them as for the others, with the same values wherever an inference's own data does not
    differ."""
    net = Net(3, expiration_blocks=50, extra_state={
        "epochs": {"params": {"epoch_length_blocks": 50, "poc_window_blocks": 0}},
        "validation": {"params": {"canary_rate_ppm": PPM // 2}}})
    seeds = {a.address: bytes([i + 1]) * 32 for i, a in enumerate(net.parts)}
    net.block([a.tx(MsgCommitSeed(creator=a.address, epoch=0,
                                  seed_hash=seed_hash(seeds[a.address]))) for a in net.parts])
    model = net.query("Models", q.QueryModelsRequest()).models[0]
    planted, plain = [], []
    history: dict[str, tuple] = {}
    for n in range(12):
        agent, executor, start = net.start(f"request-{n}", max_tokens=8)
        honest_finish = finish_msg(executor, start, [7, 8, 9])
        key = canary.key(seeds[executor.address], start.inference_id)
        steps = None
        if canary.is_canary(key, PPM // 2):
            steps = canary_steps(honest_finish.artifact, key, model)
        finish = finish_msg(executor, start, [7, 8, 9], steps=steps)
        results = net.block([agent.tx(start), executor.tx(finish)])
        assert [r.code for r in results] == [0, 0], [r.log for r in results]
        (planted if steps else plain).append(start.inference_id)
        history[start.inference_id] = (start, finish)
    assert planted and plain
    # The transactions: one start and one finish each, every field set alike, the finish
    # signed by its executor over what it carries (the chain took each).
    assert len({json.dumps([sorted(f.name for f, _ in m.ListFields()) for m in pair])
                for pair in history.values()}) == 1
    assert {len(finish.executor_signature) for _, finish in history.values()} == {64}

    def shown(inference_id: str) -> tuple[set[str], set[str], dict]:
        inference = net.inference(inference_id)
        task = net.query("ValidationTask", q.QueryValidationTaskRequest(
            inference_id=inference_id)).task
        fields = {f.name for f, _ in inference.ListFields()}
        task_fields = {f.name for f, _ in task.ListFields()}
        same_kind = {name: getattr(task, name) for name in (
            "model_id", "p_ppm", "state", "positions", "expected_checks_ppm", "draw_epoch",
            "canary_rate_ppm", "canary_key", "closed_height")}
        assert len(inference.executor_signature) == 64
        return fields, task_fields, same_kind

    answers = {i: shown(i) for i in planted + plain}
    assert len({json.dumps([sorted(a[0]), sorted(a[1])]) for a in answers.values()}) == 1
    assert len({repr(a[2]) for a in answers.values()}) == 1
    feed = net.query("ValidationTasks", q.QueryValidationTasksRequest(from_height=1)).tasks
    assert {t.inference_id for t in feed} == set(planted + plain)
