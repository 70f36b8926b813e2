"""Typed reads of JSON request fields that fail the way OpenAI fails.

Each reader takes a value already pulled out of the body and the ``param`` to blame, so
nested fields (``messages[0].content``) are reported with their full path. ``None`` (absent
or JSON ``null``) returns the default.
"""

import json
from typing import Any

from apinode.openai_errors import ApiError, invalid_request


def json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise invalid_request(f"We could not parse the JSON body of your request ({e}). The "
                              "API expects a JSON object as the request body.") from e
    if not isinstance(value, dict):
        raise invalid_request(f"The request body must be a JSON object, but got "
                              f"{_json_type(value)} instead.", code="invalid_type")
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def integer(value: Any, param: str, default: int | None, low: int,
             high: int | None = None) -> int | None:
    if value is None:
        return default
    require(value, int, param, "an integer")
    _check_range(value, param, "integer", low, high)
    return value


def decimal(value: Any, param: str, default: float, low: float, high: float,
             low_open: bool = False) -> float:
    if value is None:
        return default
    require(value, (int, float), param, "a decimal")
    _check_range(value, param, "decimal", low, high, low_open)
    return float(value)


def boolean(value: Any, param: str, default: bool) -> bool:
    if value is None:
        return default
    require(value, bool, param, "a boolean")
    return value


def string(value: Any, param: str, required: bool = False) -> str | None:
    if value is None and required:
        raise missing(param)
    if value is not None:
        require(value, str, param, "a string")
    return value


def _check_range(value: float, param: str, kind: str, low: float, high: float | None,
                 low_open: bool = False) -> None:
    if value < low or (low_open and value == low):
        raise invalid_request(f"Invalid '{param}': {kind} below minimum value. Expected a value "
                              f"{'>' if low_open else '>='} {low}, but got {value} instead.",
                              param, f"{kind}_below_min_value")
    if high is not None and value > high:
        raise invalid_request(f"Invalid '{param}': {kind} above maximum value. Expected a value "
                              f"<= {high}, but got {value} instead.", param,
                              f"{kind}_above_max_value")


def require(value: Any, kind: type | tuple[type, ...], param: str, expected: str) -> None:
    """JSON booleans are Python ints, so ``true`` is refused wherever a number is expected."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise invalid_type(param, expected, value)


def missing(param: str) -> ApiError:
    return invalid_request(f"Missing required parameter: '{param}'.", param,
                           "missing_required_parameter")


def empty_array(param: str) -> ApiError:
    return invalid_request(f"Invalid '{param}': empty array. Expected an array with minimum "
                           "length 1, but got an empty array instead.", param, "empty_array")


def invalid_type(param: str, expected: str, value: Any) -> ApiError:
    return invalid_request(f"Invalid type for '{param}': expected {expected}, but got "
                           f"{_json_type(value)} instead.", param, "invalid_type")


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a decimal", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}
    return names[type(value)]
