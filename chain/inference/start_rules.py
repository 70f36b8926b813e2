"""The rules of MsgStartInference that need nothing but the records they are handed.

The chain's start handler (``InferenceMsgServer.start``) applies them with what it reads from
state; an executor applies the very same ones to a forwarded start before it spends a token on
it, with what it reads from the chain's queries, so the two can never disagree about a start.
Each check raises the chain error the handler answers with; nothing here reads or writes state.
"""

import json

from nacl.exceptions import BadSignatureError

from chain.auth import address
from chain.inference import payload
from chain.inference.errors import BadSignature, DrawMismatch, InvalidPrompt, NoAllowance
from chain.inference.params import GRAMMAR_KINDS, MAX_GRAMMAR_LENGTH
from chain.tx.signature import verify as verify_secp256k1
from chain.verified_signatures import verify_ed25519
from inferchain_pb.inference.v1.inference_pb2 import Model, MsgStartInference, Participant


def escrow(prompt_tokens: int, max_tokens: int, model: Model) -> int:
    """The most an inference can cost, taken from the developer when its start lands: every
    prompt token and ``max_tokens`` output tokens at the model's price."""
    return (prompt_tokens + max_tokens) * model.price_per_token


def escrow_of(start: MsgStartInference, model: Model) -> int:
    return escrow(len(start.prompt_ids), start.max_tokens, model)


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
                                      start.request_nonce)
    if not verify_secp256k1(start.developer_pubkey, message, start.request_signature):
        raise BadSignature("the developer's request signature does not verify")


def check_request_id(start: MsgStartInference) -> None:
    """The inference id is the request's own (payload.request_id), not one the transfer agent
    picked: the draw is seeded by it, so a chosen id would be a chosen executor."""
    expected = payload.request_id(start.developer, start.prompt_hash, start.request_timestamp,
                                  start.creator, start.request_nonce)
    if start.inference_id != expected:
        raise DrawMismatch(f"inference id {start.inference_id[:64]!r} is not the request's id "
                           f"{expected}")


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
