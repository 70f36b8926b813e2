"""Notices of passed draw picks (docs/design.md §3.3): what lets a transfer agent pass a pick
that left it no signed refusal, without letting it pass a live one.

A silent or unreachable pick leaves no evidence, and the chain cannot tell one from a pick the
agent never asked; were an agent free to pass picks unevidenced, it would pass every pick
before its accomplice whenever the draw put the accomplice among the first ``max_attempts``.
So an agent first posts a notice of the pass (``MsgNoticePasses``), naming the pick; the pick,
if alive, claims the request (``MsgClaimPasses``) within ``pass_claim_blocks`` blocks of the
notice's, and from then on no start passes it without its signed refusal: it serves the
request, refuses it and takes the miss, or the request goes unserved. A start passes a pick
unevidenced only under a notice of it that stayed unclaimed through the claim window; a dead
pick stays silent, and the agent moves on a few blocks later. A claimant whose request was
then never started is counted as passed over, as a pass is, when the notice expires: so a
pick that claims everything and serves nothing keeps no more of its reward than a silent one.
Each notice locks ``pass_notice_bond`` from the agent in BOND_ACCOUNT, returned when the
request's start lands and burned when the notice expires first: the agent of a request
nobody serves loses it, and so does one that notices requests it never meant to send, to
have their claimants counted as passed over.

Keys:
  inference/passnotice/<agent>/<attempt><id>                   PassNotice, until its window ends
  inference/passnoticeto/<pick>/<height><agent>/<attempt><id>  the pick's index
  inference/passnoticeexp/<expires_at><agent>/<attempt><id>    when each is dropped
"""

import hashlib
import logging

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.context import Context
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.inference.errors import UnevidencedSkip
from chain.inference.expected_keepers import BankKeeper
from chain.inference.keeper import InferenceKeeper
from chain.inference.model import SHA256_HEX
from chain.inference.params import InferenceParams
from chain.store import KVReader
from chain.store.records import due_under, load, save, uint64
from inferchain_pb.inference.v1.inference_pb2 import (
    MsgClaimPasses,
    MsgNoticePasses,
    MsgStartInference,
    PassNotice,
)

log = logging.getLogger(__name__)

NOTICE = b"inference/passnotice/"
NOTICE_TO = b"inference/passnoticeto/"
NOTICE_EXPIRY = b"inference/passnoticeexp/"
BOND_ACCOUNT = hashlib.sha256(b"inference_pass_notice_bonds").digest()[:20]
# Passes or claims one message may carry: a block's worth for an agent or a pick, bounded so
# one message's work (and its gas) is.
MAX_ENTRIES = 256
# Notices one PassNotices query returns.
MAX_LISTED = 1_000

State = GasKV | KVReader


def _suffix(agent: str, inference_id: str, attempt: int) -> bytes:
    return address.decode(agent) + b"/" + uint64(attempt) + inference_id.encode()


def notice(state: State, agent: str, inference_id: str, attempt: int) -> PassNotice | None:
    """``agent``'s notice that it passes pick ``attempt`` of ``inference_id``, while the
    request may still start."""
    return load(state, NOTICE + _suffix(agent, inference_id, attempt), PassNotice)


def notices_to(state: KVReader, pick: str, since_height: int,
               limit: int = MAX_LISTED) -> list[PassNotice]:
    """The notices naming ``pick`` that blocks from ``since_height`` on took, oldest first."""
    prefix = NOTICE_TO + address.decode(pick) + b"/"
    found: list[PassNotice] = []
    for key, _ in state.iterate(prefix):  # pruned with their window: a few blocks' worth
        if int.from_bytes(key[len(prefix):len(prefix) + 8], "big") < since_height:
            continue
        item = load(state, NOTICE + key[len(prefix) + 8:], PassNotice)
        if item is not None:
            found.append(item)
            if len(found) >= limit:
                break
    return found


def _index_keys(found: PassNotice) -> tuple[bytes, bytes, bytes]:
    suffix = _suffix(found.transfer_agent, found.inference_id, found.attempt)
    return (NOTICE + suffix,
            NOTICE_TO + address.decode(found.pick) + b"/" + uint64(found.height) + suffix,
            NOTICE_EXPIRY + uint64(found.expires_at) + suffix)


def post(ctx: Context, bank: BankKeeper, inferences: InferenceKeeper, msg: MsgNoticePasses,
         params: InferenceParams) -> None:
    """Records each notice of ``msg.creator`` (a registered participant: the caller checked)
    and moves its bond into BOND_ACCOUNT; refuses the whole message, changing nothing, if any
    pass is malformed, noticed before, or of a request already started or past its draw
    window, or if the agent cannot pay every bond."""
    if not 1 <= len(msg.passes) <= MAX_ENTRIES:
        raise InvalidRequest(f"a notice names 1 to {MAX_ENTRIES} passes, not "
                             f"{len(msg.passes)}")
    oldest = max(1, ctx.block.height - params.max_draw_age_blocks)
    seen: set[tuple[str, int]] = set()
    for item in msg.passes:
        if not SHA256_HEX.fullmatch(item.inference_id):
            raise InvalidRequest(f"inference id {item.inference_id[:80]!r} is not 64 lowercase "
                                 f"hex digits")
        if (item.inference_id, item.attempt) in seen:
            raise InvalidRequest(f"pick {item.attempt} of inference {item.inference_id} is "
                                 f"named twice")
        seen.add((item.inference_id, item.attempt))
        if item.attempt >= params.max_attempts - 1:
            raise InvalidRequest(f"pick {item.attempt} of inference {item.inference_id} has "
                                 f"no pick after it to pass to (max_attempts "
                                 f"{params.max_attempts})")
        if not oldest <= item.draw_height < ctx.block.height:
            raise InvalidRequest(f"draw height {item.draw_height} of inference "
                                 f"{item.inference_id} is outside [{oldest}, "
                                 f"{ctx.block.height - 1}]")
        if inferences.model(ctx.kv, item.model_id) is None:
            raise InvalidRequest(f"model {item.model_id[:80]!r} is not registered")
        if inferences.participant(ctx.kv, item.pick) is None:  # a malformed one is refused
            raise InvalidRequest(f"pick {item.pick[:80]!r} is not a registered participant")
        if notice(ctx.kv, msg.creator, item.inference_id, item.attempt) is not None:
            raise InvalidRequest(f"pick {item.attempt} of inference {item.inference_id} was "
                                 f"noticed already")
        known = inferences.inference(ctx.kv, item.inference_id)
        if known is not None and known.started:
            raise InvalidRequest(f"inference {item.inference_id} was started already")
    for item in msg.passes:
        found = PassNotice(
            transfer_agent=msg.creator, inference_id=item.inference_id,
            model_id=item.model_id, draw_height=item.draw_height, attempt=item.attempt,
            pick=item.pick, height=ctx.block.height,
            expires_at=item.draw_height + params.max_draw_age_blocks,
            bond=params.pass_notice_bond)
        primary, to_pick, expiry = _index_keys(found)
        save(ctx.kv, primary, found)
        ctx.kv.set(to_pick, b"")
        ctx.kv.set(expiry, b"")
    if params.pass_notice_bond:
        bank.send(ctx, address.decode(msg.creator), BOND_ACCOUNT,
                  {NATIVE_DENOM: params.pass_notice_bond * len(msg.passes)})
    ctx.emit("notice_passes", transfer_agent=msg.creator, passes=str(len(msg.passes)),
             claimable_through=str(ctx.block.height + params.pass_claim_blocks))


def claim(ctx: Context, msg: MsgClaimPasses, params: InferenceParams) -> None:
    """Marks each notice ``msg.creator`` claims as claimed; refuses the whole message,
    changing nothing, if any names a notice that is not there, not of this pick, claimed
    already or past its claim window."""
    if not 1 <= len(msg.claims) <= MAX_ENTRIES:
        raise InvalidRequest(f"a claim names 1 to {MAX_ENTRIES} notices, not "
                             f"{len(msg.claims)}")
    found: list[PassNotice] = []
    seen: set[tuple[str, str, int]] = set()
    for item in msg.claims:
        key = (item.transfer_agent, item.inference_id, item.attempt)
        if key in seen:
            raise InvalidRequest(f"the notice of pick {item.attempt} of inference "
                                 f"{item.inference_id[:80]!r} is claimed twice")
        seen.add(key)
        noticed = notice(ctx.kv, item.transfer_agent, item.inference_id, item.attempt)
        if noticed is None or noticed.pick != msg.creator:
            raise InvalidRequest(f"no notice of {item.transfer_agent[:80]!r} passes "
                                 f"{msg.creator} at pick {item.attempt} of inference "
                                 f"{item.inference_id[:80]!r}")
        if noticed.claimed_at:
            raise InvalidRequest(f"the notice of pick {item.attempt} of inference "
                                 f"{item.inference_id} was claimed at height "
                                 f"{noticed.claimed_at}")
        if ctx.block.height > noticed.height + params.pass_claim_blocks:
            raise InvalidRequest(f"the notice of pick {item.attempt} of inference "
                                 f"{item.inference_id} was claimable through height "
                                 f"{noticed.height + params.pass_claim_blocks}")
        found.append(noticed)
    for noticed in found:
        noticed.claimed_at = ctx.block.height
        save(ctx.kv, _index_keys(noticed)[0], noticed)
    ctx.emit("claim_passes", pick=msg.creator, claims=str(len(msg.claims)))


def check_pass(found: PassNotice | None, start: MsgStartInference, attempt: int, pick: str,
               height: int, claim_blocks: int) -> None:
    """A start landing at ``height`` passes pick ``attempt`` (``pick``) without its refusal
    only under its agent's notice of that pick, for this request's draw, unclaimed through
    its claim window (all UnevidencedSkip, code 61). The chain checks it, and so does the
    executor the start names before it serves."""
    if found is None or found.pick != pick or found.draw_height != start.draw_height \
            or found.model_id != start.model_id:
        raise UnevidencedSkip(f"the start passes pick {attempt} ({pick}) of inference "
                              f"{start.inference_id} without its signed refusal or a notice of "
                              f"the pass (MsgNoticePasses) for draw height {start.draw_height}")
    if found.claimed_at:
        raise UnevidencedSkip(f"pick {attempt} ({pick}) claimed inference "
                              f"{start.inference_id} at height {found.claimed_at}: it is passed "
                              f"only on its signed refusal")
    if height <= found.height + claim_blocks:
        raise UnevidencedSkip(f"pick {attempt} ({pick}) of inference {start.inference_id} may "
                              f"claim it through height {found.height + claim_blocks}; the "
                              f"start passes it only after that")


def redeem(ctx: Context, bank: BankKeeper, start: MsgStartInference,
           max_attempts: int) -> None:
    """Returns the bonds of the agent's notices of a request whose start lands; the notices
    stay until their window ends (a claim of them still counts)."""
    for attempt in range(max_attempts - 1):  # no notice names the last pick
        found = notice(ctx.kv, start.creator, start.inference_id, attempt)
        if found is None or not found.bond:
            continue
        bank.send(ctx, BOND_ACCOUNT, address.decode(start.creator), {NATIVE_DENOM: found.bond})
        found.bond = 0
        save(ctx.kv, _index_keys(found)[0], found)


def expire(ctx: Context, bank: BankKeeper, inferences: InferenceKeeper, height: int) -> None:
    """Drops the notices whose request can no longer start, burning the bonds no start
    returned; a claimant whose request never started is counted as passed over."""
    for suffix in due_under(ctx.kv, NOTICE_EXPIRY, height):
        found = load(ctx.kv, NOTICE + suffix, PassNotice)
        if found is None:
            continue
        for key in _index_keys(found):
            ctx.kv.delete(key)
        if found.bond:
            bank.burn(ctx.kv, BOND_ACCOUNT, {NATIVE_DENOM: found.bond})
            ctx.emit("pass_bond_burned", inference_id=found.inference_id,
                     transfer_agent=found.transfer_agent, amount=str(found.bond))
        if not found.claimed_at:
            continue
        started = inferences.inference(ctx.kv, found.inference_id)
        if started is not None and started.started:
            continue
        claimant = inferences.participant(ctx.kv, found.pick)
        if claimant is None:
            continue
        claimant.passed_over += 1
        inferences.set_participant(ctx.kv, claimant)
        log.info("pick %s claimed inference %s from transfer agent %s at height %d and it "
                 "never started: counted as passed over", found.pick, found.inference_id,
                 found.transfer_agent, found.claimed_at)
