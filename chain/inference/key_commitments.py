"""API-key request commitments (docs/design.md §3.3): what binds an API-key request's draw.

No developer signs an API-key request, so its transfer agent makes its id (it stamps the
request). Were the draw to read a value that existed when the agent made the id, the agent
could make variants until one drew an accomplice first. So the agent commits each request's
id on chain first (``MsgCommitKeyRequests``), the draw reads the random value of the block
after the one that took the commitment (no proposer of the commitment's block can know it,
docs/design.md §2.7), and the commitment locks a forfeit from the agent,
``key_request_forfeit_ppm`` of the most the start may escrow: returned when the start lands,
burned once its draw window has passed without one. A variant the agent drops costs it the
forfeit; above 2m/9 of the escrow (m the margin's share of the price) no number of variants
pays (docs/economics.md).

A probe (docs/design.md §10.4) is the agent's own request, committed with its model named: it
counts towards the agent's probe quota as it is committed (chain/inference/probes.py), so its
forfeit must cost more than a served probe (``probe_forfeit``) and its start must be what was
counted, the agent's own request to that model, paid from its balance: the commitment, which
its account signed, is its consent.

Keys:
  inference/keycommit/<agent>/<id>             KeyRequestCommitment, until its start lands
  inference/keycommitexp/<height>/<agent>/<id> commitments whose window ends at that height
A commitment is the agent's own: the id names its agent (payload.request_id), so only that
agent's start can take it, and keyed by agent, nobody can block an agent's request by
committing its id first. The forfeits sit in the module account FORFEIT_ACCOUNT until they
are returned or burned.
"""

import hashlib
import logging

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.context import Context
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.inference import probes
from chain.inference.errors import DrawMismatch
from chain.inference.expected_keepers import BankKeeper
from chain.inference.keeper import InferenceKeeper
from chain.inference.model import SHA256_HEX
from chain.inference.params import InferenceParams
from chain.scales import PPM
from chain.store import KVReader
from chain.store.records import due_under, load, save, uint64
from inferchain_pb.inference.v1.inference_pb2 import (
    KeyRequestCommitment,
    MsgCommitKeyRequests,
    MsgStartInference,
    Participant,
)

log = logging.getLogger(__name__)

COMMITMENT = b"inference/keycommit/"
COMMITMENT_EXPIRY = b"inference/keycommitexp/"
FORFEIT_ACCOUNT = hashlib.sha256(b"inference_key_request_forfeits").digest()[:20]
# Requests one message may commit: an agent commits what came in during a block, and a
# bound keeps one message's work (and its gas) bounded.
MAX_REQUESTS = 256
# The most one request may commit to escrow: far above any start's (tokens × price), far
# below uint64, so sums of forfeits cannot overflow.
MAX_ESCROW = 10**18

State = GasKV | KVReader


def _suffix(agent: str, inference_id: str) -> bytes:
    return address.decode(agent) + b"/" + inference_id.encode()


def commitment(state: State, agent: str, inference_id: str) -> KeyRequestCommitment | None:
    """``agent``'s commitment of ``inference_id``, while no start took it."""
    return load(state, COMMITMENT + _suffix(agent, inference_id), KeyRequestCommitment)


def _expiry_key(found: KeyRequestCommitment) -> bytes:
    return COMMITMENT_EXPIRY + uint64(found.expires_at) + \
        _suffix(found.transfer_agent, found.inference_id)


def _drop(kv: GasKV, found: KeyRequestCommitment) -> None:
    kv.delete(COMMITMENT + _suffix(found.transfer_agent, found.inference_id))
    kv.delete(_expiry_key(found))


def commit(ctx: Context, bank: BankKeeper, inferences: InferenceKeeper,
           msg: MsgCommitKeyRequests, agent: Participant, params: InferenceParams) -> None:
    """Records each request's commitment and moves its forfeit from the agent (``msg.creator``,
    the registered participant ``agent``: the caller found it) into FORFEIT_ACCOUNT; refuses
    the whole message, changing nothing, if any request is malformed, committed before,
    already started, or if the agent cannot pay every forfeit."""
    if not 1 <= len(msg.requests) <= MAX_REQUESTS:
        raise InvalidRequest(f"a commitment names 1 to {MAX_REQUESTS} requests, not "
                             f"{len(msg.requests)}")
    seen: set[str] = set()
    for request in msg.requests:
        if not SHA256_HEX.fullmatch(request.inference_id):  # an id is a sha256
            raise InvalidRequest(f"inference id {request.inference_id[:80]!r} is not 64 "
                                 f"lowercase hex digits")
        if request.inference_id in seen:
            raise InvalidRequest(f"inference {request.inference_id} is named twice")
        seen.add(request.inference_id)
        if not 1 <= request.max_escrow <= MAX_ESCROW:
            raise InvalidRequest(f"max_escrow of {request.inference_id} must be 1 to "
                                 f"{MAX_ESCROW} ninfer, not {request.max_escrow}")
        if commitment(ctx.kv, msg.creator, request.inference_id) is not None:
            raise InvalidRequest(f"inference {request.inference_id} is committed already")
        known = inferences.inference(ctx.kv, request.inference_id)
        if known is not None and known.started:
            raise InvalidRequest(f"inference {request.inference_id} was started already")
    prices = _probe_prices(ctx, inferences, msg)
    expires_at = ctx.block.height + 1 + params.max_draw_age_blocks
    total = 0
    probed: dict[str, int] = {}
    for request in msg.requests:
        forfeit = -(-request.max_escrow * params.key_request_forfeit_ppm // PPM)
        if request.probe_model_id:
            forfeit = max(forfeit, probe_forfeit(params, prices[request.probe_model_id]))
            probed[request.probe_model_id] = probed.get(request.probe_model_id, 0) + 1
        found = KeyRequestCommitment(
            inference_id=request.inference_id, transfer_agent=msg.creator,
            height=ctx.block.height, max_escrow=request.max_escrow, forfeit=forfeit,
            expires_at=expires_at, probe_model_id=request.probe_model_id)
        save(ctx.kv, COMMITMENT + _suffix(msg.creator, request.inference_id), found)
        ctx.kv.set(_expiry_key(found), b"")
        total += forfeit
    if total:
        bank.send(ctx, address.decode(msg.creator), FORFEIT_ACCOUNT, {NATIVE_DENOM: total})
    if agent.weight:  # a member of this epoch, even one that withdrew during it
        for model_id, made in sorted(probed.items()):
            probes.count(ctx.kv, msg.creator, ctx.block.height, model_id, made)
    ctx.emit("commit_key_requests", transfer_agent=msg.creator,
             requests=str(len(msg.requests)), forfeit=str(total),
             draw_height=str(ctx.block.height + 1), probes=str(sum(probed.values())))


def probe_forfeit(params: InferenceParams, price_per_token: int) -> int:
    """The least a probe's commitment locks: ``probe_forfeit_tokens`` at the model's price and
    a transfer agent's fee, more than a served probe of up to as many tokens costs its agent
    (the tokens, and a start's tx fee, below the agent's fee by that fee's rule)."""
    return params.probe_forfeit_tokens * price_per_token + params.transfer_agent_fee


def _probe_prices(ctx: Context, inferences: InferenceKeeper,
                  msg: MsgCommitKeyRequests) -> dict[str, int]:
    """The price per token of each model the message probes; a probe of a model not in the
    registry, or retired, refuses the message (UnknownModel)."""
    return {model_id: inferences.live_model(ctx.kv, model_id).price_per_token
            for model_id in sorted({r.probe_model_id for r in msg.requests if r.probe_model_id})}


def redeem(ctx: Context, bank: BankKeeper, start: MsgStartInference,
           escrow: int) -> KeyRequestCommitment:
    """Takes the commitment of an API-key start that follows it (``check_start``) and gives
    the agent its forfeit back; returns it (a probe's start is paid without an allowance)."""
    found = check_start(commitment(ctx.kv, start.creator, start.inference_id), start, escrow)
    _drop(ctx.kv, found)
    if found.forfeit:
        bank.send(ctx, FORFEIT_ACCOUNT, address.decode(found.transfer_agent),
                  {NATIVE_DENOM: found.forfeit})
    return found


def check_start(found: KeyRequestCommitment | None, start: MsgStartInference,
                escrow: int) -> KeyRequestCommitment:
    """An API-key start's draw is the one its agent's commitment ``found`` fixed: at the
    height after the commitment's, for no more than it committed to escrow (all
    DrawMismatch, code 10). The chain checks it, and so does the executor the start names
    before it serves."""
    if found is None:
        raise DrawMismatch(f"API-key request {start.inference_id} was not committed "
                           f"(MsgCommitKeyRequests) by {start.creator} before its draw, or its "
                           f"commitment expired")
    if start.draw_height != found.height + 1:
        raise DrawMismatch(f"inference {start.inference_id} was committed at height "
                           f"{found.height}: it draws at {found.height + 1}, not "
                           f"{start.draw_height}")
    if escrow > found.max_escrow:
        raise DrawMismatch(f"the start escrows {escrow} ninfer, more than the {found.max_escrow} "
                           f"its commitment allows")
    if found.probe_model_id and (start.developer != start.creator
                                 or start.model_id != found.probe_model_id):
        raise DrawMismatch(f"inference {start.inference_id} was committed as {start.creator}'s "
                           f"probe of {found.probe_model_id}: its start must be that agent's "
                           f"own request to that model, not {start.developer}'s to "
                           f"{start.model_id}")
    return found


def expire(ctx: Context, bank: BankKeeper, height: int) -> None:
    """Burns the forfeits of the commitments whose draw window ended at or before
    ``height`` without a start."""
    for suffix in due_under(ctx.kv, COMMITMENT_EXPIRY, height):
        found = load(ctx.kv, COMMITMENT + suffix, KeyRequestCommitment)
        if found is None:
            continue
        _drop(ctx.kv, found)
        if found.forfeit:
            bank.burn(ctx.kv, FORFEIT_ACCOUNT, {NATIVE_DENOM: found.forfeit})
        ctx.emit("key_request_forfeited", inference_id=found.inference_id,
                 transfer_agent=found.transfer_agent, amount=str(found.forfeit))
        log.warning("transfer agent %s committed API-key request %s at height %d and never "
                    "started it: its forfeit of %d ninfer is burned", found.transfer_agent,
                    found.inference_id, found.height, found.forfeit)
