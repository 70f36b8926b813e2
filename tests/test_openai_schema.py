"""OpenAI request parsing and response shaping, checked against the official client's types."""

import json

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_choice import Logprobs

from apinode import openai_errors
from apinode.openai_errors import ApiError
from apinode.openai_request import CompletionRequest, parse_chat, parse_text, sampling_for
from apinode.openai_response import (
    SSE_DONE,
    ChoiceResult,
    ChunkStream,
    OutputToken,
    Usage,
    completion_body,
    sse,
)

HI = [{"role": "user", "content": "hi"}]


def chat(**fields):
    return parse_chat(json.dumps({"model": "m", "messages": HI, **fields}).encode())


def text(**fields):
    return parse_text(json.dumps({"model": "m", "prompt": "Once", **fields}).encode())


# --- valid requests -------------------------------------------------------------------------

def test_a_minimal_chat_request_gets_the_defaults():
    assert chat() == CompletionRequest(kind="chat", model="m", messages=(("user", "hi"),))


def test_a_full_chat_request_keeps_every_field():
    r = chat(max_tokens=5, temperature=0, top_p=0.5, seed=7, stop=["\n", "END"], stream=True,
             stream_options={"include_usage": True}, logprobs=True, top_logprobs=3, n=2,
             user="alice")
    assert (r.max_tokens, r.temperature, r.top_p, r.seed, r.stop) == (5, 0.0, 0.5, 7,
                                                                      ("\n", "END"))
    assert r.stream and r.include_usage and r.logprobs and r.top_logprobs == 3
    assert (r.n, r.user) == (2, "alice")


def test_content_parts_are_joined_and_developer_is_a_system_message():
    r = chat(messages=[
        {"role": "developer", "content": "be brief", "name": "ops"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": ""}])
    assert r.messages == (("system", "be brief"), ("user", "a\nb"), ("assistant", ""))


def test_max_completion_tokens_wins_over_max_tokens():
    assert chat(max_tokens=10, max_completion_tokens=20).max_tokens == 20
    assert chat(max_tokens=10, max_completion_tokens=None).max_tokens == 10


def test_null_means_default_and_unknown_fields_are_ignored():
    r = chat(temperature=None, top_p=None, seed=None, stop=None, n=None, stream=None,
             logprobs=None, top_logprobs=None, user=None, frequency_penalty=None,
             presence_penalty=None, logit_bias=None, store=None, service_tier=None,
             tools=[], response_format={"type": "text"}, some_vendor_field={"x": 1})
    assert r == chat()


def test_penalties_and_logit_bias_reach_the_sampling_parameters():
    r = chat(presence_penalty=1.5, frequency_penalty=-0.5, logit_bias={"42": 100, "7": -1.5})
    assert (r.presence_penalty, r.frequency_penalty) == (1.5, -0.5)
    assert r.logit_bias == ((7, -1.5), (42, 100.0))
    sampling = sampling_for(r, seed=3)
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (1.5, -0.5)
    assert sampling.logit_bias == ((7, -1.5), (42, 100.0)) and sampling.transforms


def test_fields_that_change_nothing_are_accepted_in_their_harmless_values():
    assert chat(store=False, service_tier="auto", modalities=["text"],
                metadata={"k": "v"}) == chat()
    assert text(echo=False, best_of=2, n=2).n == 2


def test_a_single_stop_string_and_seeds_of_either_sign():
    assert chat(stop="END").stop == ("END",)
    assert chat(seed=-1).seed == 2**64 - 1
    assert chat(seed=2**64 - 1).seed == 2**64 - 1


def test_top_logprobs_zero_is_allowed_without_logprobs():
    assert chat(top_logprobs=0).top_logprobs == 0


def test_text_requests_take_a_string_or_a_list_of_one():
    assert text() == CompletionRequest(kind="text", model="m", prompt="Once", max_tokens=16)
    assert text(prompt=["Upon"]).prompt == "Upon"


def test_legacy_integer_logprobs_become_top_logprobs():
    r = text(logprobs=3)
    assert r.logprobs and r.top_logprobs == 3
    assert text(logprobs=0).logprobs and not text().logprobs


def test_sampling_for_maps_the_request_and_uses_the_given_seed():
    params = sampling_for(chat(temperature=0.7, top_p=0.9, max_tokens=12, stop="x", seed=1), 99)
    assert (params.temperature, params.top_p, params.top_k) == (0.7, 0.9, 0)
    assert (params.max_tokens, params.stop, params.seed) == (12, ("x",), 99)


# --- invalid requests -----------------------------------------------------------------------

INVALID_CHAT = [
    ({"messages": HI}, "model", "must provide a model"),
    ({"model": 3, "messages": HI}, "model", "expected a string"),
    ({"model": "m"}, "messages", "Missing required parameter"),
    ({"model": "m", "messages": "hi"}, "messages", "expected an array, but got a string"),
    ({"model": "m", "messages": []}, "messages", "empty array"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]", "expected an object"),
    ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role", "Missing"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role",
     "Supported values"),
    ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content", "Missing"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content",
     "but got an integer"),
    ({"model": "m", "messages": [{"role": "user", "content": []}]}, "messages[0].content",
     "empty array"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "messages[0].content[0].type", "Only 'text'"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "messages[0].content[0].text", "Missing"),
    ({"temperature": "hot"}, "temperature", "expected a decimal, but got a string"),
    ({"temperature": 2.5}, "temperature", "above maximum"),
    ({"temperature": -0.1}, "temperature", "below minimum"),
    ({"temperature": True}, "temperature", "but got a boolean"),
    ({"top_p": 0}, "top_p", "Expected a value > 0"),
    ({"top_p": 1.5}, "top_p", "above maximum"),
    ({"max_tokens": -1}, "max_tokens", "below minimum"),
    ({"max_tokens": 0}, "max_tokens", "below minimum"),
    ({"max_tokens": True}, "max_tokens", "expected an integer, but got a boolean"),
    ({"max_tokens": 5.5}, "max_tokens", "expected an integer, but got a decimal"),
    ({"max_completion_tokens": "9"}, "max_completion_tokens", "expected an integer"),
    ({"seed": 1.5}, "seed", "expected an integer"),
    ({"seed": 2**64}, "seed", "above maximum"),
    ({"stop": 3}, "stop", "string or an array of strings"),
    ({"stop": ["a", 1]}, "stop", "string or an array of strings"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "maximum length 4"),
    ({"stop": [""]}, "stop", "1 to 256 characters"),
    ({"stop": "x" * 257}, "stop", "1 to 256 characters"),
    ({"stream": "yes"}, "stream", "expected a boolean"),
    ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed when"),
    ({"stream": True, "stream_options": True}, "stream_options", "expected an object"),
    ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage",
     "expected a boolean"),
    ({"logprobs": 1}, "logprobs", "expected a boolean"),
    ({"top_logprobs": 2}, "top_logprobs", "'logprobs' must be set to true"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "above maximum"),
    ({"n": 0}, "n", "below minimum"),
    ({"n": 9}, "n", "above maximum"),
    ({"user": 7}, "user", "expected a string"),
    ({"presence_penalty": 2.5}, "presence_penalty", "above maximum"),
    ({"frequency_penalty": -2.01}, "frequency_penalty", "below minimum"),
    ({"frequency_penalty": "1"}, "frequency_penalty", "expected a decimal"),
    ({"logit_bias": [1, 2]}, "logit_bias", "expected an object"),
    ({"logit_bias": {"abc": 1}}, "logit_bias", "is not a token id"),
    ({"logit_bias": {"-3": 1}}, "logit_bias", "is not a token id"),
    ({"logit_bias": {"7": 1, "07": 2}}, "logit_bias", "appears twice"),
    ({"logit_bias": {"7": 100.5}}, "logit_bias.7", "above maximum"),
    ({"logit_bias": {"7": True}}, "logit_bias.7", "expected a decimal"),
    ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias", "at most 300"),
    ({"functions": [{"name": "f"}]}, "functions", "Unsupported value"),
    ({"function_call": "auto"}, "function_call", "Unsupported value"),
    ({"audio": {"voice": "alloy"}}, "audio", "Unsupported value"),
    ({"modalities": ["text", "audio"]}, "modalities", "Unsupported value"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction", "Unsupported value"),
    ({"reasoning_effort": "low"}, "reasoning_effort", "Unsupported value"),
    ({"web_search_options": {}}, "web_search_options", "Unsupported value"),
    ({"store": True}, "store", "Unsupported value"),
    ({"service_tier": "flex"}, "service_tier", "Unsupported value"),
]


@pytest.mark.parametrize(("fields", "param", "fragment"), INVALID_CHAT)
def test_invalid_chat_fields_name_the_param(fields, param, fragment):
    body = fields if "messages" in fields or "model" in fields else {
        "model": "m", "messages": HI, **fields}
    with pytest.raises(ApiError) as caught:
        parse_chat(json.dumps(body).encode())
    error = caught.value
    assert (error.status, error.param, error.type) == (400, param, "invalid_request_error")
    assert fragment in error.message
    assert error.body() == {"error": {"message": error.message, "type": "invalid_request_error",
                                      "param": param, "code": error.code}}


INVALID_TEXT = [
    ({"prompt": None}, "prompt", "Missing"),
    ({"prompt": ""}, "prompt", "must not be empty"),
    ({"prompt": 5}, "prompt", "expected a string"),
    ({"prompt": ["a", "b"]}, "prompt", "exactly one string"),
    ({"prompt": [1, 2, 3]}, "prompt", "token-id prompts"),
    ({"logprobs": True}, "logprobs", "expected an integer, but got a boolean"),
    ({"logprobs": 6}, "logprobs", "above maximum"),
    ({"max_tokens": -1}, "max_tokens", "below minimum"),
    ({"echo": True}, "echo", "Unsupported value"),
    ({"suffix": "end"}, "suffix", "Unsupported value"),
    ({"best_of": 3}, "best_of", "best_of equal to n"),
    ({"n": 2, "best_of": 1}, "best_of", "best_of equal to n"),
    ({"logit_bias": {"1": -101}}, "logit_bias.1", "below minimum"),
]


@pytest.mark.parametrize(("fields", "param", "fragment"), INVALID_TEXT)
def test_invalid_text_fields_name_the_param(fields, param, fragment):
    body = {"model": "m", "prompt": "Once", **fields}
    with pytest.raises(ApiError) as caught:
        parse_text(json.dumps(body).encode())
    assert (caught.value.status, caught.value.param) == (400, param)
    assert fragment in caught.value.message


@pytest.mark.parametrize(("body", "fragment"), [
    (b"{not json", "could not parse the JSON body"),
    (b"", "could not parse the JSON body"),
    (b'{"model": "m", "temperature": NaN}', "NaN is not valid JSON"),
    (b"\xff\xfe\x00garbage", "could not parse the JSON body"),
    (b"[" * 100_000 + b"]" * 100_000, "could not parse the JSON body"),
    (b'["model", "m"]', "must be a JSON object, but got an array"),
    (b"null", "must be a JSON object, but got null"),
])
def test_a_body_that_is_not_a_json_object_is_a_400(body, fragment):
    for parse in (parse_chat, parse_text):
        with pytest.raises(ApiError) as caught:
            parse(body)
        assert caught.value.status == 400 and caught.value.param is None
        assert fragment in caught.value.message


def test_error_constructors_use_openai_statuses_and_codes():
    cases = {
        openai_errors.authentication_failed("Incorrect API key provided"): (401, "invalid_api_key"),
        openai_errors.insufficient_balance("balance too low"): (402, "insufficient_quota"),
        openai_errors.model_not_found("gpt-9"): (404, "model_not_found"),
        openai_errors.request_too_large(1 << 20): (413, "request_too_large"),
        openai_errors.rate_limited("slow down"): (429, "rate_limit_exceeded"),
        openai_errors.no_executor("m"): (503, "no_executor"),
        openai_errors.context_length_exceeded(8192, 8000, 256, "messages"):
            (400, "context_length_exceeded"),
    }
    for error, (status, code) in cases.items():
        assert (error.status, error.body()["error"]["code"]) == (status, code)
    assert openai_errors.model_not_found("gpt-9").body()["error"]["param"] == "model"
    too_long = openai_errors.context_length_exceeded(8192, 8000, 256, "messages")
    assert "8256 tokens (8000 in the messages" in too_long.message


# --- responses, checked with the openai client's own types -----------------------------------

TOKENS = (
    OutputToken(9906, "Hello", -0.25, (("Hello", -0.25), ("Hi", -1.5), ("Hey", -2.0))),
    OutputToken(0, " wörld", float("-inf"), ((" wörld", float("-inf")),)),
)


def result(inference_id="inf-1", finish="stop"):
    return ChoiceResult(inference_id, "Hello wörld", finish, TOKENS, prompt_tokens=7)


def test_a_chat_completion_parses_with_logprobs_and_inference_id():
    request = chat(logprobs=True, top_logprobs=2)
    body = completion_body(request, [result(), result("inf-2", "length")], created=1)
    parsed = ChatCompletion.model_validate(body)
    assert parsed.id.startswith("chatcmpl-") and parsed.object == "chat.completion"
    assert [c.finish_reason for c in parsed.choices] == ["stop", "length"]
    assert parsed.choices[0].message.content == "Hello wörld"
    first = parsed.choices[0].logprobs.content[0]
    assert (first.token, first.logprob, first.bytes) == ("Hello", -0.25, list(b"Hello"))
    assert [t.token for t in first.top_logprobs] == ["Hello", "Hi"]
    second = parsed.choices[0].logprobs.content[1]
    assert second.logprob == -9999.0 and second.bytes == list(" wörld".encode())
    assert parsed.usage.prompt_tokens == 14 and parsed.usage.completion_tokens == 4
    assert parsed.usage.total_tokens == 18
    assert parsed.inference_id == "inf-1" and parsed.choices[1].inference_id == "inf-2"
    json.dumps(body, allow_nan=False)


def test_a_chat_completion_without_logprobs_has_none():
    parsed = ChatCompletion.model_validate(completion_body(chat(), [result()]))
    assert parsed.choices[0].logprobs is None


def test_a_text_completion_parses_with_legacy_logprobs():
    body = completion_body(text(logprobs=1), [result()])
    parsed = Completion.model_validate(body)
    assert parsed.id.startswith("cmpl-") and parsed.object == "text_completion"
    logprobs = parsed.choices[0].logprobs
    assert logprobs.tokens == ["Hello", " wörld"]
    assert logprobs.token_logprobs == [-0.25, -9999.0]
    assert logprobs.top_logprobs == [{"Hello": -0.25}, {" wörld": -9999.0}]
    assert logprobs.text_offset == [0, 5]
    assert parsed.choices[0].text == "Hello wörld" and parsed.inference_id == "inf-1"


def test_legacy_top_logprobs_always_include_the_sampled_token():
    token = OutputToken(1, "b", -2.0, (("a", -0.1), ("c", -1.0)))
    body = completion_body(text(logprobs=1), [ChoiceResult("i", "b", "stop", (token,), 1)])
    assert body["choices"][0]["logprobs"]["top_logprobs"] == [{"a": -0.1, "b": -2.0}]


def test_a_chat_stream_opens_with_the_role_then_content_then_finish_then_usage():
    request = chat(stream=True, stream_options={"include_usage": True}, logprobs=True,
                   top_logprobs=1)
    stream = ChunkStream(request, ["inf-1"])
    chunks = [stream.opening(0), stream.content(0, "Hello", TOKENS[:1]),
              stream.content(0, " wörld", TOKENS[1:]), stream.finish(0, "stop"),
              stream.usage(Usage(7, 2))]
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert len({p.id for p in parsed}) == 1 and parsed[0].object == "chat.completion.chunk"
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(p.choices[0].delta.content or "" for p in parsed[:4]) == "Hello wörld"
    assert parsed[1].choices[0].logprobs.content[0].top_logprobs[0].token == "Hello"
    assert parsed[3].choices[0].finish_reason == "stop"
    assert all(p.usage is None for p in parsed[:4])
    assert parsed[4].choices == [] and parsed[4].usage.total_tokens == 9
    assert parsed[2].inference_id == "inf-1" and parsed[2].choices[0].inference_id == "inf-1"


def test_a_stream_without_include_usage_has_no_usage_chunk():
    stream = ChunkStream(chat(stream=True), ["inf-1"])
    assert stream.usage(Usage(1, 1)) is None
    assert "usage" not in stream.finish(0, "length")


def test_a_text_stream_carries_text_offsets_across_chunks():
    """Mid-stream text chunks have ``finish_reason: null`` as OpenAI sends them, which the
    client's Completion type (built for whole responses) does not admit, so their logprobs
    are checked with the client's Logprobs type and the finish chunk as a whole."""
    stream = ChunkStream(text(stream=True, logprobs=0), ["a", "b"])
    assert stream.opening(0) is None
    stream.content(1, "Hello", TOKENS[:1])
    chunk = stream.content(1, " wörld", TOKENS[1:])
    logprobs = Logprobs.model_validate(chunk["choices"][0]["logprobs"])
    assert logprobs.text_offset == [5] and logprobs.tokens == [" wörld"]
    assert chunk["choices"][0]["text"] == " wörld" and chunk["choices"][0]["index"] == 1
    assert chunk["choices"][0]["inference_id"] == "b" and chunk["inference_id"] == "a"
    finish = Completion.model_validate(stream.finish(1, "length"))
    assert finish.choices[0].finish_reason == "length" and finish.choices[0].text == ""


def test_sse_framing():
    assert sse({"a": "ö"}) == 'data: {"a":"ö"}\n\n'.encode()
    assert SSE_DONE == b"data: [DONE]\n\n"
    error = openai_errors.no_executor("m")
    assert json.loads(sse(error.body())[len(b"data: "):]) == error.body()
