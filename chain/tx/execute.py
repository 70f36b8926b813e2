"""Runs one transaction against a state: decode, ante, messages, each in its own branch.

Modes differ only in what survives a failure:
- check (mempool admission): everything runs, nothing of a failed tx is kept, so a tx that
  would fail never reaches a block;
- deliver (in a block): a failed ante leaves no trace; failed messages are rolled back but the
  ante's fee and sequence increase stay, as in the Cosmos SDK;
- simulate: everything runs under the node's simulation gas cap instead of the tx's own limit
  and is thrown away; gas used is the estimate.

Whatever the bytes, a run ends in an Outcome: an exception raised by decoding, the ante handler
or a message handler fails this tx alone, with its code or as an internal error (code 1). Only
failures of the machine itself (chain/errors.py ENVIRONMENT_ERRORS) escape, to stop the node.
"""

import enum
import logging
from dataclasses import dataclass, field

from chain.auth.keeper import AuthKeeper
from chain.context import BlockInfo, Context, Event
from chain.errors import ENVIRONMENT_ERRORS, ChainError
from chain.gas import GasMeter
from chain.router import Router
from chain.store import Overlay
from chain.tx.ante import AnteHandler
from chain.tx.decode import DecodedTx, decode, tx_hash

log = logging.getLogger(__name__)

# A failure's log echoes parts of the input; it is stored with the block and sent to clients.
MAX_LOG_CHARS = 2048


class Mode(enum.Enum):
    CHECK = "check"
    DELIVER = "deliver"
    SIMULATE = "simulate"


@dataclass
class Outcome:
    hash: bytes
    code: int = 0
    codespace: str = ""
    log: str = ""
    gas_wanted: int = 0
    gas_used: int = 0
    events: list[Event] = field(default_factory=list)
    tx: DecodedTx | None = None

    @property
    def ok(self) -> bool:
        return self.code == 0


class TxRunner:
    def __init__(self, router: Router, ante: AnteHandler, auth: AuthKeeper) -> None:
        self._router = router
        self._ante = ante
        self._auth = auth

    def run(self, state: Overlay, block: BlockInfo, raw: bytes, mode: Mode,
            simulate_gas_cap: int | None = None) -> Outcome:
        """Runs one tx; in simulate mode ``simulate_gas_cap`` replaces the tx's gas limit."""
        outcome = Outcome(tx_hash(raw))
        try:
            tx = decode(raw, self._router, self._auth.params(state).tx_sig_limit,
                        simulate=mode is Mode.SIMULATE)
        except ENVIRONMENT_ERRORS:
            raise
        except Exception as exc:
            return _failed(outcome, exc)
        outcome.tx = tx
        outcome.gas_wanted = tx.gas_limit
        meter = GasMeter(simulate_gas_cap if mode is Mode.SIMULATE else tx.gas_limit)
        ante_state = state.branch()
        ctx = Context.of(block, ante_state, meter)
        try:
            self._ante.run(ctx, tx, simulate=mode is Mode.SIMULATE)
        except ENVIRONMENT_ERRORS:
            raise
        except Exception as exc:
            outcome.gas_used = meter.used
            return _failed(outcome, exc)
        msg_state = ante_state.branch()
        msg_ctx = Context.of(block, msg_state, meter)
        try:
            for route, message in tx.messages:
                route.handle(msg_ctx, message)
        except ENVIRONMENT_ERRORS:
            raise
        except Exception as exc:
            outcome.gas_used = meter.used
            if mode is Mode.DELIVER:
                ante_state.write()
                outcome.events = ctx.events
            return _failed(outcome, exc)
        outcome.gas_used = meter.used
        outcome.events = ctx.events + msg_ctx.events
        if mode is not Mode.SIMULATE:
            msg_state.write()
            ante_state.write()
        return outcome


def _failed(outcome: Outcome, exc: Exception) -> Outcome:
    """Records why a tx failed; a bug in a handler fails the tx, never the block."""
    if not isinstance(exc, ChainError):
        log.exception("tx %s failed with an internal error", outcome.hash.hex().upper())
        exc = ChainError(f"internal error: {type(exc).__name__}")
    text = exc.message
    if len(text) > MAX_LOG_CHARS:
        text = text[:MAX_LOG_CHARS] + "…"
    outcome.code, outcome.codespace = exc.code, exc.codespace
    outcome.log = text.encode("utf-8", "replace").decode()
    return outcome
