"""Shapes finished inferences into OpenAI response bodies, streamed or whole.

The builders take what the executor really produced (every output token with its logprob
and top alternatives), so ``logprobs`` in a response are the numbers that went on chain in
the artifact, cut to what the developer asked for. Every body also carries ``inference_id``
(on the response and on each choice: with ``n`` > 1 each choice is its own inference); the
``openai`` client keeps unknown fields, so developers can read it to look the inference up
on chain. Usage is what the developer is charged for: with ``n`` > 1 every choice paid for
its own prompt, so prompt tokens add up across choices.
"""

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apinode.openai_request import CompletionRequest
from mlnode import tool_format

SSE_DONE = b"data: [DONE]\n\n"
MIN_LOGPROB = -9999.0  # JSON has no -inf; vLLM clamps to the same value


@dataclass(frozen=True)
class OutputToken:
    """One generated token: its own text, its logprob and the top alternatives, best first."""

    token_id: int
    text: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ChoiceResult:
    """One finished inference: its text (stop sequence cut off) and every token it produced."""

    inference_id: str
    text: str
    finish_reason: str
    tokens: tuple[OutputToken, ...]
    prompt_tokens: int


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def of(cls, results: Sequence[ChoiceResult]) -> "Usage":
        return cls(sum(r.prompt_tokens for r in results), sum(len(r.tokens) for r in results))

    def body(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


def response_id(request: CompletionRequest) -> str:
    """A fresh id in OpenAI's style: ``chatcmpl-…`` for chat, ``cmpl-…`` for text."""
    return f"{'chatcmpl' if request.kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"


def reply_message(request: CompletionRequest, text: str) -> dict[str, Any]:
    """The assistant message of a chat choice: with tool calls, when the request offered tools
    to call and the output holds calls in the tool-call format (mlnode/tool_format.py), then
    the text outside them, or null, as content."""
    if not request.constraint.calls_tools:
        return {"role": "assistant", "content": text, "refusal": None}
    rest, calls = tool_format.parse_calls(text)
    if not calls:
        return {"role": "assistant", "content": text, "refusal": None}
    return {"role": "assistant", "content": rest or None, "refusal": None, "tool_calls": [
        {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
         "function": {"name": name, "arguments": arguments}} for name, arguments in calls]}


def finish_reason(message: dict[str, Any], reason: str) -> str:
    """OpenAI's "tool_calls" for an output that ended in tool calls."""
    return "tool_calls" if message.get("tool_calls") and reason == "stop" else reason


def completion_body(request: CompletionRequest, results: Sequence[ChoiceResult],
                    created: int | None = None) -> dict[str, Any]:
    """The whole non-streaming response, choices in the order given."""
    choices = []
    for index, result in enumerate(results):
        logprobs = _logprobs(request, result.tokens, 0)
        reason = result.finish_reason
        if request.kind == "chat":
            message = reply_message(request, result.text)
            choice = {"index": index, "message": message}
            reason = finish_reason(message, reason)
        else:
            choice = {"index": index, "text": result.text}
        choices.append({**choice, "logprobs": logprobs, "finish_reason": reason,
                        "inference_id": result.inference_id})
    return {
        "id": response_id(request),
        "object": "chat.completion" if request.kind == "chat" else "text_completion",
        "created": int(time.time()) if created is None else created,
        "model": request.model,
        "choices": choices,
        "usage": Usage.of(results).body(),
        "inference_id": results[0].inference_id,
    }


class ChunkStream:
    """Builds the chunks of one streamed response, which share an id and creation time.

    Chat streams open each choice with a role-only delta, then content deltas, then a chunk
    with ``finish_reason``; text streams send text pieces then the finish. With
    ``stream_options.include_usage`` every chunk has ``"usage": null`` and one last chunk
    with no choices carries the usage, as OpenAI does. Legacy ``text_offset`` continues
    across chunks, so the stream keeps each choice's offset.
    """

    def __init__(self, request: CompletionRequest, inference_ids: Sequence[str]) -> None:
        self._request = request
        self._inference_ids = tuple(inference_ids)
        self._id = response_id(request)
        self._created = int(time.time())
        self._offsets = [0] * len(inference_ids)

    def opening(self, index: int) -> dict[str, Any] | None:
        """The role delta a chat choice starts with; text choices have none."""
        if self._request.kind != "chat":
            return None
        return self._chunk(index, {"delta": {"role": "assistant", "content": ""},
                                   "logprobs": None, "finish_reason": None})

    def content(self, index: int, text: str, tokens: Sequence[OutputToken]) -> dict[str, Any]:
        """New text of one choice and the tokens that produced it."""
        logprobs = _logprobs(self._request, tokens, self._offsets[index])
        self._offsets[index] += sum(len(t.text) for t in tokens)
        piece = {"delta": {"content": text}} if self._request.kind == "chat" else {"text": text}
        return self._chunk(index, {**piece, "logprobs": logprobs, "finish_reason": None})

    def calls(self, index: int, text: str, tokens: Sequence[OutputToken],
              reason: str) -> tuple[list[dict[str, Any]], str]:
        """The chunks of a whole output that may hold tool calls, which a stream holds back
        until the output ends: its content, if any, then one delta with every call, as
        OpenAI's ``delta.tool_calls`` entries (index, id, type, name and all arguments at
        once); and the finish reason, "tool_calls" when it made calls."""
        message = reply_message(self._request, text)
        logprobs = _logprobs(self._request, tokens, self._offsets[index])
        if not message.get("tool_calls"):
            return [self.content(index, text, tokens)], reason
        chunks = []
        if message["content"]:
            chunks.append(self._chunk(index, {"delta": {"content": message["content"]},
                                              "logprobs": None, "finish_reason": None}))
        deltas = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        chunks.append(self._chunk(index, {"delta": {"tool_calls": deltas},
                                          "logprobs": logprobs, "finish_reason": None}))
        return chunks, finish_reason(message, reason)

    def finish(self, index: int, reason: str) -> dict[str, Any]:
        piece = {"delta": {}} if self._request.kind == "chat" else {"text": ""}
        return self._chunk(index, {**piece, "logprobs": None, "finish_reason": reason})

    def usage(self, usage: Usage) -> dict[str, Any] | None:
        """The closing usage chunk, or None when the developer did not ask for it."""
        if not self._request.include_usage:
            return None
        return {**self._envelope(), "choices": [], "usage": usage.body()}

    def _chunk(self, index: int, choice: dict[str, Any]) -> dict[str, Any]:
        body = {**self._envelope(), "choices": [
            {"index": index, **choice, "inference_id": self._inference_ids[index]}]}
        if self._request.include_usage:
            body["usage"] = None
        return body

    def _envelope(self) -> dict[str, Any]:
        chat = self._request.kind == "chat"
        return {"id": self._id, "object": "chat.completion.chunk" if chat else "text_completion",
                "created": self._created, "model": self._request.model,
                "inference_id": self._inference_ids[0]}


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event; an error body sent this way makes the openai client raise."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"data: {text}\n\n".encode()


def _logprobs(request: CompletionRequest, tokens: Sequence[OutputToken],
              offset: int) -> dict[str, Any] | None:
    if not request.logprobs:
        return None
    if request.kind == "chat":
        return {"content": [_chat_token(t, request.top_logprobs) for t in tokens],
                "refusal": None}
    return _text_logprobs(tokens, request.top_logprobs, offset)


def _chat_token(token: OutputToken, k: int) -> dict[str, Any]:
    top = [_chat_alternative(text, logprob) for text, logprob in token.top[:k]]
    return {**_chat_alternative(token.text, token.logprob), "top_logprobs": top}


def _chat_alternative(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": max(logprob, MIN_LOGPROB), "bytes": list(text.encode())}


def _text_logprobs(tokens: Sequence[OutputToken], k: int, offset: int) -> dict[str, Any]:
    """Legacy shape: parallel lists, and top alternatives as {text: logprob} dicts.

    OpenAI always includes the sampled token among the alternatives, so each dict holds up
    to k + 1 entries.
    """
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token.text)
    top = []
    for token in tokens:
        alternatives = {text: max(lp, MIN_LOGPROB) for text, lp in token.top[:k]}
        alternatives.setdefault(token.text, max(token.logprob, MIN_LOGPROB))
        top.append(alternatives)
    return {"tokens": [t.text for t in tokens],
            "token_logprobs": [max(t.logprob, MIN_LOGPROB) for t in tokens],
            "top_logprobs": top, "text_offset": offsets}
