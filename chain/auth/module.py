"""The auth module: accounts, their numbers, sequences and public keys (chain/module.py)."""

from collections.abc import Callable

from cosmpy.protos.cosmos.auth.v1beta1 import query_pb2

from chain.auth import genesis
from chain.auth.keeper import AuthKeeper
from chain.auth.query import AuthQueries
from chain.gas import GasKV
from chain.module import Module, Query, service_queries
from chain.store import KVReader


class AuthModule(Module):
    name = "auth"
    keeper: AuthKeeper

    def __init__(self, keeper: AuthKeeper) -> None:
        super().__init__(keeper)
        self._queries = AuthQueries(keeper)

    def queries(self, latest_height: Callable[[], int]) -> list[Query]:
        return service_queries(query_pb2.DESCRIPTOR.services_by_name["Query"], {
            "Account": self._queries.account,
            "Params": self._queries.params,
        })

    def init_genesis(self, kv: GasKV, section: dict) -> None:
        genesis.init_genesis(self.keeper, kv, section)

    def export_genesis(self, state: KVReader) -> dict:
        return genesis.export_genesis(self.keeper, state)
