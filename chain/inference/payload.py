"""The canonical bytes each party signs, shared by the chain and the API nodes.

Every payload starts with a domain tag and carries its fields length-prefixed in a fixed
order, so a signature over one kind of payload can never be replayed as another, and both
sides build the very same bytes from the same message.
"""

import enum
import hashlib
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inferchain_pb.inference.v1.inference_pb2 import MsgStartInference

START_TAG = b"inferchain/start/v1"
FINISH_TAG = b"inferchain/finish/v1"
VALIDATION_TAG = b"inferchain/validation/v2"
SEAL_TAG = b"inferchain/validation-seal/v1"
# A seal's salt: random, so that nobody can try the few likely reports against a seal.
SALT_BYTES = 32
CONSENSUS_KEY_TAG = b"inferchain/consensus-key/v1"
REQUEST_TAG = b"inferchain/request/v1"
REQUEST_NONCE_BYTES = 16


class RequestPurpose(enum.StrEnum):
    """What a developer's request signature is for: each endpoint of a transfer agent checks
    its own purpose, and the chain starts inferences for ``INFERENCE`` only."""

    INFERENCE = "inference"  # an OpenAI completion, and the MsgStartInference it leads to
    API_KEY = "api-key"  # issuing a bearer API key (/v1/inferchain/api-keys)
DELIVERY_TAG = b"inferchain/delivery/v1"
REQUEST_ID_TAG = b"inferchain/request-id/v1"
REFUSAL_TAG = b"inferchain/refusal/v1"
KEY_NONCE_TAG = b"inferchain/key-nonce/v1"
PREFIX_DELIVERY_TAG = b"inferchain/delivery-prefix/v1"


_UINT64 = struct.Struct(">Q").pack
_FLOAT32 = struct.Struct(">f").pack  # sampling fields travel as protobuf float (32-bit)
_LENGTH = struct.Struct(">I").pack


def _length_prefixed(data: bytes) -> bytes:
    return _LENGTH(len(data)) + data


# By type, bool before int (a bool is an int). Found by exact type in the common case: every
# signed message's fields come from protobuf, which hands out plain int, float, str and bytes.
_ENCODERS = {
    bool: lambda value: b"\x01" if value else b"\x00",
    int: _UINT64,
    float: _FLOAT32,
    str: lambda value: _length_prefixed(value.encode()),
    bytes: _length_prefixed,
}


def _field(value: bytes | str | int | float) -> bytes:
    encode = _ENCODERS.get(type(value))
    if encode is None:  # a subclass (an enum's string), or other bytes-like data
        encode = next((encoder for kind, encoder in _ENCODERS.items()
                       if isinstance(value, kind)), _length_prefixed)
    return encode(value)


def canonical(tag: bytes, *values: bytes | str | int | float) -> bytes:
    return tag + b"".join([_field(v) for v in values])


def request_message(chain_id: str, purpose: RequestPurpose, transfer_agent: str,
                    prompt_hash: bytes, timestamp: int, nonce: bytes, choices: int = 1) -> bytes:
    """What the developer signs (docs/design.md §3.1). The chain, the purpose and the transfer
    agent keep a signature from serving on another chain, at another endpoint or at another
    agent; the random nonce makes every request unique, so sending one body twice in a second
    is two requests and only a byte-identical copy is a replay. ``timestamp`` is unix seconds,
    never negative (callers refuse a stale one first). A request for ``choices`` > 1
    completions (OpenAI's n) signs that number too: the chain starts no more than it says."""
    extra = (choices,) if choices > 1 else ()
    return canonical(REQUEST_TAG, chain_id, purpose.value, transfer_agent, prompt_hash,
                     timestamp, nonce, *extra)


def request_id(developer: str, prompt_hash: bytes, timestamp: int, transfer_agent: str,
               nonce: bytes, choice: int = 0, choices: int = 1) -> str:
    """The inference id of a request (docs/design.md §3.3): a hash of exactly what the developer
    signs, and of the developer, so the transfer agent cannot pick an id to steer the draw
    without breaking the developer's signature; the nonce keeps two sendings of one body in
    one second two inferences. Each choice of a request for ``choices`` > 1 completions is
    its own inference, whose id also names its index."""
    extra = (choice, choices) if choices > 1 else ()
    return hashlib.sha256(canonical(REQUEST_ID_TAG, developer, prompt_hash,
                                    struct.pack(">q", timestamp), transfer_agent,
                                    nonce, *extra)).hexdigest()


def key_request_nonce(transfer_agent: str, developer: str, prompt_hash: bytes,
                      timestamp: int, choices: int = 1) -> bytes:
    """The nonce of an API-key request (docs/design.md §3.3): no developer signs it, so it is
    a hash of what the request already fixes, not a choice of the transfer agent's; the agent
    can then vary an API-key request's inference id only through its timestamp."""
    extra = (choices,) if choices > 1 else ()
    return hashlib.sha256(canonical(KEY_NONCE_TAG, transfer_agent, developer, prompt_hash,
                                    struct.pack(">q", timestamp), *extra)
                          ).digest()[:REQUEST_NONCE_BYTES]


def refusal_payload(inference_id: str, attempt: int, executor: str) -> bytes:
    """What a drawn executor signs with its node key when it declines pick ``attempt`` of an
    inference: the only evidence on which the chain charges it a miss for being skipped."""
    return canonical(REFUSAL_TAG, inference_id, attempt, executor)


def ids_hash(token_ids: Sequence[int]) -> bytes:
    """sha256 over the ids as 4-byte big-endian integers: the output hash on chain."""
    return hashlib.sha256(struct.pack(f">{len(token_ids)}I", *token_ids)).digest()


def start_payload(inference_id: str, model_id: str, developer: str, prompt_hash: bytes,
                  max_tokens: int, seed: int, executor: str, draw_height: int, attempt: int,
                  transfer_agent: str, temperature: float, top_p: float,
                  stop: Sequence[str], prompt_ids: Sequence[int],
                  request_signature: bytes, grammar_kind: str = "", grammar: str = "",
                  presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                  logit_bias: Sequence[tuple[int, float]] = (), choice_index: int = 0,
                  choices: int = 0) -> bytes:
    """What the transfer agent signs: the request as the executor must run it, sampling, its
    grammar and its logit transform included, so neither the executor nor a validator can be
    handed other settings (an executor handed no grammar where the agent signed one would
    answer in free text); and the prompt ids and the developer's request signature (empty:
    paid from the allowance), so a start its executor relays (MsgRelayStart) charges the
    developer exactly what the agent signed for."""
    biases = [value for token, bias in logit_bias for value in (token, float(bias))]
    return canonical(START_TAG, inference_id, model_id, developer, prompt_hash, max_tokens,
                     seed, executor, draw_height, attempt, transfer_agent, float(temperature),
                     float(top_p), len(stop), *stop, ids_hash(prompt_ids), request_signature,
                     grammar_kind, grammar, float(presence_penalty), float(frequency_penalty),
                     len(logit_bias), *biases, choice_index, choices)


def start_payload_of(msg: "MsgStartInference") -> bytes:
    """start_payload with the fields of a MsgStartInference, as the chain checks it."""
    return start_payload(msg.inference_id, msg.model_id, msg.developer, msg.prompt_hash,
                         msg.max_tokens, msg.seed, msg.executor, msg.draw_height, msg.attempt,
                         msg.creator, msg.temperature, msg.top_p, msg.stop, msg.prompt_ids,
                         msg.request_signature, msg.grammar_kind, msg.grammar,
                         msg.presence_penalty, msg.frequency_penalty,
                         [(b.token_id, b.bias) for b in msg.logit_bias], msg.choice_index,
                         msg.choices)


def finish_payload(inference_id: str, model_id: str, prompt_hash: bytes, output_hash: bytes,
                   prompt_tokens: int, output_tokens: int, artifact: bytes,
                   executor: str, serving_dtype: str) -> bytes:
    """What an executor signs over its output, the dtype it says it served in included."""
    return canonical(FINISH_TAG, inference_id, model_id, prompt_hash, output_hash,
                     prompt_tokens, output_tokens, hashlib.sha256(artifact).digest(), executor,
                     serving_dtype)


def delivery_payload(inference_id: str, output_hash: bytes, transfer_agent: str,
                     executor: str) -> bytes:
    """What a transfer agent signs once the executor's stream ended: the output it passed on
    to the developer, whole (docs/design.md §3.5). The chain charges no other output. It names
    the executor whose output it was, so no other pick can present it (a relayed start needs
    one, §3.5)."""
    return canonical(DELIVERY_TAG, inference_id, output_hash, transfer_agent, executor)


def prefix_delivery_payload(inference_id: str, output_hash: bytes, transfer_agent: str,
                            executor: str) -> bytes:
    """What a transfer agent signs every few tokens while it streams: the output so far
    reached the developer (docs/design.md §3.5). A finish may carry it, so an executor is paid
    for the longest prefix delivered even when the agent withholds the rest; its own tag tells
    validators that this output may stop short of its end without the executor's fault."""
    return canonical(PREFIX_DELIVERY_TAG, inference_id, output_hash, transfer_agent, executor)


def validation_payload(inference_id: str, output_hash: bytes, distance_micro: int,
                       rule_violations: int, ids_match: bool, positions: int,
                       validator: str, scores_sha256: bytes = b"") -> bytes:
    """What a validator signs with its node key: its figures for one output, and the hash of
    the scores they were measured from (empty when it keeps none)."""
    return canonical(VALIDATION_TAG, inference_id, output_hash, distance_micro, rule_violations,
                     ids_match, positions, validator, scores_sha256)


def validation_seal(salt: bytes, signed_payload: bytes) -> bytes:
    """What a validator seals its report with (docs/design.md §6.3): binding, since the
    opening must give the same payload, and hiding, since the salt is secret until then."""
    return hashlib.sha256(SEAL_TAG + salt + signed_payload).digest()


def consensus_key_payload(chain_id: str, participant: str, pubkey: bytes) -> bytes:
    """What a CometBFT validator key signs to be a participant's: the chain, the participant
    and the key itself, so the signature serves for that registration only."""
    return canonical(CONSENSUS_KEY_TAG, chain_id, participant, pubkey)
