"""How answers are printed: ``json`` for programs, ``text`` (indented ``key: value`` lines, as
a Cosmos CLI's YAML) for people. Protobuf answers go through their JSON mapping first, so both
forms name fields as the .proto does and print 64-bit numbers as strings, as Cosmos does."""

import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message


def as_dict(message: Message) -> dict[str, Any]:
    """Every field, zero values included: "balance: 0" is an answer, not a missing one."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def show(data: Any, output: str) -> None:
    if isinstance(data, Message):
        data = as_dict(data)
    if output == "json":
        print(json.dumps(data, indent=2))
        return
    print("\n".join(_text(data, 0)) if data not in ({}, []) else "(none)")


def _text(data: Any, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:")
                lines.extend(_text(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    elif isinstance(data, list):
        for item in data:
            nested = _text(item, indent + 1)
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(data)}")
    return lines


def _scalar(value: Any) -> str:
    if value in ({}, []):
        return "[]" if value == [] else "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
