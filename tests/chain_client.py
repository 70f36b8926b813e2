"""Test-side helpers for the chain: signed transactions built with cosmpy, sent raw.

cosmpy's own helpers always build valid transactions; these let a test build the invalid
ones too (wrong chain id, account number, sequence, fee, signer, or a tampered signature).
"""

from dataclasses import dataclass

from cosmpy.aerial.client import LedgerClient, NetworkConfig
from cosmpy.aerial.tx import SigningCfg, Transaction, TxFee
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from cosmpy.protos.cosmos.tx.v1beta1 import service_pb2 as tx_service
from google.protobuf.message import Message

CHAIN_ID = "inferchain-test"
GAS_PRICE = 0.01


def ledger(grpc_port: int) -> LedgerClient:
    return LedgerClient(NetworkConfig(
        chain_id=CHAIN_ID, url=f"grpc+http://127.0.0.1:{grpc_port}",
        fee_minimum_gas_price=GAS_PRICE, fee_denomination="ninfer",
        staking_denomination="ninfer"))


def send_msg(sender: str, recipient: str, amount: int) -> MsgSend:
    return MsgSend(from_address=sender, to_address=recipient,
                   amount=[Coin(denom="ninfer", amount=str(amount))])


@dataclass
class TxSpec:
    """Everything that goes into a signed tx; tests override one field to make it bad."""

    messages: list[Message]
    sequence: int
    account_number: int
    chain_id: str = CHAIN_ID
    gas_limit: int = 200_000
    fee: int = 2_000


def signed_tx(wallet: LocalWallet, spec: TxSpec) -> Transaction:
    tx = Transaction()
    for message in spec.messages:
        tx.add_message(message)
    tx.seal(SigningCfg.direct(wallet.public_key(), spec.sequence),
            fee=TxFee(amount=f"{spec.fee}ninfer", gas_limit=spec.gas_limit))
    tx.sign(wallet.signer(), spec.chain_id, spec.account_number)
    return tx.complete()


def broadcast_raw(client: LedgerClient, raw: bytes) -> tuple[int, str, str]:
    """(code, raw_log, txhash) of BroadcastTx in sync mode: the mempool's verdict."""
    reply = client.txs.BroadcastTx(tx_service.BroadcastTxRequest(
        tx_bytes=raw, mode=tx_service.BROADCAST_MODE_SYNC))
    return reply.tx_response.code, reply.tx_response.raw_log, reply.tx_response.txhash
