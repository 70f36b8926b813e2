"""The bank module: balances, transfers, supply (chain/module.py)."""

from collections.abc import Callable

from cosmpy.protos.cosmos.bank.v1beta1 import query_pb2
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend

from chain.bank import genesis
from chain.bank.keeper import BankKeeper
from chain.bank.msg_server import BankMsgServer
from chain.bank.query import BankQueries
from chain.gas import GasKV
from chain.module import Module, Msg, Query, service_queries
from chain.store import KVReader


class BankModule(Module):
    name = "bank"
    keeper: BankKeeper

    def __init__(self, keeper: BankKeeper) -> None:
        super().__init__(keeper)
        self._msgs = BankMsgServer(keeper)
        self._queries = BankQueries(keeper)

    def messages(self) -> list[Msg]:
        return [Msg(MsgSend, "from_address", self._msgs.send)]

    def queries(self, latest_height: Callable[[], int]) -> list[Query]:
        return service_queries(query_pb2.DESCRIPTOR.services_by_name["Query"], {
            "Balance": self._queries.balance,
            "AllBalances": self._queries.all_balances,
            "SupplyOf": self._queries.supply_of,
        })

    def init_genesis(self, kv: GasKV, section: dict) -> None:
        genesis.init_genesis(self.keeper, kv, section)

    def export_genesis(self, state: KVReader) -> dict:
        return genesis.export_genesis(self.keeper, state)
