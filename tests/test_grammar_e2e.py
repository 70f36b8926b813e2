"""Structured output and tool calls end to end on a local network: real chain, API node and ML
node processes, the official openai client, and validator workers that replay each output
under its grammar on their own ML nodes.

- JSON mode answers a JSON object; ``json_schema`` answers JSON the schema accepts.
- ``tool_choice`` required and named answer tool calls whose arguments match the function's
  parameters, whole and streamed as ``delta.tool_calls``; the call and a ``tool`` message go
  back in a second turn.
- Every one of those inferences passes validation with no broken rule position.
- Bad ``response_format``, ``tools`` and ``tool_choice`` get a 400 naming the param.
- An executor whose ML node ignores the grammar (``--cheat ignore-grammar``) answers in free
  text, and its outputs are invalidated; honest ones beside it settle.
"""

import json
from collections.abc import Iterator

import openai
import pytest
from jsonschema import Draft202012Validator
from local_network import MODEL, LocalNetwork, MlNodes
from test_validation_e2e import FAST_WORKER, ONE_LONG_EPOCH, all_checked, wait_for_seeds

from inferchain_pb.inference.v1.inference_pb2 import INVALIDATED, VALIDATED
from inferchain_pb.inference.v1.validation_pb2 import FAILED

PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age"],
          "properties": {"name": {"type": "string", "maxLength": 10},
                         "age": {"type": "integer", "minimum": 0, "maximum": 120}}}
WEATHER = {"type": "object", "additionalProperties": False, "required": ["city"],
           "properties": {"city": {"type": "string", "maxLength": 16}}}
ADD = {"type": "object", "additionalProperties": False, "required": ["a", "b"],
       "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99},
                      "b": {"type": "integer", "minimum": 0, "maximum": 99}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER,
                                           "description": "The weather in a city."}},
         {"type": "function", "function": {"name": "add", "parameters": ADD,
                                           "description": "Adds two numbers."}}]
PARAMETERS = {"get_weather": WEATHER, "add": ADD}
WEATHER_ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
SAMPLING = {"temperature": 0.7, "max_tokens": 40}


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(honest port, port of an ML node that ignores grammars)."""
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 2, cheats=[None, "ignore-grammar"])
    yield nodes.ports[0], nodes.ports[1]
    nodes.close()


@pytest.fixture(scope="module")
def honest(mlnodes: tuple[int, int],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """Two honest participants, each validating the other's every inference."""
    net = LocalNetwork(tmp_path_factory.mktemp("honest"), [mlnodes[0]] * 2,
                       params=ONE_LONG_EPOCH, in_genesis=True, node_settings=[FAST_WORKER] * 2)
    wait_for_seeds(net, 0)
    yield net
    net.close()


@pytest.fixture(scope="module")
def served(honest: LocalNetwork) -> list[str]:
    """Inference ids of the answers the honest tests got, for their validation."""
    return []


def client(net: LocalNetwork) -> openai.OpenAI:
    return net.client(net.nodes[0])


def matches(schema: dict, value: object) -> bool:
    return Draft202012Validator(schema).is_valid(value)


def test_json_mode_and_json_schema_answer_json_the_schema_accepts(honest, served):
    mode = client(honest).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Reply in JSON: what is 2 + 2?"}],
        response_format={"type": "json_object"}, seed=11, **SAMPLING)
    served.append(mode.model_extra["inference_id"])
    assert mode.choices[0].finish_reason == "stop", mode
    assert isinstance(json.loads(mode.choices[0].message.content), dict)

    for seed in (21, 22):
        reply = client(honest).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Invent a person."}],
            response_format={"type": "json_schema", "json_schema": {
                "name": "person", "schema": PERSON, "strict": True}}, seed=seed, **SAMPLING)
        served.append(reply.model_extra["inference_id"])
        assert reply.choices[0].finish_reason == "stop", reply
        assert matches(PERSON, json.loads(reply.choices[0].message.content)), reply


def test_a_required_tool_call_comes_back_and_goes_round_a_second_turn(honest, served):
    reply = client(honest).chat.completions.create(
        model=MODEL, messages=WEATHER_ASK, tools=TOOLS, tool_choice="required",
        parallel_tool_calls=False, seed=31, **SAMPLING)
    served.append(reply.model_extra["inference_id"])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", reply
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert matches(PARAMETERS[call.function.name], json.loads(call.function.arguments)), call

    second = client(honest).chat.completions.create(
        model=MODEL, tools=TOOLS, seed=32, temperature=0.7, max_tokens=12,
        messages=[*WEATHER_ASK, choice.message.model_dump(exclude_none=True),
                  {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'}],
        tool_choice="none")
    served.append(second.model_extra["inference_id"])
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls
    assert second.usage.prompt_tokens > reply.usage.prompt_tokens


def test_a_named_tool_call_streams_as_tool_call_deltas(honest, served):
    stream = client(honest).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Add 2 and 3."}], tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "add"}}, seed=41, stream=True,
        parallel_tool_calls=False, **SAMPLING)
    deltas, finish, ids = [], None, set()
    for chunk in stream:
        ids.add(chunk.model_extra["inference_id"])
        for choice in chunk.choices:
            deltas += choice.delta.tool_calls or []
            finish = choice.finish_reason or finish
    served.extend(ids)
    assert finish == "tool_calls" and deltas
    names = {d.index: d.function.name for d in deltas if d.function.name}
    arguments: dict[int, str] = {}
    for delta in deltas:
        arguments[delta.index] = arguments.get(delta.index, "") + (delta.function.arguments or "")
    assert set(names.values()) == {"add"}
    for index, text in arguments.items():
        assert matches(ADD, json.loads(text)), (index, text)


@pytest.mark.parametrize(("extra", "param"), [
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "p", "schema": {"type": 12}}}}, "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "p", "schema": {"properties": {"a": {"$ref": "#/nowhere"}}}}}},
     "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": PERSON}}},
     "response_format.json_schema.name"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "retrieval", "function": {"name": "f"}}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "function": {"name": "no spaces"}}]},
     "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "objekt"}}}]}, "tools[0].function.parameters"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice.function.name"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
])
def test_bad_formats_and_tools_get_a_400_naming_the_param(honest, extra, param):
    with pytest.raises(openai.BadRequestError) as bad:
        client(honest).chat.completions.create(model=MODEL, messages=WEATHER_ASK, max_tokens=4,
                                               extra_body=extra)
    assert bad.value.body["param"] == param, bad.value.body


def test_every_constrained_answer_is_validated_with_no_broken_rule(honest, served):
    assert len(served) == 6, served
    for inference_id in served:
        honest.finished(inference_id)  # its validation task exists once its finish is in a block
    tasks = all_checked(honest, served)
    for inference_id, found in tasks.items():
        assert honest.inference(inference_id).status == VALIDATED, inference_id
        assert found.reports and all(r.passed and r.ids_match and r.rule_violations == 0
                                     for r in found.reports), found.reports
    # Three JSON answers, two tool calls, and the free-text second turn (tool_choice none).
    kinds = sorted(honest.inference(i).grammar_kind for i in served)
    assert kinds == ["", "json_schema", "json_schema", "json_schema", "structural_tag",
                     "structural_tag"], kinds


def test_an_executor_that_ignores_the_grammar_is_invalidated(mlnodes, tmp_path):
    honest_port, cheat_port = mlnodes
    net = LocalNetwork(tmp_path, [cheat_port, honest_port, honest_port], params=ONE_LONG_EPOCH,
                       in_genesis=True, node_settings=[FAST_WORKER] * 3)
    try:
        cheater = net.nodes[0].address
        wait_for_seeds(net, 0)
        ids, texts = [], {}
        for n in range(24):
            reply = net.client(net.nodes[1]).chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Invent a person."}],
                response_format={"type": "json_schema", "json_schema": {
                    "name": "person", "schema": PERSON}}, seed=500 + n, temperature=0.7,
                max_tokens=48)  # room for a whole object: a ten-letter name may take ten tokens
            ids.append(reply.model_extra["inference_id"])
            texts[ids[-1]] = reply.choices[0].message.content
            executors = [net.finished(i).executor for i in ids]
            if cheater in executors and len(set(executors)) == 3:
                break
        assert cheater in executors and len(set(executors)) == 3, executors

        tasks = all_checked(net, ids)
        for inference_id, found in tasks.items():
            status = net.inference(inference_id).status
            if found.executor == cheater:
                assert (found.state, status) == (FAILED, INVALIDATED), inference_id
                assert all(r.rule_violations > 0 for r in found.reports), found.reports
            else:
                assert status == VALIDATED, inference_id
                assert all(r.passed and r.rule_violations == 0 for r in found.reports)
                assert matches(PERSON, json.loads(texts[inference_id])), texts[inference_id]
    finally:
        net.close()
