"""Text side of a model: ids from text or chat messages, and text from ids.

Both engines load the same Hugging Face tokenizer folder, so they share this wrapper and a
chat renders to the same ids whichever engine serves it.
"""

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from mlnode import tool_format

# A message: (role, content), or (role, content, tool_calls, tool_call_id) where tool_calls
# is OpenAI's JSON array of an assistant's calls and tool_call_id names the call a tool
# message answers.
Message = tuple[str, str] | tuple[str, str, str, str]
_PROBE_TOOL = {"type": "function", "function": {"name": "probe_tool_section",
                                                "parameters": {"type": "object"}}}


class ChatTokenizer:
    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def from_folder(cls, path: Path) -> "ChatTokenizer":
        return cls(AutoTokenizer.from_pretrained(path))

    @property
    def hf(self) -> PreTrainedTokenizerBase:
        """The Hugging Face tokenizer, which the grammar engine reads the vocabulary from."""
        return self._tokenizer

    def __len__(self) -> int:
        return len(self._tokenizer)

    def tokenize(self, text: str) -> list[int]:
        """Plain text to ids, without special tokens added (the chat template adds its own)."""
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def render_chat(self, messages: Sequence[Message], tools: str = "") -> str:
        """Messages to the prompt text of the model's chat template; ``tools`` is OpenAI's
        JSON array of functions, or empty.

        A template with a tools section renders the tools, the calls and the tool messages
        itself. Any other is taught the call format (mlnode/tool_format.py) by a system
        message, sees past calls in that format and tool results as user messages in
        ``<tool_response>`` blocks, so every template takes a tool conversation.
        """
        functions = json.loads(tools) if tools else []
        turns = [_turn(m) for m in messages]
        if self.speaks_tools:
            return self._render(turns, functions or None)
        plain = [_taught(turn) for turn in turns]
        if functions:
            if plain[0]["role"] == "system":
                plain[0] = {"role": "system", "content": plain[0]["content"] + "\n\n"
                            + tool_format.teaching(functions)}
            else:
                plain.insert(0, {"role": "system", "content": tool_format.teaching(functions)})
        return self._render(plain, None)

    @cached_property
    def speaks_tools(self) -> bool:
        """Whether the chat template renders a ``tools`` argument at all."""
        probe = [{"role": "user", "content": "probe"}]
        return self._render(probe, [_PROBE_TOOL]) != self._render(probe, None)

    def _render(self, turns: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return self._tokenizer.apply_chat_template(turns, tools=tools,
                                                   add_generation_prompt=True, tokenize=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)


def _turn(message: Message) -> dict[str, Any]:
    """One message as Hugging Face templates take it: calls with their arguments as objects."""
    role, content, *extra = message
    turn: dict[str, Any] = {"role": role, "content": content}
    if extra and extra[0]:
        turn["tool_calls"] = [
            {"type": "function", "id": call.get("id", ""),
             "function": {"name": call["function"]["name"],
                          "arguments": _arguments(call["function"]["arguments"])}}
            for call in json.loads(extra[0])]
    if extra and extra[1]:
        turn["tool_call_id"] = extra[1]
    return turn


def _arguments(text: str) -> Any:
    """A call's arguments as the JSON value they spell, or the text itself when they are not
    JSON (OpenAI accepts any string there)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _taught(turn: dict[str, Any]) -> dict[str, str]:
    """A turn for a template without tools: calls written out in the taught format, tool
    results as user messages."""
    if turn["role"] == "tool":
        return {"role": "user",
                "content": f"<tool_response>\n{turn['content']}\n</tool_response>"}
    calls = [tool_format.call_text(c["function"]["name"],
                                   json.dumps(c["function"]["arguments"], ensure_ascii=False))
             for c in turn.get("tool_calls", ())]
    return {"role": turn["role"], "content": "\n".join(filter(None, [turn["content"], *calls]))}
