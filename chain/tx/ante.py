"""Checks run before a transaction's messages, in the Cosmos SDK's order.

Size and memo, timeout height, fee (at least gas_limit × min_gas_price, paid by the first
signer into the fee collector), then for each signer: account exists, public key matches the
address, sequence equals the account's, signature over the SignDoc verifies; then sequences
increase. Simulation skips what a client cannot know yet (the fee and the signature's
validity) but still charges the gas for it, so its estimate covers the real run; a simulated tx
that carries no fee is charged a nominal fee's transfer for the same reason.
"""

import hashlib
import math
from decimal import Decimal

from cosmpy.protos.cosmos.auth.v1beta1.auth_pb2 import BaseAccount
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import SignDoc

from chain.auth import address
from chain.auth.keeper import AuthKeeper
from chain.bank import coins
from chain.bank.coins import NATIVE_DENOM
from chain.bank.keeper import BankKeeper
from chain.context import Context
from chain.errors import (
    InsufficientFee,
    InvalidGasLimit,
    InvalidPubKey,
    MemoTooLarge,
    TxTimeoutHeight,
    TxTooLarge,
    Unauthorized,
    UnknownAddress,
    WrongSequence,
)
from chain.tx.decode import DecodedTx
from chain.tx.signature import verify

_PUBKEY_TYPE = PubKey.DESCRIPTOR.full_name

FEE_COLLECTOR = hashlib.sha256(b"fee_collector").digest()[:20]


class AnteHandler:
    def __init__(self, auth: AuthKeeper, bank: BankKeeper) -> None:
        self._auth = auth
        self._bank = bank

    def run(self, ctx: Context, tx: DecodedTx, simulate: bool) -> None:
        params = self._auth.params(ctx.kv)
        if len(tx.raw) > params.max_tx_bytes:
            raise TxTooLarge(f"tx is {len(tx.raw)} bytes; the limit is {params.max_tx_bytes}")
        ctx.gas.consume(params.tx_size_cost_per_byte * len(tx.raw), "tx size")
        if len(tx.body.memo) > params.max_memo_characters:
            raise MemoTooLarge(f"memo has {len(tx.body.memo)} characters; the limit is "
                               f"{params.max_memo_characters}")
        timeout = tx.body.timeout_height
        if timeout and ctx.block.height > timeout:
            raise TxTimeoutHeight(f"block height {ctx.block.height} is past the tx's timeout "
                                  f"height {timeout}")
        fee = coins.parse(tx.auth_info.fee.amount)
        if not simulate:
            self._check_fee(tx.gas_limit, fee, params.gas_price)
        accounts = []
        for signer in tx.signers:
            raw = address.decode(signer.address)
            account = self._auth.get_account(ctx.kv, raw)
            if account is None:
                raise UnknownAddress(f"account {signer.address} does not exist")
            accounts.append((raw, account))
        if fee:
            self._bank.send(ctx, accounts[0][0], FEE_COLLECTOR, fee)
        elif simulate:
            self._count_fee_transfer(ctx, accounts[0][0])
        for signer, (raw, account) in zip(tx.signers, accounts, strict=True):
            pubkey = self._pubkey(signer.pubkey, account, signer.address, raw)
            if signer.sequence != account.sequence:
                raise WrongSequence(f"account sequence mismatch, expected {account.sequence}, "
                                    f"got {signer.sequence}")
            ctx.gas.consume(params.sig_verify_cost_secp256k1, "signature verification")
            sign_doc = SignDoc(body_bytes=tx.body_bytes, auth_info_bytes=tx.auth_info_bytes,
                               chain_id=ctx.block.chain_id,
                               account_number=account.account_number)
            if not simulate and not verify(pubkey, sign_doc.SerializeToString(),
                                           signer.signature):
                raise Unauthorized(
                    f"signature verification failed; please verify account number "
                    f"({account.account_number}) and chain-id ({ctx.block.chain_id})")
            account.sequence += 1
            if not account.HasField("pub_key"):
                self._auth.set_pubkey(ctx.kv, raw, account, pubkey)
            else:
                self._auth.set_account(ctx.kv, raw, account)

    def _count_fee_transfer(self, ctx: Context, payer: bytes) -> None:
        """Charges a simulation without a fee (cosmpy simulates with none) the gas of the fee
        transfer the real tx will make, on state that simulation throws away: otherwise the
        estimate misses that transfer, about 40 % of a plain send's gas."""
        if self._bank.balance(ctx.kv, payer, NATIVE_DENOM) >= 1:
            self._bank.send(ctx, payer, FEE_COLLECTOR, {NATIVE_DENOM: 1})

    @staticmethod
    def _check_fee(gas_limit: int, fee: dict[str, int], gas_price: Decimal) -> None:
        if gas_limit <= 0:
            raise InvalidGasLimit("gas limit must be positive")
        required = math.ceil(gas_limit * gas_price)
        paid = fee.get(NATIVE_DENOM, 0)
        if paid < required:
            raise InsufficientFee(f"insufficient fee; got: {paid}{NATIVE_DENOM} required: "
                                  f"{required}{NATIVE_DENOM}")

    @staticmethod
    def _pubkey(given: bytes | None, account: BaseAccount, signer: str, raw: bytes) -> bytes:
        """The signer's key: set on first use from the tx, fixed after that."""
        stored = None
        if account.HasField("pub_key"):
            # What Any.Unpack does, without its pure-Python descriptor lookups at every tx.
            key = PubKey()
            if account.pub_key.type_url.rpartition("/")[2] == _PUBKEY_TYPE:
                key.ParseFromString(account.pub_key.value)
            stored = key.key
        pubkey = given or stored
        if pubkey is None:
            raise InvalidPubKey(f"no public key for {signer}: the first tx must carry it")
        if stored is not None and given is not None and given != stored:
            raise InvalidPubKey(f"public key does not match the one on record for {signer}")
        if address.from_pubkey(pubkey) != raw:
            raise InvalidPubKey(f"public key does not belong to signer {signer}")
        return pubkey
