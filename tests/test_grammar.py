"""Grammar-constrained decoding, in process: the mask inside the seeded rule, the grammars the
API node builds from ``response_format``/``tools``/``tool_choice``, the tool-call text format,
and the chain's start rules for a grammar. The ML node's grammars run with the default model's
real tokenizer and xgrammar; processes and the openai client are in test_grammar_e2e.py."""

import json
import math

import pytest
import torch

from apinode.openai_errors import ApiError
from apinode.openai_grammar import parse_constraint
from apinode.openai_request import parse_chat
from chain.inference import payload, start_rules
from chain.inference.errors import InvalidPrompt
from chain.inference.params import MAX_GRAMMAR_LENGTH
from inferchain_pb.inference.v1.inference_pb2 import MsgStartInference
from mlnode import tool_format
from mlnode.chat_tokenizer import ChatTokenizer
from mlnode.engine import InvalidRequest
from mlnode.grammar import Grammars
from mlnode.model_store import default_gguf, prepare
from mlnode.rule_check import obeys_rule
from mlnode.sampling import SamplingParams, draw, locate
from mlnode.torch_engine import score_positions

EOS = 2
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
         {"type": "function", "function": {"name": "add"}}]


@pytest.fixture(scope="module")
def tokenizer() -> ChatTokenizer:
    return ChatTokenizer.from_folder(prepare(default_gguf()).path)


@pytest.fixture(scope="module")
def grammars(tokenizer: ChatTokenizer) -> Grammars:
    return Grammars(tokenizer.hf, 49152, [EOS])


def test_the_rule_never_picks_a_token_the_grammar_forbids_and_judges_one_a_violation():
    logits = torch.tensor([math.log(p) for p in (0.4, 0.3, 0.2, 0.1)])
    allowed = torch.tensor([False, True, False, True])
    for params in (SamplingParams(temperature=1.0, seed=5), SamplingParams(temperature=0.0)):
        picks = {draw(logits, params, i, allowed=allowed) for i in range(100)}
        assert picks <= {1, 3} and 1 in picks
        for i in range(20):
            pick = draw(logits, params, i, allowed=allowed)
            assert obeys_rule(locate(logits, params, i, pick, allowed=allowed), params.greedy)
            assert not obeys_rule(locate(logits, params, i, 0, allowed=allowed), params.greedy)
    # Without the mask the favourite comes back: the mask, not the logits, kept it out.
    assert draw(logits, SamplingParams(temperature=0.0), 0) == 0


def test_the_mask_follows_the_output_and_allows_only_eos_once_the_json_is_complete(
        tokenizer, grammars):
    params = SamplingParams(grammar_kind="json_schema", grammar=json.dumps(WEATHER))
    state = grammars.start(params)
    first = state.allowed()
    assert first.shape == (49152,) and not first[EOS]
    assert all(tokenizer.decode([t]).lstrip().startswith("{")
               for t in first.nonzero().flatten().tolist())
    for token in tokenizer.tokenize('{"city": "Paris"}'):
        assert state.allowed()[token]
        assert state.accept(token)
    assert state.allowed().nonzero().flatten().tolist() == [EOS]
    assert not grammars.start(params).accept(tokenizer.tokenize("Sure")[0])


def test_a_grammar_that_cannot_be_built_is_refused(grammars):
    for kind, text in [("json_schema", '{"properties": {"a": {"$ref": "#/nowhere"}}}'),
                       ("regex", "{}"), ("", "{}"), ("json_schema", ""),
                       ("json_schema", "x" * (MAX_GRAMMAR_LENGTH + 1))]:
        with pytest.raises(InvalidRequest):
            grammars.compile(kind, text)


def test_scoring_replays_the_mask_and_breaks_every_position_after_leaving_the_grammar(
        tokenizer, grammars):
    sampling = SamplingParams(temperature=0.0, grammar_kind="json_schema",
                              grammar=json.dumps(WEATHER))

    def scored(text: str) -> list[bool]:
        ids = [*tokenizer.tokenize(text), EOS]
        logits = torch.zeros(len(ids), 49152)
        logits[torch.arange(len(ids)), torch.tensor(ids)] = 10.0  # each token is the argmax
        return [obeys_rule(p.rule, True)
                for p in score_positions(logits, ids, 0, sampling, EOS, grammars)]

    assert all(scored('{"city": "Oslo"}'))
    off = scored('{"town": "Oslo"}')
    left = off.index(False)  # where "town" leaves the schema; nothing after it obeys
    assert 0 < left and not any(off[left:]), off


def test_tool_calls_round_trip_through_their_text_and_a_malformed_block_stays_text():
    text = "Let me see.\n" + tool_format.call_text("add", '{"a": 1, "b": 2}') + "\n" + \
        tool_format.call_text("get_weather", '{"city": "Oslo"}')
    assert tool_format.parse_calls(text) == (
        "Let me see.", [("add", '{"a": 1, "b": 2}'), ("get_weather", '{"city": "Oslo"}')])
    broken = '<tool_call>\n{"name": "add", "arguments": 3}\n</tool_call>'
    assert tool_format.parse_calls(broken) == (broken, [])


def test_a_template_without_tools_is_taught_the_call_format_and_sees_past_calls_in_it(
        tokenizer):
    assert not tokenizer.speaks_tools  # SmolLM2's template has no tools section
    calls = json.dumps([{"id": "call_1", "type": "function",
                         "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}])
    text = tokenizer.render_chat([("user", "1 + 2?"), ("assistant", "", calls, ""),
                                  ("tool", "3", "", "call_1")], json.dumps(TOOLS))
    assert tool_format.teaching(TOOLS) in text
    assert tool_format.call_text("add", '{"a": 1, "b": 2}') in text
    assert "<tool_response>\n3\n</tool_response>" in text


def test_response_formats_become_json_schema_grammars_in_the_developers_key_order():
    assert parse_constraint({"response_format": {"type": "json_object"}}).grammar == \
        '{"type":"object"}'
    schema = {"type": "object", "properties": {"z": {"type": "integer"},
                                               "a": {"type": "string"}}}
    found = parse_constraint({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": schema, "strict": True}}})
    assert (found.grammar_kind, json.loads(found.grammar)) == ("json_schema", schema)
    assert list(json.loads(found.grammar)["properties"]) == ["z", "a"]
    assert parse_constraint({"response_format": {"type": "text"}}) == parse_constraint({})


def test_tool_choices_become_structural_tags_over_the_functions_they_allow():
    def form(**fields: object) -> dict:
        constraint = parse_constraint({"tools": TOOLS, **fields})
        assert constraint.grammar_kind == "structural_tag" and constraint.calls_tools
        assert json.loads(constraint.tools)[0]["function"]["name"] == "get_weather"
        return json.loads(constraint.grammar)["format"]

    auto = form()
    assert (auto["type"], auto["at_least_one"], auto["stop_after_first"]) == (
        "triggered_tags", False, False)
    assert [t["begin"] for t in auto["tags"]] == [tool_format.begin("get_weather"),
                                                  tool_format.begin("add")]
    assert auto["tags"][0]["content"]["json_schema"] == WEATHER
    required = form(tool_choice="required", parallel_tool_calls=False)
    assert (required["type"], required["at_least_one"], required["stop_after_first"]) == (
        "tags_with_separator", True, True)
    named = form(tool_choice={"type": "function", "function": {"name": "add"}})
    assert [t["begin"] for t in named["tags"]] == [tool_format.begin("add")]
    none = parse_constraint({"tools": TOOLS, "tool_choice": "none"})
    assert (none.grammar_kind, none.calls_tools, bool(none.tools)) == ("", False, True)


@pytest.mark.parametrize(("fields", "param"), [
    ({"response_format": "json"}, "response_format"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object"}, "strict": "yes"}}},
     "response_format.json_schema.strict"),
    ({"tools": {}}, "tools"),
    ({"tools": [TOOLS[1], TOOLS[1]]}, "tools[1].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
     "tools[0].function.parameters"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {}}},
     "tool_choice.function.name"),
    ({"tools": TOOLS, "parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),
])
def test_bad_formats_and_tools_name_their_param(fields, param):
    with pytest.raises(ApiError) as bad:
        parse_constraint(fields)
    assert (bad.value.status, bad.value.body()["error"]["param"]) == (400, param)


def test_the_chain_refuses_a_malformed_grammar_and_the_signature_covers_it():
    start = MsgStartInference(grammar_kind="json_schema", grammar='{"type":"object"}')
    start_rules.check_grammar(start)
    start_rules.check_grammar(MsgStartInference())
    for kind, text in [("regex", "{}"), ("", "{}"), ("json_schema", ""),
                       ("json_schema", "[1]"), ("json_schema", "{"),
                       ("json_schema", '{"a":"' + "x" * MAX_GRAMMAR_LENGTH + '"}')]:
        with pytest.raises(InvalidPrompt):
            start_rules.check_grammar(MsgStartInference(grammar_kind=kind, grammar=text))
    other = MsgStartInference(grammar_kind="json_schema", grammar='{"type":"array"}')
    assert payload.start_payload_of(start) != payload.start_payload_of(other)
    assert payload.start_payload_of(start) != payload.start_payload_of(MsgStartInference())


def test_a_second_turn_carries_the_calls_and_the_tool_answer():
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]
    body = {"model": "m", "tools": TOOLS, "messages": [
        {"role": "user", "content": "1 + 2?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"}]}
    request = parse_chat(json.dumps(body).encode())
    assert request.messages[1] == ("assistant", "", json.dumps(calls, separators=(",", ":")), "")
    assert request.messages[2] == ("tool", "3", "", "call_1")
    for messages, param in [(body["messages"][2:], "messages[0].role"),
                            ([*body["messages"][:2], {"role": "tool", "content": "3"}],
                             "messages[2].tool_call_id"),
                            ([{"role": "assistant", "tool_calls": [{"id": "c"}]}],
                             "messages[0].tool_calls[0].function")]:
        with pytest.raises(ApiError) as bad:
            parse_chat(json.dumps({**body, "messages": messages}).encode())
        assert bad.value.body()["error"]["param"] == param
