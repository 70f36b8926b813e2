"""Signing and sending a transaction: simulate for gas, pay the chain's minimum gas price,
sign in SIGN_MODE_DIRECT with cosmpy, broadcast, and wait for the block when asked.

The fee rule is the chain's (docs/design.md §2.4): at least ⌈gas_limit × min_gas_price⌉
ninfer, with ``min_gas_price`` read from the node's auth params, so the client pays what the
chain asks today even after governance changed it.
"""

import math
import re
import time
from dataclasses import dataclass
from decimal import Decimal

from cosmpy.aerial.tx import SigningCfg, Transaction, TxFee
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.base.abci.v1beta1.abci_pb2 import TxResponse
from cosmpy.protos.cosmos.tx.v1beta1 import service_pb2 as tx_service
from google.protobuf.message import Message

from chain.bank.coins import NATIVE_DENOM
from client.arguments import parse_amount, parse_gas_price
from client.errors import CliError
from client.node import Node
from client.output import as_dict
from genesis.addresses import ACCOUNT_PREFIX

TX_SERVICE = "/cosmos.tx.v1beta1.Service/"
MODES = {"sync": tx_service.BROADCAST_MODE_SYNC, "async": tx_service.BROADCAST_MODE_ASYNC,
         "block": tx_service.BROADCAST_MODE_SYNC}
# How long ``--broadcast-mode block`` waits for the tx to be in a block.
BLOCK_WAIT_S = 60.0
# The chain's refusal of a stale sequence (chain/tx/ante.py, code 32). The committed account
# that the client reads lags the node's mempool when another sender with the same key (the
# operator's own API node) has a tx waiting there; the refusal names the sequence to use.
SEQUENCE_MISMATCH = re.compile(r"account sequence mismatch, expected (\d+), got (\d+)")
SEQUENCE_TRIES = 5


def expected_sequence(refusal: str, sent: int) -> int | None:
    """The sequence the chain asks for instead of ``sent``, if ``refusal`` is that complaint."""
    found = SEQUENCE_MISMATCH.search(refusal)
    if found is None or int(found.group(2)) != sent or int(found.group(1)) == sent:
        return None
    return int(found.group(1))


@dataclass(frozen=True)
class TxOptions:
    """The tx flags: gas (``auto`` simulates), fee or gas price overrides, memo, mode."""

    gas: str = "auto"
    gas_adjustment: Decimal = Decimal("1.3")
    fees: str = ""
    gas_prices: str = ""
    memo: str = ""
    broadcast_mode: str = "sync"
    dry_run: bool = False


class Signer:
    """One key's transactions against one node."""

    def __init__(self, node: Node, key: PrivateKey, chain_id: str) -> None:
        self._node = node
        self._key = key
        self.address = str(Address(key.public_key, prefix=ACCOUNT_PREFIX))
        self.chain_id = node.check_chain_id(chain_id)

    def plan(self, messages: list[Message], options: TxOptions) -> dict:
        """Gas limit and fee for ``messages``, simulated unless ``--gas`` fixes the limit."""
        account = self._node.account(self.address)
        plan = {"signer": self.address, "account_number": account.account_number,
                "sequence": account.sequence}
        if options.gas == "auto":
            for _ in range(SEQUENCE_TRIES):
                try:
                    simulated = self.simulate(messages, options, account.account_number,
                                              plan["sequence"])
                    break
                except CliError as exc:
                    expected = expected_sequence(str(exc), plan["sequence"])
                    if expected is None:
                        raise
                    plan["sequence"] = expected
            else:
                raise CliError(f"the account's sequence kept moving under this transaction "
                               f"({SEQUENCE_TRIES} tries): another sender uses the key")
            plan["gas_estimate"] = simulated
            gas_limit = math.ceil(simulated * options.gas_adjustment)
        else:
            gas_limit = int(options.gas)
        if options.fees:
            fee = parse_amount(options.fees, "--fees")
        else:
            price = (parse_gas_price(options.gas_prices) if options.gas_prices
                     else self._node.min_gas_price())
            fee = f"{math.ceil(gas_limit * price)}{NATIVE_DENOM}"
        return {**plan, "gas_limit": gas_limit, "fee": fee}

    def simulate(self, messages: list[Message], options: TxOptions, number: int,
                 sequence: int) -> int:
        raw = self._signed(messages, options.memo, number, sequence, TxFee(amount=[], gas_limit=0))
        try:
            reply = self._node.call(TX_SERVICE + "Simulate",
                                    tx_service.SimulateRequest(tx_bytes=raw),
                                    tx_service.SimulateResponse)
        except CliError as exc:
            raise CliError(f"the chain refuses this transaction: {exc}") from exc
        return reply.gas_info.gas_used

    def send(self, messages: list[Message], options: TxOptions, plan: dict) -> dict:
        """Broadcasts the planned tx, signed again at the sequence the chain names if another
        sender of the key took the planned one; the outcome, or a CliError carrying the
        chain's refusal."""
        sequence = plan["sequence"]
        for _ in range(SEQUENCE_TRIES):
            raw = self._signed(messages, options.memo, plan["account_number"], sequence,
                               TxFee(amount=plan["fee"], gas_limit=plan["gas_limit"]))
            reply = self._node.call(TX_SERVICE + "BroadcastTx", tx_service.BroadcastTxRequest(
                tx_bytes=raw, mode=MODES[options.broadcast_mode]),
                tx_service.BroadcastTxResponse)
            response = reply.tx_response
            expected = expected_sequence(response.raw_log, sequence) if response.code else None
            if expected is None:
                break
            sequence = expected
        if response.code:
            raise CliError(f"the chain refused tx {response.txhash} (code {response.code}, "
                           f"codespace {response.codespace or 'sdk'}): {response.raw_log}")
        if options.broadcast_mode == "block":
            response = self._wait_for_block(response.txhash)
            if response.code:
                raise CliError(f"tx {response.txhash} failed in block {response.height} (code "
                               f"{response.code}, codespace {response.codespace or 'sdk'}): "
                               f"{response.raw_log}")
        return _outcome(response, plan)

    def _wait_for_block(self, tx_hash: str) -> TxResponse:
        deadline = time.monotonic() + BLOCK_WAIT_S
        while True:
            try:
                return self._node.call(TX_SERVICE + "GetTx", tx_service.GetTxRequest(
                    hash=tx_hash), tx_service.GetTxResponse, not_found="pending").tx_response
            except CliError as exc:
                if str(exc) != "pending":
                    raise
            if time.monotonic() > deadline:
                raise CliError(f"tx {tx_hash} was accepted but is in no block after "
                               f"{BLOCK_WAIT_S:.0f}s; look it up later with "
                               f"`inferchain query tx {tx_hash}`")
            time.sleep(0.25)

    def _signed(self, messages: list[Message], memo: str, number: int, sequence: int,
                fee: TxFee) -> bytes:
        tx = Transaction()
        for message in messages:
            tx.add_message(message)
        tx.seal(SigningCfg.direct(self._key.public_key, sequence), fee=fee, memo=memo or None)
        tx.sign(self._key, self.chain_id, number, deterministic=True)
        return tx.complete().tx.SerializeToString()


def _outcome(response: TxResponse, plan: dict) -> dict:
    """The tx's outcome in the JSON form ``query tx`` prints (64-bit numbers as strings); the
    gas limit and fee are the plan's, which a sync broadcast's reply does not repeat."""
    reply = {**as_dict(response), "gas_wanted": str(plan["gas_limit"]), "fee": plan["fee"]}
    outcome = {key: reply[key] for key in ("txhash", "code", "height", "gas_wanted",
                                           "gas_used", "fee", "raw_log")}
    if response.events:
        outcome["events"] = [{"type": e.type, "attributes": {a.key: a.value
                                                             for a in e.attributes}}
                             for e in response.events]
    return outcome
