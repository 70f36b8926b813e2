"""The rules of MsgStartInference that need nothing but the records they are handed.

The chain's start handler (``InferenceMsgServer.start``) applies them with what it reads from
state; an executor applies the very same ones to a forwarded start before it spends a token on
it, with what it reads from the chain's queries, so the two can never disagree about a start.
Each check raises the chain error the handler answers with; nothing here reads or writes state.
"""

import json
import math
from collections.abc import Iterable

from nacl.exceptions import BadSignatureError

from chain.auth import address
from chain.inference import payload
from chain.inference.errors import (
    BadSignature,
    DrawMismatch,
    InvalidPrompt,
    InvalidSampling,
    NoAllowance,
    UnevidencedSkip,
)
from chain.inference.params import (
    GRAMMAR_KINDS,
    MAX_CHOICES,
    MAX_GRAMMAR_LENGTH,
    MAX_LOGIT_BIAS,
    MAX_LOGIT_BIAS_ENTRIES,
    MAX_PENALTY,
)
from chain.tx.signature import verify as verify_secp256k1
from chain.verified_signatures import verify_ed25519
from inferchain_pb.inference.v1.inference_pb2 import Model, MsgStartInference, Participant


def escrow(prompt_tokens: int, max_tokens: int, model: Model, agent_fee: int) -> int:
    """The most an inference can cost, taken from the developer when its start lands: every
    prompt token and ``max_tokens`` output tokens at the model's price, and the transfer
    agent's fee."""
    return (prompt_tokens + max_tokens) * model.price_per_token + agent_fee


def escrow_of(start: MsgStartInference, model: Model, agent_fee: int) -> int:
    return escrow(len(start.prompt_ids), start.max_tokens, model, agent_fee)


def fits_context(prompt_tokens: int, max_tokens: int, model: Model) -> bool:
    return prompt_tokens + max_tokens <= model.context_length


def check_context(start: MsgStartInference, model: Model) -> None:
    if not fits_context(len(start.prompt_ids), start.max_tokens, model):
        raise InvalidPrompt(f"prompt plus max_tokens exceeds the context of "
                            f"{model.context_length}")


def check_grammar(start: MsgStartInference) -> None:
    """The grammar is a known kind with the JSON object text it needs, or absent: what no ML
    node could build never starts, and a start records at most MAX_GRAMMAR_LENGTH of it."""
    if start.grammar_kind not in GRAMMAR_KINDS:
        raise InvalidPrompt(f"grammar_kind must be one of {GRAMMAR_KINDS[1:]} or empty")
    if not start.grammar_kind:
        if start.grammar:
            raise InvalidPrompt("grammar is set without a grammar_kind")
        return
    if not 0 < len(start.grammar) <= MAX_GRAMMAR_LENGTH:
        raise InvalidPrompt(f"grammar must be 1 to {MAX_GRAMMAR_LENGTH} characters")
    try:
        parsed = json.loads(start.grammar)
    except (ValueError, RecursionError) as exc:
        raise InvalidPrompt("grammar is not JSON text") from exc
    if not isinstance(parsed, dict):
        raise InvalidPrompt("grammar must be a JSON object")


def check_transform(start: MsgStartInference) -> None:
    """The logit transform within OpenAI's bounds, one bias per token id in ascending order
    (the order the signed payload and the rule take them in), and the choice within the
    request's: the sampling rule a validator replays is then well defined. Whether each id is
    in the model's vocabulary only the ML node knows; it refuses the rest."""
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(start, name)
        if not (math.isfinite(value) and -MAX_PENALTY <= value <= MAX_PENALTY):
            raise InvalidSampling(f"{name} must be in [-{MAX_PENALTY:g}, {MAX_PENALTY:g}]")
    if len(start.logit_bias) > MAX_LOGIT_BIAS_ENTRIES:
        raise InvalidSampling(f"at most {MAX_LOGIT_BIAS_ENTRIES} logit biases, not "
                              f"{len(start.logit_bias)}")
    ids = [b.token_id for b in start.logit_bias]
    if any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
        raise InvalidSampling("logit_bias token ids must be strictly ascending")
    if any(not (math.isfinite(b.bias) and -MAX_LOGIT_BIAS <= b.bias <= MAX_LOGIT_BIAS)
           for b in start.logit_bias):
        raise InvalidSampling(f"logit biases must be in [-{MAX_LOGIT_BIAS:g}, "
                              f"{MAX_LOGIT_BIAS:g}]")
    if start.choices > MAX_CHOICES:
        raise InvalidSampling(f"a request may ask for at most {MAX_CHOICES} choices, not "
                              f"{start.choices}")
    if start.choice_index >= max(start.choices, 1):
        raise InvalidSampling(f"choice_index {start.choice_index} is not below the request's "
                              f"{max(start.choices, 1)} choices")


def check_ta_signature(start: MsgStartInference, agent: Participant) -> None:
    """The transfer agent's node key signed this start's payload."""
    try:
        verify_ed25519(agent.node_pubkey, payload.start_payload_of(start), start.ta_signature)
    except (BadSignatureError, ValueError, TypeError) as exc:
        raise BadSignature("the transfer agent's node-key signature does not verify") from exc


def check_request_key(start: MsgStartInference) -> None:
    """The request's secp256k1 key is the developer's."""
    try:
        owner = address.from_pubkey(start.developer_pubkey)
    except ValueError as exc:
        raise BadSignature("developer_pubkey is not a secp256k1 key") from exc
    if owner != address.decode(start.developer):
        raise BadSignature("developer_pubkey does not belong to the developer")


def check_request_signature(start: MsgStartInference, chain_id: str) -> None:
    """The developer signed this prompt, for an inference on this chain through this transfer
    agent, at the request's timestamp with the request's nonce."""
    if len(start.request_nonce) != payload.REQUEST_NONCE_BYTES:
        raise BadSignature(f"request_nonce must be {payload.REQUEST_NONCE_BYTES} bytes")
    if start.request_timestamp < 0:
        raise BadSignature("request_timestamp must not be negative")
    message = payload.request_message(chain_id, payload.RequestPurpose.INFERENCE, start.creator,
                                      start.prompt_hash, start.request_timestamp,
                                      start.request_nonce, start.choices)
    if not verify_secp256k1(start.developer_pubkey, message, start.request_signature):
        raise BadSignature("the developer's request signature does not verify")


def check_request_id(start: MsgStartInference) -> None:
    """The inference id is the request's own (payload.request_id), not one the transfer agent
    picked: the draw is seeded by it, so a chosen id would be a chosen executor."""
    expected = payload.request_id(start.developer, start.prompt_hash, start.request_timestamp,
                                  start.creator, start.request_nonce, start.choice_index,
                                  start.choices)
    if start.inference_id != expected:
        raise DrawMismatch(f"inference id {start.inference_id[:64]!r} is not the request's id "
                           f"{expected}")


def check_key_nonce(start: MsgStartInference) -> None:
    """An API-key (allowance) start's nonce is the one its request fixes
    (payload.key_request_nonce): the agent stamps it but cannot grind it for a draw it likes."""
    expected = payload.key_request_nonce(start.creator, start.developer, start.prompt_hash,
                                         start.request_timestamp, start.choices)
    if start.request_nonce != expected:
        raise DrawMismatch(f"an API-key request's nonce is {expected.hex()}, derived from the "
                           f"request, not {start.request_nonce.hex()[:64]}")


def executor_order(drawn: Iterable[str], transfer_agent: str, signed: bool,
                   picks: int | None = None) -> list[str]:
    """The picks a start may name, from the draw's order (its first ``picks``, reading no more
    of a lazily computed order than they need): an API-key start's (not ``signed`` by its
    developer) never its own transfer agent, unless nobody else serves the model, since that
    agent stamps the request and could wait for a timestamp whose draw names itself
    (docs/design.md §3.3)."""
    order: list[str] = []
    agent_drawn = False
    for pick in drawn:
        if signed or pick != transfer_agent:
            order.append(pick)
            if len(order) == picks:
                break
        else:
            agent_drawn = True
    return order or ([transfer_agent] if agent_drawn else [])


def check_self_service(start: MsgStartInference, evidenced: int) -> None:
    """A transfer agent names itself past pick 0 only when every pick before it refused with
    its signature (``evidenced`` of them did): skipping picks without evidence never brings
    the work to the agent, so its own executions stay at its draw share."""
    if start.executor == start.creator and evidenced < start.attempt:
        raise UnevidencedSkip(f"transfer agent {start.creator} names itself at attempt "
                              f"{start.attempt} with {evidenced} of the {start.attempt} "
                              f"picks before it refused; it serves itself past a pick only "
                              f"on that pick's signed refusal")


def refused(start: MsgStartInference, attempt: int, executor: str, agent_key: bytes) -> bool:
    """Whether the start carries pick ``attempt``'s signed refusal (``agent_key`` is that
    executor's node key); False when it carries none. A signature that is there but does not
    verify raises BadSignature: forged evidence refuses the whole start."""
    if attempt >= len(start.refusals) or not start.refusals[attempt]:
        return False
    try:
        verify_ed25519(agent_key, payload.refusal_payload(start.inference_id, attempt, executor),
                       start.refusals[attempt])
    except (BadSignatureError, ValueError, TypeError) as exc:
        raise BadSignature(f"the refusal for attempt {attempt} is not {executor}'s node-key "
                           f"signature") from exc
    return True


def check_allowance(start: MsgStartInference, allowed: int, escrowed: int) -> None:
    """An unsigned start is paid from what the developer allows its transfer agent."""
    if allowed < escrowed:
        raise NoAllowance(f"{start.developer} allows {start.creator} {allowed} ninfer; this "
                          f"inference escrows {escrowed}")
