"""Parses OpenAI request bodies into one validated, transport-free ``CompletionRequest``.

Everything a developer can get wrong is caught here, before the transfer agent escrows funds
or draws an executor, and reported as OpenAI reports it: a 400 whose ``param`` names the
field. Every field of OpenAI's own is either honoured or refused by name (``_unsupported``):
none that would change the output is silently dropped. Fields OpenAI does not define are
ignored, as OpenAI-compatible servers do, so clients that send vendor-specific options keep
working; explicit ``null`` means "use the default", as it does for OpenAI.

Limits follow OpenAI's API where it has one (temperature 0..2 and at most 4 stop sequences, as
the chain's ``chain.inference.params`` holds them for starts; top_logprobs 0..20, legacy
logprobs 0..5) and stay inside what ``mlnode.limits`` accepts (stop
sequences of at most ``MAX_STOP_LENGTH`` characters, shared through the torch-free
``mlnode.sampling_params``). Penalties (-2..2) and logit biases (-100..100 on at most 300 token
ids) are OpenAI's bounds, the chain's for starts; whether each biased id is in the model's
vocabulary the transfer agent asks its ML node. Our own choices: ``n`` is capped at the
chain's 8 and each choice is served as its own independent inference (own executor draw,
escrow and ``inference_id``); seeds may be any signed 64-bit or unsigned 64-bit integer and
are stored as the unsigned 64-bit value the chain and the sampling rule use.
"""

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from apinode.openai_errors import invalid_request
from apinode.openai_fields import (
    boolean,
    decimal,
    empty_array,
    integer,
    invalid_type,
    json_object,
    missing,
    require,
    string,
)
from apinode.openai_grammar import Constraint, function_of, parse_constraint
from chain.inference.params import (
    MAX_CHOICES,
    MAX_LOGIT_BIAS,
    MAX_LOGIT_BIAS_ENTRIES,
    MAX_PENALTY,
    MAX_STOP_SEQUENCES,
    MAX_TEMPERATURE,
)
from mlnode.sampling_params import MAX_STOP_LENGTH, SamplingParams

CHAT_DEFAULT_MAX_TOKENS = 256
TEXT_DEFAULT_MAX_TOKENS = 16  # OpenAI's and vLLM's default for the legacy endpoint
MAX_N = MAX_CHOICES
MAX_TOP_LOGPROBS = 20
MAX_TEXT_LOGPROBS = 5
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
         "tool": "tool"}
# A chat message: (role, content), or, for an assistant's tool calls and a tool's answer,
# (role, content, tool_calls as canonical JSON, tool_call_id).
Message = tuple[str, str] | tuple[str, str, str, str]
_UINT64 = 1 << 64


@dataclass(frozen=True)
class CompletionRequest:
    """One chat or text completion request, with every default filled in.

    ``messages`` holds (role, content) pairs for chat (with tool calls and the call id where
    a message has them); ``prompt`` the text for completions. ``constraint`` is the grammar
    and tools of ``response_format``/``tools``/``tool_choice`` (apinode/openai_grammar.py).
    ``logprobs``/``top_logprobs`` are the same for both endpoints: the legacy integer
    ``logprobs=k`` becomes ``logprobs=True, top_logprobs=k``. ``seed`` None means the transfer
    agent picks one.
    """

    kind: Literal["chat", "text"]
    model: str
    messages: tuple[Message, ...] = ()
    prompt: str = ""
    max_tokens: int = CHAT_DEFAULT_MAX_TOKENS
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    n: int = 1
    user: str | None = None
    constraint: Constraint = field(default_factory=Constraint)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    # (token id, bias), ids ascending
    logit_bias: tuple[tuple[int, float], ...] = ()


def parse_chat(body: bytes) -> CompletionRequest:
    """A ``POST /v1/chat/completions`` body; ``max_completion_tokens`` wins over ``max_tokens``."""
    fields = json_object(body)
    _unsupported(fields, CHAT_REFUSED)
    max_tokens = integer(fields.get("max_tokens"), "max_tokens", CHAT_DEFAULT_MAX_TOKENS, 1)
    newer = integer(fields.get("max_completion_tokens"), "max_completion_tokens", None, 1)
    logprobs = boolean(fields.get("logprobs"), "logprobs", False)
    top = integer(fields.get("top_logprobs"), "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
    if top and not logprobs:
        raise invalid_request("Invalid value for 'top_logprobs': 'logprobs' must be set to true "
                              "when 'top_logprobs' is used.", "top_logprobs", "invalid_value")
    return CompletionRequest(
        kind="chat", messages=_messages(fields.get("messages")),
        max_tokens=max_tokens if newer is None else newer, logprobs=logprobs, top_logprobs=top,
        constraint=parse_constraint(fields), **_common(fields))


def parse_text(body: bytes) -> CompletionRequest:
    """A ``POST /v1/completions`` body; ``logprobs`` is the legacy integer 0..5."""
    fields = json_object(body)
    _unsupported(fields, TEXT_REFUSED)
    k = integer(fields.get("logprobs"), "logprobs", None, 0, MAX_TEXT_LOGPROBS)
    request = CompletionRequest(
        kind="text", prompt=_prompt(fields.get("prompt")),
        max_tokens=integer(fields.get("max_tokens"), "max_tokens", TEXT_DEFAULT_MAX_TOKENS, 1),
        logprobs=k is not None, top_logprobs=k or 0, **_common(fields))
    if fields.get("best_of") not in (None, request.n):
        raise invalid_request("Unsupported value for 'best_of': only best_of equal to n (or "
                              "unset) is served; every completion generated is returned.",
                              "best_of", "unsupported_parameter")
    return request


def sampling_for(request: CompletionRequest, seed: int) -> SamplingParams:
    """The ML node's sampling parameters, with the seed the transfer agent fixed."""
    return SamplingParams(temperature=request.temperature, top_p=request.top_p, top_k=0,
                          max_tokens=request.max_tokens, stop=request.stop, seed=seed,
                          grammar_kind=request.constraint.grammar_kind,
                          grammar=request.constraint.grammar,
                          presence_penalty=request.presence_penalty,
                          frequency_penalty=request.frequency_penalty,
                          logit_bias=request.logit_bias)


def _common(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields both endpoints share, as ``CompletionRequest`` keyword arguments."""
    stream = boolean(fields.get("stream"), "stream", False)
    seed = integer(fields.get("seed"), "seed", None, -(_UINT64 >> 1), _UINT64 - 1)
    return {
        "model": _model(fields.get("model")),
        "temperature": decimal(fields.get("temperature"), "temperature", 1.0, 0.0, MAX_TEMPERATURE),
        "top_p": decimal(fields.get("top_p"), "top_p", 1.0, 0.0, 1.0, low_open=True),
        "seed": None if seed is None else seed % _UINT64,
        "stop": _stop(fields.get("stop")),
        "stream": stream,
        "include_usage": _include_usage(fields.get("stream_options"), stream),
        "n": integer(fields.get("n"), "n", 1, 1, MAX_N),
        "user": string(fields.get("user"), "user"),
        "presence_penalty": decimal(fields.get("presence_penalty"), "presence_penalty", 0.0,
                                    -MAX_PENALTY, MAX_PENALTY),
        "frequency_penalty": decimal(fields.get("frequency_penalty"), "frequency_penalty", 0.0,
                                     -MAX_PENALTY, MAX_PENALTY),
        "logit_bias": _logit_bias(fields.get("logit_bias")),
    }


# OpenAI fields this network does not serve, refused whenever they ask for anything: a value
# that is not null (or, where a dict maps a field to the values it accepts, not one of those).
# response_format, tools, tool_choice and parallel_tool_calls belong to constrained decoding.
CHAT_REFUSED: dict[str, tuple[object, ...]] = {
    "functions": (), "function_call": (), "audio": (), "prediction": (),
    "reasoning_effort": (), "web_search_options": (), "store": (False,),
    "service_tier": ("auto", "default"), "modalities": (["text"],),
}
TEXT_REFUSED: dict[str, tuple[object, ...]] = {
    "echo": (False,), "suffix": (), "store": (False,), "service_tier": ("auto", "default"),
}


def _unsupported(fields: dict[str, Any], refused: dict[str, tuple[object, ...]]) -> None:
    for name, accepted in refused.items():
        value = fields.get(name)
        if value is not None and not any(value == a and type(value) is type(a)
                                         for a in accepted):
            allowed = " or ".join(repr(a) for a in (None, *accepted))
            raise invalid_request(f"Unsupported value for '{name}': this network accepts only "
                                  f"{allowed} (it cannot honour {repr(value)[:100]}).", name,
                                  "unsupported_parameter")


def _logit_bias(value: Any) -> tuple[tuple[int, float], ...]:
    """OpenAI's map of token id (a decimal string) to a bias in [-100, 100], ids ascending."""
    if value is None:
        return ()
    require(value, dict, "logit_bias", "an object")
    if len(value) > MAX_LOGIT_BIAS_ENTRIES:
        raise invalid_request(f"Invalid 'logit_bias': too many properties. Expected an object "
                              f"with at most {MAX_LOGIT_BIAS_ENTRIES} properties, but got "
                              f"{len(value)} instead.", "logit_bias", "invalid_value")
    biases: dict[int, float] = {}
    for key, bias in value.items():
        if not (key.isascii() and key.isdigit()) or int(key) >= 1 << 32:
            raise invalid_request(f"Invalid key in 'logit_bias': {key!r} is not a token id.",
                                  "logit_bias", "invalid_value")
        if int(key) in biases:
            raise invalid_request(f"Invalid 'logit_bias': token id {int(key)} appears twice.",
                                  "logit_bias", "invalid_value")
        biases[int(key)] = decimal(bias, f"logit_bias.{key}", 0.0, -MAX_LOGIT_BIAS,
                                   MAX_LOGIT_BIAS)
    return tuple(sorted(biases.items()))


def _model(value: Any) -> str:
    if value is None or value == "":
        raise invalid_request("you must provide a model parameter", "model",
                              "missing_required_parameter")
    return string(value, "model")


def _messages(value: Any) -> tuple[Message, ...]:
    if value is None:
        raise missing("messages")
    require(value, list, "messages", "an array")
    if not value:
        raise empty_array("messages")
    messages: list[Message] = []
    for i, message in enumerate(value):
        called = any(len(m) > 2 and m[2] for m in messages)
        messages.append(_message(message, f"messages[{i}]", called))
    return tuple(messages)


def _message(value: Any, where: str, called: bool) -> Message:
    """One message; a ``tool`` message only once an assistant message made tool calls
    (``called``), as it answers one of them."""
    require(value, dict, where, "an object")
    role = string(value.get("role"), f"{where}.role", required=True)
    if role not in ROLES or (role == "tool" and not called):
        roles = [r for r in ROLES if r != "tool" or called]
        raise invalid_request(f"Invalid value: '{role}'. Supported values are: "
                              f"{', '.join(repr(r) for r in roles)}"
                              f"{'' if called else ' (tool only after tool_calls)'}.",
                              f"{where}.role", "invalid_value")
    calls = _tool_calls(value.get("tool_calls"), f"{where}.tool_calls") \
        if role == "assistant" else ""
    if role == "tool":
        call_id = string(value.get("tool_call_id"), f"{where}.tool_call_id", required=True)
        return "tool", _content(value.get("content"), f"{where}.content"), "", call_id
    if calls:  # an assistant that called tools may have no content
        content = value.get("content")
        return role, "" if content is None else _content(content, f"{where}.content"), calls, ""
    return ROLES[role], _content(value.get("content"), f"{where}.content")


def _tool_calls(value: Any, where: str) -> str:
    """An assistant's tool calls as canonical JSON, or "" for none."""
    if value is None:
        return ""
    require(value, list, where, "an array")
    calls = []
    for i, call in enumerate(value):
        at = f"{where}[{i}]"
        function = function_of(call, at, default_type="function")
        calls.append({"id": string(call.get("id"), f"{at}.id", required=True),
                      "type": "function",
                      "function": {"name": string(function.get("name"), f"{at}.function.name",
                                                  required=True),
                                   "arguments": string(function.get("arguments"),
                                                       f"{at}.function.arguments",
                                                       required=True)}})
    return json.dumps(calls, ensure_ascii=False, separators=(",", ":")) if calls else ""


def _content(value: Any, where: str) -> str:
    """A string, or text parts joined with newlines (as vLLM joins them)."""
    if value is None:
        raise missing(where)
    if isinstance(value, str):
        return value
    require(value, list, where, "one of a string or array of objects")
    if not value:
        raise empty_array(where)
    texts = []
    for i, part in enumerate(value):
        require(part, dict, f"{where}[{i}]", "an object")
        if part.get("type") != "text":
            raise invalid_request(f"Invalid value: {part.get('type')!r}. Only 'text' content "
                                  "parts are supported.", f"{where}[{i}].type", "invalid_value")
        texts.append(string(part.get("text"), f"{where}[{i}].text", required=True))
    return "\n".join(texts)


def _prompt(value: Any) -> str:
    if value is None:
        raise missing("prompt")
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], str):
            raise invalid_request("Invalid 'prompt': a list must hold exactly one string; "
                                  "batched and token-id prompts are not supported.", "prompt",
                                  "invalid_value")
        value = value[0]
    require(value, str, "prompt", "a string")
    if not value:
        raise invalid_request("Invalid 'prompt': the prompt must not be empty.", "prompt",
                              "invalid_value")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid_type("stop", "a string or an array of strings", value)
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid_request(f"Invalid 'stop': array too long. Expected an array with maximum "
                              f"length {MAX_STOP_SEQUENCES}, but got an array with length "
                              f"{len(stops)} instead.", "stop", "array_above_max_length")
    if any(not 1 <= len(s) <= MAX_STOP_LENGTH for s in stops):
        raise invalid_request(f"Invalid 'stop': each stop sequence must be 1 to "
                              f"{MAX_STOP_LENGTH} characters long.", "stop", "invalid_value")
    return tuple(stops)


def _include_usage(value: Any, stream: bool) -> bool:
    if value is None:
        return False
    if not stream:
        raise invalid_request("The 'stream_options' parameter is only allowed when 'stream' is "
                              "enabled.", "stream_options", "invalid_value")
    require(value, dict, "stream_options", "an object")
    return boolean(value.get("include_usage"), "stream_options.include_usage", False)
