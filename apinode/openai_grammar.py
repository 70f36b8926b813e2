"""``response_format``, ``tools`` and ``tool_choice`` of a chat request, as the grammar the
executor must decode under (docs/design.md §4, docs/apinode.md "Structured output and tools").

The grammar goes on chain with the start, so it is built here once, as canonical JSON text:
- ``json_object``: the JSON schema ``{"type": "object"}``;
- ``json_schema``: the developer's schema, checked against JSON Schema's metaschema and
  written compactly with its keys in the developer's order (the order properties come out);
- tools with ``tool_choice`` ``auto``, ``required`` or a named function: an xgrammar
  structural tag whose tags are ``<tool_call>`` blocks (mlnode/tool_format.py), one per
  callable function, each with that function's parameters as the arguments' schema;
  ``auto`` lets free text come first, ``required`` and a named function allow calls only, and
  ``parallel_tool_calls: false`` stops after the first call.
Every mistake is a 400 naming the param, as OpenAI reports it.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from apinode.openai_errors import ApiError, invalid_request
from apinode.openai_fields import boolean, invalid_type, missing, require, string
from mlnode import tool_format
from mlnode.sampling_params import MAX_GRAMMAR_LENGTH

MAX_TOOLS = 128
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ANY_OBJECT = {"type": "object"}


@dataclass(frozen=True)
class Constraint:
    """What a request asks of the output's shape: the grammar (kind and canonical text, both
    empty for free text), the tools for the chat template, and whether the reply holds tool
    calls to parse."""

    grammar_kind: str = ""
    grammar: str = ""
    tools: str = ""
    calls_tools: bool = False


def parse_constraint(fields: dict[str, Any]) -> Constraint:
    response_format = _response_format(fields.get("response_format"))
    tools = _tools(fields.get("tools"))
    choice = _tool_choice(fields.get("tool_choice"), tools)
    parallel = boolean(fields.get("parallel_tool_calls"), "parallel_tool_calls", True)
    tools_text = _canonical(tools) if tools else ""
    if choice == "none":
        return Constraint(*response_format, tools=tools_text) if response_format else \
            Constraint(tools=tools_text)
    if response_format:
        raise invalid_request("Invalid 'response_format': a JSON response_format cannot be "
                              "combined with tools unless 'tool_choice' is 'none'.",
                              "response_format", "invalid_value")
    callable_tools = [t for t in tools if choice in ("auto", "required")
                      or t["function"]["name"] == choice]
    tags = [{"begin": tool_format.begin(t["function"]["name"]),
             "content": {"type": "json_schema",
                         "json_schema": t["function"].get("parameters", _ANY_OBJECT)},
             "end": tool_format.END} for t in callable_tools]
    if choice == "auto":
        form = {"type": "triggered_tags", "triggers": [tool_format.OPEN], "tags": tags,
                "at_least_one": False, "stop_after_first": not parallel}
    else:
        form = {"type": "tags_with_separator", "tags": tags, "separator": "\n",
                "at_least_one": True, "stop_after_first": not parallel}
    grammar = _sized(_canonical({"type": "structural_tag", "format": form}), "tools")
    return Constraint("structural_tag", grammar, tools_text, calls_tools=True)


def _response_format(value: Any) -> tuple[str, str] | None:
    """(kind, grammar) for a JSON response format; None for text or none."""
    if value is None:
        return None
    require(value, dict, "response_format", "an object")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json_schema", _canonical(_ANY_OBJECT)
    if kind != "json_schema":
        raise invalid_request(f"Invalid value: {kind!r}. Supported values are: 'json_object', "
                              "'json_schema', and 'text'.", "response_format.type",
                              "invalid_value")
    spec = value.get("json_schema")
    if spec is None:
        raise missing("response_format.json_schema")
    require(spec, dict, "response_format.json_schema", "an object")
    _name(spec.get("name"), "response_format.json_schema.name")
    string(spec.get("description"), "response_format.json_schema.description")
    boolean(spec.get("strict"), "response_format.json_schema.strict", False)
    schema = _schema(spec.get("schema"), "response_format.json_schema.schema")
    return "json_schema", _sized(_canonical(schema), "response_format.json_schema.schema")


def _tools(value: Any) -> list[dict[str, Any]]:
    """The tools, checked; none for an empty array, as vLLM takes it."""
    if value is None:
        return []
    require(value, list, "tools", "an array")
    if len(value) > MAX_TOOLS:
        raise invalid_request(f"Invalid 'tools': array too long. Expected an array with maximum "
                              f"length {MAX_TOOLS}, but got an array with length {len(value)} "
                              "instead.", "tools", "array_above_max_length")
    tools, names = [], set()
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        function = function_of(tool, where)
        name = _name(function.get("name"), f"{where}.function.name")
        if name in names:
            raise invalid_request(f"Invalid 'tools': function name {name!r} is not unique.",
                                  f"{where}.function.name", "invalid_value")
        names.add(name)
        clean: dict[str, Any] = {"name": name}
        description = string(function.get("description"), f"{where}.function.description")
        if description is not None:
            clean["description"] = description
        if function.get("parameters") is not None:
            clean["parameters"] = _schema(function["parameters"], f"{where}.function.parameters")
        boolean(function.get("strict"), f"{where}.function.strict", False)
        tools.append({"type": "function", "function": clean})
    return tools


def function_of(entry: Any, where: str, default_type: str | None = None) -> dict[str, Any]:
    """The ``function`` object of a ``{"type": "function", "function": {...}}`` entry (a tool,
    or a call in an assistant message, whose type may be left out: ``default_type``)."""
    require(entry, dict, where, "an object")
    kind = entry.get("type", default_type)
    if kind != "function":
        raise invalid_request(f"Invalid value: {kind!r}. Supported values are: 'function'.",
                              f"{where}.type", "invalid_value")
    function = entry.get("function")
    if function is None:
        raise missing(f"{where}.function")
    require(function, dict, f"{where}.function", "an object")
    return function


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> str:
    """"none", "auto", "required" or the name of the one function to call."""
    if value is None:
        return "auto" if tools else "none"
    if not tools:
        raise invalid_request("Invalid value for 'tool_choice': 'tool_choice' is only allowed "
                              "when 'tools' are specified.", "tool_choice", "invalid_value")
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise invalid_request(f"Invalid value: {value!r}. Supported values are: 'none', "
                                  "'auto', and 'required'.", "tool_choice", "invalid_value")
        return value
    require(value, dict, "tool_choice", "a string or an object")
    if value.get("type") != "function":
        raise invalid_request(f"Invalid value: {value.get('type')!r}. Supported values are: "
                              "'function'.", "tool_choice.type", "invalid_value")
    function = value.get("function")
    require(function, dict, "tool_choice.function", "an object")
    name = string(function.get("name"), "tool_choice.function.name", required=True)
    if name not in {t["function"]["name"] for t in tools}:
        raise invalid_request(f"Invalid value for 'tool_choice': function {name!r} is not among "
                              "the 'tools'.", "tool_choice.function.name", "invalid_value")
    return name


def _name(value: Any, param: str) -> str:
    name = string(value, param, required=True)
    if not _NAME.match(name):
        raise invalid_request(f"Invalid '{param}': {name!r} must be 1 to 64 letters, digits, "
                              "underscores or dashes.", param, "invalid_value")
    return name


def _schema(value: Any, param: str) -> dict[str, Any]:
    """A JSON schema object that JSON Schema's own metaschema accepts."""
    if value is None:
        return dict(_ANY_OBJECT)
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        raise invalid_request(f"Invalid schema for '{param}': {exc.message}.", param,
                              "invalid_value") from exc
    return value


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _sized(text: str, param: str) -> str:
    if len(text) > MAX_GRAMMAR_LENGTH:
        raise invalid_request(f"Invalid '{param}': the grammar it makes is {len(text)} "
                              f"characters; at most {MAX_GRAMMAR_LENGTH}.", param,
                              "invalid_value")
    return text


def refused_grammar(exc: Exception, constraint: Constraint) -> ApiError:
    """The 400 for a chat the ML node could not render or a grammar it could not build,
    blaming the param it came from."""
    param = "tools" if constraint.calls_tools else \
        "response_format" if constraint.grammar_kind else "messages"
    return invalid_request(f"Invalid '{param}': {exc}", param, "invalid_value")
