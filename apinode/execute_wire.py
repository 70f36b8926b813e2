"""What a transfer agent and an executor exchange, in process or between nodes over HTTP.

The transfer agent POSTs an ``ExecuteRequest`` as one JSON object to ``EXECUTE_PATH``; the
executor refuses it with a 409 before any token (``ExecutionRefused``; the JSON body's "refusal"
is its signed refusal in hex, or empty) or answers with one JSON
object per line: {"step": …} for each output token, then {"executed": …}, or {"error": "…"}
if it breaks off. Newline-delimited JSON keeps each token flowing as soon as it exists. Every
``delivery_interval_tokens`` tokens it passed on, and when the stream ends, the transfer agent
POSTs a ``Delivery`` to ``DELIVERY_PATH``: its signature over the output so far, which the
executor's finish must carry. A node running its own pick passes the same objects without the
JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from apinode.openai_request import MAX_TOP_LOGPROBS
from inferchain_pb.inference.v1.inference_pb2 import Inference, LogitBias, MsgStartInference
from mlnode.sampling_params import SamplingParams

EXECUTE_PATH = "/internal/v1/execute"
DELIVERY_PATH = "/internal/v1/delivered"
HASH_BYTES = 32  # sha256 prompt hash
SIGNATURE_BYTES = 64  # ed25519


class ExecutionRefused(Exception):
    """The executor will not run the request; ``reason`` says why, for the transfer agent.

    ``refusal`` is the executor's node-key signature over the refusal payload when it declines
    a request it could have run (chain/inference/payload.py): the evidence a later start
    carries to charge it a miss. Empty when the request itself is at fault.
    """

    def __init__(self, reason: str, refusal: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.refusal = refusal


class ExecutorFailed(Exception):
    """The remote executor broke off or answered with an error line."""


@dataclass(frozen=True)
class ExecuteRequest:
    """The start the transfer agent will send the chain, signed with its node key, and how
    many alternatives per token the developer wants back (``top_logprobs``).

    ``start`` carries everything the executor runs: the prompt as token ids, the sampling, the
    draw and the developer's authorisation. The transfer agent's signature covers the start
    payload (ids, model, developer, prompt hash, max_tokens, seed, executor, draw, sampling,
    the prompt ids' hash and the developer's request signature), so the executor can relay
    this very start to the chain (MsgRelayStart) when the agent does not send it; the chain
    checks the prompt ids against the prompt hash the developer signed only through the
    executor's output. Construction checks what
    the start must hold and raises ValueError naming the field, so a malformed request from
    another node never reaches the chain or the ML node.
    """

    start: MsgStartInference
    top_logprobs: int

    def __post_init__(self) -> None:
        start = self.start
        for name in ("inference_id", "model_id", "developer", "executor", "creator"):
            if not getattr(start, name):
                raise ValueError(f"{_json_name(name)} is empty")
        if len(start.prompt_hash) != HASH_BYTES:
            raise ValueError(f"prompt_hash must be {HASH_BYTES} bytes")
        if len(start.ta_signature) != SIGNATURE_BYTES:
            raise ValueError(f"ta_signature must be {SIGNATURE_BYTES} bytes")
        if not start.prompt_ids:
            raise ValueError("prompt_ids must be a non-empty list of uint32 token ids")
        if start.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not all(math.isfinite(v) for v in (start.temperature, start.top_p,
                                              start.presence_penalty, start.frequency_penalty,
                                              *(b.bias for b in start.logit_bias))):
            raise ValueError("temperature, top_p, penalties and logit biases must be finite")
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise ValueError(f"top_logprobs must be 0 to {MAX_TOP_LOGPROBS}")
        if start.draw_height < 1:
            raise ValueError("draw_height must be at least 1")

    @property
    def sampling(self) -> SamplingParams:
        start = self.start
        return SamplingParams(temperature=start.temperature, top_p=start.top_p, top_k=0,
                              max_tokens=start.max_tokens, stop=tuple(start.stop),
                              seed=start.seed, **transform_of(start))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, bytes as hex; ``from_json`` reads it back."""
        return {**{name: _json_value(getattr(self.start, _field(name)))
                   for name in (*_PARSERS, *_OPTIONAL)},
                "top_logprobs": self.top_logprobs}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecuteRequest:
        """Parse a decoded JSON object from another node; ValueError names the bad field.

        Every field is required but the skipped picks' refusals, and strictly typed (no
        strings for numbers, no booleans for integers), and must fit its protobuf field;
        unknown fields are ignored, so a newer transfer agent can add some.
        """
        if not isinstance(data, Mapping):
            raise ValueError("an execute request must be a JSON object")
        missing = [name for name in (*_PARSERS, "top_logprobs") if name not in data]
        if missing:
            raise ValueError(f"missing fields: {', '.join(missing)}")
        start = MsgStartInference()
        for name, parse in (*_PARSERS.items(), *_OPTIONAL.items()):
            if name not in data:  # an optional field an older transfer agent leaves out
                continue
            value = parse(data[name], name)
            try:
                if name == "logit_bias":
                    start.logit_bias.extend(LogitBias(token_id=t, bias=b) for t, b in value)
                elif isinstance(value, tuple):
                    getattr(start, _field(name)).extend(value)
                else:
                    setattr(start, _field(name), value)
            except ValueError:  # out of the field's range, or text that is not UTF-8
                raise ValueError(f"{name} does not fit its protobuf field") from None
        return cls(start, _integer(data["top_logprobs"], "top_logprobs"))


# The wire names the start's creator by its role.
_CREATOR = "transfer_agent"


def _field(name: str) -> str:
    return "creator" if name == _CREATOR else name


def _json_name(field: str) -> str:
    return _CREATOR if field == "creator" else field


def transform_of(start: MsgStartInference | Inference) -> dict[str, Any]:
    """The logit transform and grammar a start (or the inference it started) signed for, as
    ``SamplingParams`` keyword arguments: what the executor runs and a validator replays."""
    return {"grammar_kind": start.grammar_kind, "grammar": start.grammar,
            "presence_penalty": start.presence_penalty,
            "frequency_penalty": start.frequency_penalty,
            "logit_bias": tuple((b.token_id, b.bias) for b in start.logit_bias)}


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str | int | float):
        return value
    return [[v.token_id, v.bias] if isinstance(v, LogitBias) else
            v.hex() if isinstance(v, bytes) else v for v in value]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _integer(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    return value


def _number(value: Any, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    return float(value)


def _hex(value: Any, name: str) -> bytes:
    try:
        return bytes.fromhex(_text(value, name))
    except ValueError:
        raise ValueError(f"{name} must be a hex string") from None


def _integers(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of integers")
    return tuple(_integer(v, name) for v in value)


def _biases(value: Any, name: str) -> tuple[tuple[int, float], ...]:
    if not isinstance(value, list) or not all(isinstance(v, list) and len(v) == 2
                                              for v in value):
        raise ValueError(f"{name} must be a list of [token id, bias] pairs")
    return tuple((_integer(t, name), _number(b, name)) for t, b in value)


def _hexes(value: Any, name: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_REFUSALS:
        raise ValueError(f"{name} must be a list of at most {MAX_REFUSALS} hex strings")
    return tuple(_hex(v, name) for v in value)


def _texts(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of strings")
    return tuple(_text(v, name) for v in value)


# The start's fields by their JSON names, each with its reader.
_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "inference_id": _text, "model_id": _text, "developer": _text, "prompt_hash": _hex,
    "prompt_ids": _integers, "max_tokens": _integer, "seed": _integer, "temperature": _number,
    "top_p": _number, "stop": _texts, "executor": _text, "draw_height": _integer,
    "attempt": _integer, _CREATOR: _text, "ta_signature": _hex, "developer_pubkey": _hex,
    "request_signature": _hex, "request_timestamp": _integer, "request_nonce": _hex,
    "grammar_kind": _text, "grammar": _text,
    "presence_penalty": _number, "frequency_penalty": _number, "logit_bias": _biases,
    "choice_index": _integer, "choices": _integer,
}
# Fields a forward may leave out: the picks it skips' signed refusals (each empty where the
# pick sent none), which the executor checks the start's passes with.
_OPTIONAL: dict[str, Callable[[Any, str], Any]] = {"refusals": _hexes}
# The most refusals a forward carries: one per attempt the chain allows (max_attempts ≤ 100).
MAX_REFUSALS = 100


@dataclass(frozen=True)
class Delivery:
    """The transfer agent's node-key signature that the first ``output_tokens`` ids of an
    inference's output reached the developer: over the delivery payload of those ids when the
    stream ended with exactly them, over the prefix delivery payload while it streams
    (chain/inference/payload.py)."""

    inference_id: str
    output_tokens: int
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"inference_id": self.inference_id, "output_tokens": self.output_tokens,
                "signature": self.signature.hex()}

    @classmethod
    def from_json(cls, data: Any) -> Delivery:
        """ValueError names the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError("a delivery must be a JSON object")
        signature = _hex(data.get("signature"), "signature")
        if len(signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")
        tokens = _integer(data.get("output_tokens"), "output_tokens")
        if tokens < 1:
            raise ValueError("output_tokens must be at least 1")
        return cls(_text(data.get("inference_id"), "inference_id"), tokens, signature)


@dataclass(frozen=True)
class ExecutedStep:
    """One output token as the developer sees it: its top alternatives are the
    ``top_logprobs`` the request asked for (none when it asked for none)."""

    token_id: int
    text: str
    logprob: float
    top_ids: tuple[int, ...]
    top_logprobs: tuple[float, ...]


@dataclass(frozen=True)
class Executed:
    """Ends a successful execution; the executor holds the output and queues its
    MsgFinishInference once the transfer agent's ``Delivery`` of all of it comes (or, failing
    that, of the longest prefix the agent signed)."""

    output_ids: tuple[int, ...]
    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


def encode(item: ExecutedStep | Executed | str) -> bytes:
    """One line of the executor's answer: a step, the end, or an error's text."""
    if isinstance(item, ExecutedStep):
        body: dict[str, Any] = {"step": asdict(item)}
    elif isinstance(item, Executed):
        body = {"executed": asdict(item)}
    else:
        body = {"error": item}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> ExecutedStep | Executed:
    try:
        body = json.loads(line)
        if "step" in body:
            step = body["step"]
            return ExecutedStep(int(step["token_id"]), str(step["text"]), float(step["logprob"]),
                                tuple(int(t) for t in step["top_ids"]),
                                tuple(float(v) for v in step["top_logprobs"]))
        if "executed" in body:
            done = body["executed"]
            return Executed(tuple(int(t) for t in done["output_ids"]), str(done["text"]),
                            str(done["finish_reason"]), int(done["prompt_tokens"]),
                            int(done["completion_tokens"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ExecutorFailed(f"malformed line from the executor: {exc}") from exc
    raise ExecutorFailed(f"the executor failed: {body.get('error', body)}")
