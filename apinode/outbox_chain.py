"""The outbox worker's chain side: entries into one tx through a ``TxSender``, and tx lookups.

``OutboxWorker(outbox, outbox_submit(sender), outbox_confirm(sender))`` drains an outbox
whose entries are all signed by ``sender``'s key; each entry decodes by its type URL. A
message that would fail on chain is found by simulation before anything is broadcast, and
only that entry is rejected (to be retried on its own, and in the end failed with the chain's
reason), so one bad message never holds up the others in its batch.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from apinode.outbox import Entry, Undecodable
from apinode.outbox_worker import Confirm, Record, Submit, SubmitResult
from apinode.tx_sender import SimulationFailed, TxSender
from chain.epochs import errors as epochs_errors
from chain.inference import errors as inference_errors
from chain.validation import errors as validation_errors

log = logging.getLogger(__name__)

# Refusals, as (codespace, code), that mean "this exact message was committed before".
ALREADY_DONE = frozenset((error.codespace, error.code) for error in (
    # The participant is registered; the inference already started or finished.
    inference_errors.ParticipantExists, inference_errors.DuplicateStart,
    inference_errors.DuplicateFinish,
    # A seed already committed or revealed; a report already on record.
    validation_errors.SeedCommitted, validation_errors.DuplicateValidation,
    # A PoC batch whose nonces are claimed already (a node's batches never share a nonce, so
    # it is this very batch); a PoC verdict already on record.
    epochs_errors.DuplicateNonce, epochs_errors.DuplicateVerdict))

# Refusals that can never turn into acceptance and leave nothing owed: a report or claim the
# chain no longer takes (its window closed, a vote opened that did not draw this node).
# Retrying them would only keep the node owing the chain for ever.
MOOT = frozenset((error.codespace, error.code) for error in (
    validation_errors.WindowClosed, validation_errors.NotAllowed))


# Told of each entry the chain refuses: (entry, codespace, code, the chain's log).
Refused = Callable[[Entry, str, int, str], None]
# Makes again (and stores) the message of an entry whose bytes do not decode; None if it can't.
Repair = Callable[[Entry], Awaitable[Message | None]]


def outbox_submit(sender: TxSender, on_refused: Refused | None = None,
                  repair: Repair | None = None) -> Submit:
    """``submit`` for the worker; ``on_refused`` hears of each entry the chain refuses,
    before it is retried; ``repair`` is asked for the message of an entry that does not
    decode (a damaged row) before the entry is given up on."""

    async def submit(entries: list[Entry], record: Record) -> SubmitResult:
        messages: dict[int, Message] = {}
        rejected: dict[int, str] = {}
        by_id = {entry.id: entry for entry in entries}

        def refuse(entry_id: int, exc: SimulationFailed) -> None:
            rejected[entry_id] = exc.log
            if on_refused is not None:
                on_refused(by_id[entry_id], exc.codespace, exc.code, exc.log)

        async def settled(entry_id: int) -> bool:
            """Whether the chain's "already done" can be taken as done: see
            ``_own_tx_pending``; if not, the entry waits for its own tx and is retried."""
            pending = await _own_tx_pending(sender, by_id[entry_id])
            if pending:
                rejected[entry_id] = (f"the chain node's pending state already holds it, maybe "
                                      f"only through this node's own tx {pending}, which no "
                                      f"block carries yet")
            return not pending

        for entry in entries:
            try:
                messages[entry.id] = entry.message()
            except Undecodable as exc:
                rebuilt = await repair(entry) if repair is not None else None
                if rebuilt is None:
                    log.error("outbox: entry %s does not decode (%s) and cannot be made "
                              "again", entry.key, exc)
                    rejected[entry.id] = str(exc)
                else:
                    log.warning("outbox: entry %s did not decode (%s); made again from the "
                                "node's records", entry.key, exc)
                    messages[entry.id] = rebuilt
        if not messages:
            return SubmitResult(None, rejected)
        try:
            return SubmitResult(await _send(sender, messages, record), rejected)
        except SimulationFailed as exc:
            if len(messages) == 1 and _settled_by(exc):
                entry_id = next(iter(messages))
                done_now = frozenset(messages) if await settled(entry_id) else frozenset()
                return SubmitResult(None, rejected, done_now)
            if len(messages) == 1:
                refuse(next(iter(messages)), exc)
                return SubmitResult(None, rejected)
            log.warning("outbox: a batch of %d messages would fail (%s); adding them one at a "
                        "time to find the failing ones", len(messages), exc.log)
        # Each message is simulated after the ones kept before it: one that fails alone is
        # refused (or found done); one that passes alone but not after the others (two
        # reports of one inference, two starts) waits for the next attempt, by when the
        # earlier one is on its way and the chain tells what is left of it.
        kept: dict[int, Message] = {}
        done: set[int] = set()
        for entry_id, message in messages.items():
            with_kept = await _refusal(sender, [*kept.values(), message])
            if with_kept is None:
                kept[entry_id] = message
                continue
            alone = await _refusal(sender, [message]) if kept else with_kept
            if alone is None:
                rejected[entry_id] = (f"it would fail after another message of its batch "
                                      f"({with_kept.log}); sent again on its own")
            elif not _settled_by(alone):
                refuse(entry_id, alone)
            elif await settled(entry_id):
                done.add(entry_id)
        if not kept:
            return SubmitResult(None, rejected, frozenset(done))
        return SubmitResult(await _send(sender, kept, record), rejected, frozenset(done))

    return submit


async def _send(sender: TxSender, messages: dict[int, Message], record: Record) -> str:
    """Broadcasts the messages (by entry id) as one tx, each signed version recorded first."""
    async def before_broadcast(tx_hash: str, timeout_height: int) -> None:
        await record(list(messages), tx_hash, timeout_height)
    return await sender.send(list(messages.values()), before_broadcast=before_broadcast)


async def _own_tx_pending(sender: TxSender, entry: Entry) -> str | None:
    """The hash of the entry's own last tx when that tx may still sit in the chain node's
    mempool; None when it is in a block (succeeded or failed) or can never land, or when the
    entry was never sent.

    A simulation runs on the mempool's state, pending txs included: "already started",
    "already finished" may be the entry's own earlier tx, not yet in a block. A chain node
    whose consensus halted (a full disk) keeps such a tx, and answers so, until it restarts
    and forgets it: counting the entry done then would lose it."""
    if not entry.tx_hash:
        return None
    if await sender.tx_result(entry.tx_hash) is not None or \
            await sender.never_lands(entry.tx_hash, entry.timeout_height):
        return None
    return entry.tx_hash


async def _refusal(sender: TxSender, messages: list[Message]) -> SimulationFailed | None:
    """Why ``messages`` as one tx would fail now; None if it would not."""
    try:
        await sender.simulate(messages)
    except SimulationFailed as exc:
        return exc
    return None


def _settled_by(refusal: SimulationFailed) -> bool:
    """Whether the refusal leaves nothing owed: done before, or moot now."""
    key = (refusal.codespace, refusal.code)
    if key in MOOT:
        log.warning("outbox: the chain no longer takes this message (%s); dropped",
                    refusal.log)
    return key in ALREADY_DONE or key in MOOT


def outbox_confirm(sender: TxSender) -> Confirm:
    """``confirm`` for the worker: True once the tx succeeded, False if it failed in a block
    or can never land (another tx of the sender's took its sequence)."""

    async def confirm(tx_hash: str, timeout_height: int | None) -> bool | None:
        result = await sender.tx_result(tx_hash)
        if result is None:
            if await sender.never_lands(tx_hash, timeout_height):
                log.warning("outbox: tx %s was dropped from the mempool (another tx took its "
                            "sequence, or its timeout height passed); its messages go out "
                            "again", tx_hash)
                return False
            return None
        if result.code:
            log.warning("outbox: tx %s failed in its block (code %d): %s", tx_hash, result.code,
                        result.log)
        return result.code == 0

    return confirm
