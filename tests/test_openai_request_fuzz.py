"""The OpenAI request parsers fed by hypothesis: any body is a request or a clear 400.

Bodies come from anyone who can reach the API node, so ``parse_chat`` and ``parse_text``
either return a ``CompletionRequest`` inside the documented limits or raise ``ApiError``
with status 400 and a message; never any other exception.
"""

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from apinode.openai_errors import ApiError
from apinode.openai_request import MAX_N, CompletionRequest, parse_chat, parse_text

FUZZ = settings(max_examples=300, deadline=None)
PARSERS = [parse_chat, parse_text]
huge_numbers = st.sampled_from([10**300, -(10**300), 2**64, -(2**63) - 1, 2**63, 1e308,
                                -1e308, 5e-324, 10**4000])
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                               allow_infinity=False) \
    | st.text(max_size=12) | huge_numbers
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=12)
messages = st.lists(st.fixed_dictionaries(
    {}, optional={"role": st.sampled_from(["user", "system", "developer", "assistant", "tool"])
                  | json_values,
                  "content": st.text(max_size=20) | st.lists(st.fixed_dictionaries(
                      {}, optional={"type": st.just("text") | json_values,
                                    "text": st.text(max_size=10) | json_values}), max_size=2)
                  | json_values}) | json_values, max_size=3)
PLAUSIBLE = {
    "max_tokens": st.integers(-2, 5000), "max_completion_tokens": st.integers(-2, 5000),
    "logprobs": st.booleans() | st.integers(-1, 7), "top_logprobs": st.integers(-1, 22),
    "temperature": st.floats(-1, 3), "top_p": st.floats(-0.5, 1.5),
    "seed": st.integers(-(2**63) - 2, 2**64 + 2), "stream": st.booleans(),
    "stop": st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=5),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "n": st.integers(-1, 10), "user": st.text(max_size=5),
}
# A valid request with some fields set to plausible or arbitrary values, or pure noise.
bodies = st.fixed_dictionaries(
    {"model": st.just("m"), "messages": st.just([{"role": "user", "content": "hi"}]),
     "prompt": st.just("hi")},
    optional={name: values | json_values for name, values in PLAUSIBLE.items()},
) | st.fixed_dictionaries({}, optional={
    "model": st.just("m") | json_values, "messages": messages | json_values,
    "prompt": st.text(max_size=10) | st.lists(st.text(max_size=5), max_size=2) | json_values,
    **{name: json_values for name in PLAUSIBLE}})


def _encode(body: object) -> bytes:
    """JSON as clients send it; ints too long for Python's str() stay valid JSON digits."""
    try:
        return json.dumps(body).encode()
    except ValueError:
        return b'{"model": "m", "max_tokens": ' + b"9" * 5000 + b"}"


def _parse(parse, raw: bytes) -> CompletionRequest | None:
    try:
        request = parse(raw)
    except ApiError as exc:
        assert exc.status == 400 and exc.message, exc.message
        assert exc.param is None or isinstance(exc.param, str)
        return None
    assert 1 <= request.n <= MAX_N and 0.0 <= request.temperature <= 2.0
    assert 0.0 < request.top_p <= 1.0 and request.max_tokens >= 1
    assert request.seed is None or 0 <= request.seed < 1 << 64
    return request


@FUZZ
@pytest.mark.parametrize("parse", PARSERS)
@given(body=bodies)
@example(body={"model": "m", "messages": [{"role": "user", "content": "hi"}], "prompt": "hi",
               "temperature": 10**400})
@example(body={"model": "m", "messages": [{"role": "user", "content": "hi"}], "prompt": "hi",
               "top_p": 10**400, "seed": -(2**63)})
def test_random_bodies_parse_or_raise_a_clear_400(parse, body):
    _parse(parse, _encode(body))


@FUZZ
@pytest.mark.parametrize("parse", PARSERS)
@given(raw=st.binary(max_size=200) | json_values.map(lambda v: _encode(v)))
@example(raw=b"\xff\xfe{}")
@example(raw=b'{"model": "\xc3\x28"}')
@example(raw=b"[" * 100_000)
@example(raw=b'{"model": NaN}')
@example(raw=b'{"temperature": Infinity}')
@example(raw=b'{"n": 1e99999}')
@example(raw=b'{"seed": ' + b"1" * 5000 + b"}")
def test_random_bytes_parse_or_raise_a_clear_400(parse, raw):
    _parse(parse, raw)
