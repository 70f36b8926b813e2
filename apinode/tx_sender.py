"""Signs and broadcasts the API node's transactions: many messages, one signer, one tx.

Each send simulates the tx for its gas, pays ``ceil(gas × gas_price)`` ninfer, signs in
SIGN_MODE_DIRECT and broadcasts in sync mode, which returns once the mempool has accepted
(CheckTx) or refused it. Whether the tx then succeeded in a block is ``tx_result``'s answer.

The account sequence is kept here rather than asked for before every tx, so a sender can put
several txs in one block. It is fetched once and moved on per broadcast; when the chain says
it is wrong (``WrongSequence``: another process used the key, or a broadcast tx never made it
into a block) the sender takes the sequence the chain expects and tries once more. Sends are
serialized by a lock: two txs signed with the same sequence would have one refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import NamedTuple

import grpc
from cosmpy.aerial.tx import SigningCfg, Transaction, TxFee
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.base.abci.v1beta1.abci_pb2 import TxResponse
from cosmpy.protos.cosmos.tx.v1beta1 import service_pb2 as tx_service
from google.protobuf.message import Message

from apinode.chain_queries import DEFAULT_TIMEOUT_S, AuthAccount, ChainQueries, ChainQueryError
from chain.auth.address import PREFIX
from chain.bank.coins import NATIVE_DENOM
from chain.errors import UnknownAddress, WrongSequence

log = logging.getLogger(__name__)

TX_SERVICE = "/cosmos.tx.v1beta1.Service/"
# How the chain words a simulation that fails and a wrong sequence (the SDK's own wording).
SIMULATION_FAILED = re.compile(r"simulation failed \(code (\d+), codespace (\w*)\): (.*)",
                               re.DOTALL)
EXPECTED_SEQUENCE = re.compile(r"expected (\d+), got \d+")
# Simulation runs without a gas limit, but the tx needs one to be well formed; a nominal fee
# makes the simulation pay (and count the gas of) the fee transfer the real tx will make.
SIMULATION_GAS_LIMIT = 10_000_000
SIMULATION_FEE = 1
# Broadcast txs whose sequence a sender remembers, to tell a dropped one from a slow one.
REMEMBERED_TXS = 4096


class TxRejected(Exception):
    """The chain refused the tx before any block; code, codespace and log are the chain's."""

    def __init__(self, code: int, log: str, codespace: str = "") -> None:
        super().__init__(f"code {code}: {log}")
        self.code = code
        self.log = log
        self.codespace = codespace


class SimulationFailed(TxRejected):
    """Simulation shows the tx would fail, so it was not broadcast."""


class TxResult(NamedTuple):
    """A committed tx's outcome: code 0 succeeded; otherwise ``log`` says why it failed."""

    code: int
    log: str


# Told a tx's hash and timeout height right before the tx is broadcast (again, with a new
# hash, when it is signed anew): a caller that must find the tx after a crash keeps them.
BeforeBroadcast = Callable[[str, int], Awaitable[None]]


class TxSender:
    """Sends txs signed by one account key; share one per key within a process.

    ``timeout_blocks`` sets each tx's timeout height that many blocks past the latest one: a tx
    that has not landed by then never will, so a caller that gives up on it and sends the same
    messages again cannot have them land twice, and ``never_lands`` can say so as soon as the
    chain is there. Keep it well below the deadlines of what the txs carry (an inference
    expires ``expiration_blocks``, 20 by default, after its start): a tx lost with a restarted
    node's mempool is known lost, and its messages sent again, within that many blocks.
    """

    def __init__(self, channel: grpc.aio.Channel, private_key: str | PrivateKey, chain_id: str,
                 *, gas_price: float = 0.01, gas_adjustment: float = 1.3,
                 timeout_blocks: int = 8, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._key = (private_key if isinstance(private_key, PrivateKey)
                     else PrivateKey(bytes.fromhex(private_key)))
        self.address = str(Address(self._key.public_key, prefix=PREFIX))
        self.chain = ChainQueries(channel, timeout_s)
        self.chain_id = chain_id
        self.gas_price = Decimal(str(gas_price))
        self.gas_adjustment = Decimal(str(gas_adjustment))
        self.timeout_blocks = timeout_blocks
        self._lock = asyncio.Lock()
        self._number: int | None = None
        self._sequence = 0
        # tx hash → (its sequence, its timeout height)
        self._sent: OrderedDict[str, tuple[int, int]] = OrderedDict()

    async def send(self, messages: Sequence[Message], memo: str = "",
                   before_broadcast: BeforeBroadcast | None = None) -> str:
        """Broadcast ``messages`` as one tx and return its hash once the mempool took it.

        ``before_broadcast`` hears the tx's hash and timeout height before the tx leaves, so
        a caller that dies between the broadcast and its next step has them on record; if it
        raises, nothing is broadcast.

        Raises ``SimulationFailed`` when the tx would fail (nothing is sent), ``TxRejected``
        when the mempool refuses it, ``ChainQueryError``/``ChainUnavailable`` when the node
        cannot be asked.
        """
        if not messages:
            raise ValueError("a tx needs at least one message")
        async with self._lock:
            await self._ensure_account()
            gas = math.ceil(await self._simulate(messages, memo) * self.gas_adjustment)
            fee = math.ceil(gas * self.gas_price)
            timeout_height = await self.chain.latest_height() + self.timeout_blocks
            reply = await self._broadcast(messages, memo, gas, fee, timeout_height,
                                          before_broadcast)
            if reply.code == WrongSequence.code:
                expected = await self._expected_sequence(reply.raw_log)
                log.warning("tx sender %s: sequence %d refused, the chain expects %d; re-signing",
                            self.address, self._sequence, expected)
                self._sequence = expected
                reply = await self._broadcast(messages, memo, gas, fee, timeout_height,
                                              before_broadcast)
            if reply.code:
                raise TxRejected(reply.code, reply.raw_log)
            log.info("tx sender %s: broadcast tx %s (%s; gas %d, fee %d%s, sequence %d)",
                     self.address, reply.txhash, _describe(messages), gas, fee, NATIVE_DENOM,
                     self._sequence)
            self._sent[reply.txhash.upper()] = (self._sequence, timeout_height)
            while len(self._sent) > REMEMBERED_TXS:
                self._sent.popitem(last=False)
            self._sequence += 1
            return reply.txhash

    async def simulate(self, messages: Sequence[Message], memo: str = "") -> int:
        """Gas ``messages`` use as one tx now; raises ``SimulationFailed`` if it would fail."""
        async with self._lock:
            await self._ensure_account()
            return await self._simulate(messages, memo)

    async def tx_result(self, tx_hash: str) -> TxResult | None:
        """The outcome of a committed tx; None while it is pending (or if it never lands)."""
        landed = await self.landed(tx_hash)
        return landed[0] if landed else None

    async def landed(self, tx_hash: str) -> tuple[TxResult, int] | None:
        """The outcome of a committed tx and the height of its block; None while pending."""
        reply = await self.chain.find(TX_SERVICE + "GetTx", tx_service.GetTxRequest(hash=tx_hash),
                                      tx_service.GetTxResponse)
        if not reply:
            return None
        return (TxResult(reply.tx_response.code, reply.tx_response.raw_log),
                reply.tx_response.height)

    async def never_lands(self, tx_hash: str, timeout_height: int | None = None) -> bool:
        """Whether a tx this sender broadcast can never land: it is not in a block, and either
        a committed tx of this account already used its sequence or the chain has committed
        its timeout height.

        A mempool can drop a tx it took (a node restarted, a recheck refused it); a later tx
        signed at the same sequence then takes its place, or, when this sender has nothing
        else to send, the timeout height passes. Waiting out a wall-clock timeout for the
        dropped one would let the messages it carried miss their deadlines on chain. A hash
        this sender does not remember (signed before this process started) is known lost only
        by the ``timeout_height`` its caller kept for it, and never declared lost without."""
        sent = self._sent.get(tx_hash.upper())
        if sent is None:
            if timeout_height is None or await self.chain.latest_height() < timeout_height:
                return False
            return await self.tx_result(tx_hash) is None
        sequence, timeout_height = sent
        if await self.chain.latest_height() < timeout_height:
            account = await self.chain.auth_account(self.address)
            if account is None or account.sequence <= sequence:
                return False
        # The tx may have landed between the caller's look-up and the account's.
        return await self.tx_result(tx_hash) is None

    async def _ensure_account(self) -> None:
        if self._number is None:
            account = await self._fetch_account()
            self._number, self._sequence = account
            log.info("tx sender %s: account number %d, next sequence %d", self.address,
                     *account)

    async def _fetch_account(self) -> AuthAccount:
        account = await self.chain.auth_account(self.address)
        if account is None:
            raise TxRejected(UnknownAddress.code,
                             f"account {self.address} does not exist on chain: it must "
                             f"receive funds before it can send txs")
        return account

    async def _simulate(self, messages: Sequence[Message], memo: str) -> int:
        """Gas used, simulating at the committed state's sequence if ours is ahead of it.

        The chain simulates against committed state, which does not count our txs still in the
        mempool; a sequence ahead of it is then expected, and only the gas matters here. One
        below it is stale (the key signed elsewhere) and is corrected.
        """
        try:
            return await self._simulate_at(messages, memo, self._sequence)
        except SimulationFailed as exc:
            if exc.code != WrongSequence.code:
                raise
            expected = await self._expected_sequence(exc.log)
        if expected > self._sequence:
            log.warning("tx sender %s: sequence %d is stale, the chain is at %d", self.address,
                        self._sequence, expected)
            self._sequence = expected
        return await self._simulate_at(messages, memo, expected)

    async def _simulate_at(self, messages: Sequence[Message], memo: str, sequence: int) -> int:
        raw = self._signed(messages, memo, sequence, SIMULATION_GAS_LIMIT, SIMULATION_FEE, 0)
        try:
            reply = await self.chain.call(TX_SERVICE + "Simulate",
                                          tx_service.SimulateRequest(tx_bytes=raw),
                                          tx_service.SimulateResponse)
        except ChainQueryError as exc:
            found = SIMULATION_FAILED.match(exc.details)
            if exc.code != grpc.StatusCode.INVALID_ARGUMENT or found is None:
                raise
            raise SimulationFailed(int(found.group(1)), found.group(3), found.group(2)) from exc
        return reply.gas_info.gas_used

    async def _broadcast(self, messages: Sequence[Message], memo: str, gas: int, fee: int,
                         timeout_height: int, before: BeforeBroadcast | None) -> TxResponse:
        raw = self._signed(messages, memo, self._sequence, gas, fee, timeout_height)
        if before is not None:
            await before(hashlib.sha256(raw).hexdigest().upper(), timeout_height)
        reply = await self.chain.call(TX_SERVICE + "BroadcastTx", tx_service.BroadcastTxRequest(
            tx_bytes=raw, mode=tx_service.BROADCAST_MODE_SYNC), tx_service.BroadcastTxResponse)
        return reply.tx_response

    async def _expected_sequence(self, chain_log: str) -> int:
        """The sequence the chain asked for in its refusal, else the committed one."""
        found = EXPECTED_SEQUENCE.search(chain_log)
        return int(found.group(1)) if found else (await self._fetch_account()).sequence

    def _signed(self, messages: Sequence[Message], memo: str, sequence: int, gas: int, fee: int,
                timeout_height: int) -> bytes:
        assert self._number is not None, "account number is fetched before any tx is signed"
        tx = Transaction()
        for message in messages:
            tx.add_message(message)
        tx.seal(SigningCfg.direct(self._key.public_key, sequence),
                fee=TxFee(amount=f"{fee}{NATIVE_DENOM}", gas_limit=gas), memo=memo,
                timeout_height=timeout_height or None)
        tx.sign(self._key, self.chain_id, self._number, deterministic=True)
        return tx.complete().tx.SerializeToString()


def _describe(messages: Sequence[Message]) -> str:
    """``2 messages: MsgSend×2`` for log lines."""
    kinds = Counter(m.DESCRIPTOR.name for m in messages)
    return f"{len(messages)} messages: " + ", ".join(f"{k}×{n}" for k, n in kinds.items())
