"""The text form of a tool call, shared by the chat template side, the grammar and the reply.

A model calls a function by writing ``<tool_call>\\n{"name": "NAME", "arguments": {...}}\\n
</tool_call>``, one block per call (the Hermes format that Qwen, Hermes and SmolLM3 templates
teach). The API node's grammar forces exactly this text, its reply parses it back into
OpenAI ``tool_calls``, and a template without a tools section is taught it by a system message
(``teaching``). No torch here: the API node imports it.
"""

import json
import re
from collections.abc import Sequence
from typing import Any

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_CALL = re.compile(re.escape(OPEN) + r"\s*(\{.*?\})\s*" + re.escape(CLOSE), re.DOTALL)


def begin(name: str) -> str:
    """The text a call of ``name`` starts with, up to its arguments object."""
    return f'{OPEN}\n{{"name": {json.dumps(name)}, "arguments": '


END = f"}}\n{CLOSE}"


def call_text(name: str, arguments: str) -> str:
    """One call as the model writes it; ``arguments`` is the JSON text of an object."""
    return f"{begin(name)}{arguments}{END}"


def teaching(tools: Sequence[dict[str, Any]]) -> str:
    """The system message that teaches a template without a tools section the call format."""
    lines = [json.dumps(t["function"], ensure_ascii=False) for t in tools]
    return ("You may call functions. For each call, answer with\n"
            f'{OPEN}\n{{"name": <function name>, "arguments": <arguments object>}}\n{CLOSE}\n'
            "Results of calls come back in <tool_response> blocks. "
            "Functions:\n" + "\n".join(lines))


def parse_calls(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The text outside call blocks (stripped) and each well-formed call as (name, JSON text
    of its arguments), in order. A block that is not such a call stays in the text."""
    calls: list[tuple[str, str]] = []
    rest: list[str] = []
    at = 0
    for match in _CALL.finditer(text):
        try:
            body = json.loads(match.group(1))
        except ValueError:
            continue
        if not (isinstance(body, dict) and isinstance(body.get("name"), str)
                and isinstance(body.get("arguments"), dict)):
            continue
        rest.append(text[at:match.start()])
        at = match.end()
        calls.append((body["name"], json.dumps(body["arguments"], ensure_ascii=False)))
    rest.append(text[at:])
    return "".join(rest).strip(), calls
