"""The serving dtype is part of the model (docs/design.md §2): through the chain's real
handlers, in process. The registry records it, a participant declares a model only in that
dtype, a finish says (signed) which dtype it was served in, genesis calibrates each dtype's
distance threshold, and governance may retune a model's evidence reference but not its dtype."""

import json

import pytest
from inference_actors import DTYPE, MODEL_ID, WEIGHTS, finish_msg, genesis_models
from inference_net import Net

from chain.inference import payload
from chain.inference.model import (
    DEFAULT_REFERENCES,
    DEFAULT_RULES,
    DEFAULT_THRESHOLDS,
    RULE_FIELDS,
)
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    STARTED,
    MsgRegisterParticipant,
    MsgUpdateParticipant,
    ServedModel,
)


def registration(actor, dtype: str) -> MsgRegisterParticipant:
    return MsgRegisterParticipant(
        creator=actor.address, url="http://127.0.0.1:1",
        node_pubkey=bytes(actor.node_key.verify_key),
        models=[ServedModel(model_id=MODEL_ID, weights_sha256=WEIGHTS, dtype=dtype)])


@pytest.mark.parametrize("dtype", ["bfloat16", "", "int8"])
def test_a_participant_whose_ml_node_serves_another_dtype_cannot_declare_the_model(dtype):
    net = Net(2, newcomers=1)
    newcomer = net.newcomers[0]
    refused = net.one(newcomer.tx(registration(newcomer, dtype)))
    assert (refused.codespace, refused.code) == ("inference", 70), refused.log
    assert f"served in {DTYPE}" in refused.log
    assert newcomer.address not in [p.address for p in net.query(
        "Participants", q.QueryParticipantsRequest()).participants]
    assert net.one(newcomer.tx(registration(newcomer, DTYPE))).code == 0
    assert net.participant_record(newcomer).models[0].dtype == DTYPE


def test_a_registered_participant_cannot_switch_its_declaration_to_another_dtype():
    net = Net(2)
    part = net.parts[0]
    before = net.participant_record(part)
    update = MsgUpdateParticipant(
        creator=part.address, url="http://127.0.0.1:2", node_pubkey=before.node_pubkey,
        models=[ServedModel(model_id=MODEL_ID, weights_sha256=WEIGHTS, dtype="float16")])
    refused = net.one(part.tx(update))
    assert (refused.codespace, refused.code) == ("inference", 70)
    assert net.participant_record(part) == before


def test_a_finish_says_its_dtype_signed_and_the_chain_takes_only_the_registered_one():
    net = Net(3)
    agent, executor, start = net.start("dtype-finish", max_tokens=8)
    assert net.one(agent.tx(start)).code == 0
    wrong = finish_msg(executor, start, [7, 8, 9])
    wrong.serving_dtype = "bfloat16"
    wrong.executor_signature = executor.node_key.sign(payload.finish_payload(
        wrong.inference_id, wrong.model_id, wrong.prompt_hash, wrong.output_hash,
        wrong.prompt_tokens, wrong.output_tokens, wrong.artifact, wrong.creator,
        wrong.serving_dtype)).signature
    refused = net.one(executor.tx(wrong))
    assert (refused.codespace, refused.code) == ("inference", 70)
    assert "bfloat16" in refused.log and net.inference(start.inference_id).status == STARTED
    # The dtype is under the executor's signature: relabelling a signed finish breaks it.
    relabelled = finish_msg(executor, start, [7, 8, 9])
    relabelled.serving_dtype = "float16"
    assert "signature" in net.one(executor.tx(relabelled)).log
    assert net.one(executor.tx(finish_msg(executor, start, [7, 8, 9]))).code == 0
    assert net.inference(start.inference_id).serving_dtype == DTYPE


def genesis(models: list[dict], participants: list[dict] | None = None) -> Net:
    return Net(0, extra_state={"inference": {"models": models,
                                             "participants": participants or []}})


def registry(net: Net) -> dict:
    return {m.id: m for m in net.query("Models", q.QueryModelsRequest()).models}


def test_genesis_fills_each_dtype_with_its_calibrated_threshold_and_reference():
    sha = "ab" * 32
    found = registry(genesis([{"id": "plain", "weights_sha256": sha},
                              {"id": "half", "weights_sha256": sha, "serving_dtype": "bfloat16"},
                              {"id": "fp16", "weights_sha256": sha, "serving_dtype": "float16"},
                              {"id": "tuned", "weights_sha256": sha, "serving_dtype": "bfloat16",
                               "validation_threshold": "0.2",
                               "reference_distance_micro": 60_000, "max_rule_violations": 5}]))
    assert found["plain"].serving_dtype == "float32"
    assert found["plain"].validation_threshold == DEFAULT_THRESHOLDS["float32"]
    assert found["half"].validation_threshold == DEFAULT_THRESHOLDS["bfloat16"]
    # fp32 arithmetic on both sides needs none of bf16's slack.
    assert float(DEFAULT_THRESHOLDS["float32"]) * 100 < float(DEFAULT_THRESHOLDS["bfloat16"])
    assert found["half"].reference_distance_micro > found["plain"].reference_distance_micro > 0
    # Every dtype's evidence test is on: its reference and bet come from its calibration.
    for entry in found.values():
        assert entry.reference_distance_micro > 0 and entry.evidence_bet_ppm > 0, entry
    assert (found["fp16"].validation_threshold, found["fp16"].reference_distance_micro,
            found["fp16"].evidence_bet_ppm) == (DEFAULT_THRESHOLDS["float16"],
                                                *DEFAULT_REFERENCES["float16"])
    assert (found["tuned"].validation_threshold, found["tuned"].reference_distance_micro) == (
        "0.2", 60_000)
    # The rule per dtype: fp32 allows no violation and 10^-3 of rounding, half precision its
    # calibrated slack; an entry may state its own (each field falls back to its dtype's).
    assert tuple(getattr(found["plain"], name) for name in RULE_FIELDS) == \
        DEFAULT_RULES["float32"] == (1_000, 1_000, 0, 0)
    for half, dtype in (("half", "bfloat16"), ("fp16", "float16")):
        assert tuple(getattr(found[half], name) for name in RULE_FIELDS) == DEFAULT_RULES[dtype]
    tuned = found["tuned"]
    assert (tuned.max_rule_violations, tuned.rule_tolerance_micro) == (
        5, DEFAULT_RULES["bfloat16"][0])
    # The violation bet is off by default: fp32's rule leaves no violation in a passed check,
    # and no half-precision validator is calibrated for it.
    for entry in found.values():
        assert (entry.reference_violations_ppm, entry.violation_bet_ppm) == (0, 0)


@pytest.mark.parametrize("bad", [{"serving_dtype": "int8"}, {"serving_dtype": ""},
                                 {"evidence_bet_ppm": 1_000_000},
                                 {"violation_bet_ppm": 1_000_000},
                                 {"reference_violations_ppm": 1_000_001}])
def test_genesis_refuses_a_model_with_an_unknown_dtype_or_a_bet_that_could_zero_evidence(bad):
    with pytest.raises(Exception, match=next(iter(bad))):
        genesis([{"id": "m", "weights_sha256": "ab" * 32, **bad}])


def test_a_genesis_participant_serving_another_dtype_is_refused():
    net = Net(1)
    entry = json.loads(net.init_request.app_state_bytes)["inference"]["participants"][0]
    entry["models"][0]["dtype"] = "bfloat16"
    with pytest.raises(Exception, match="not its registered float32"):
        genesis(genesis_models(), [entry])
