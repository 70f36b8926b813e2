"""Bank's gRPC queries: one balance, all balances of an address, supply."""

from cosmpy.protos.cosmos.bank.v1beta1.query_pb2 import (
    QueryAllBalancesRequest,
    QueryAllBalancesResponse,
    QueryBalanceRequest,
    QueryBalanceResponse,
    QuerySupplyOfRequest,
    QuerySupplyOfResponse,
)
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin

from chain.auth import address
from chain.bank.keeper import BankKeeper
from chain.errors import InvalidCoins
from chain.query import QueryRouter
from chain.store import KVReader


def register(queries: QueryRouter, keeper: BankKeeper) -> None:
    def balance(state: KVReader, req: QueryBalanceRequest) -> QueryBalanceResponse:
        if not req.denom:
            raise InvalidCoins("denom is empty")
        amount = keeper.balance(state, address.decode(req.address), req.denom)
        return QueryBalanceResponse(balance=Coin(denom=req.denom, amount=str(amount)))

    def all_balances(state: KVReader, req: QueryAllBalancesRequest) -> QueryAllBalancesResponse:
        found = keeper.balances(state, address.decode(req.address))
        return QueryAllBalancesResponse(
            balances=[Coin(denom=d, amount=str(a)) for d, a in sorted(found.items())])

    def supply_of(state: KVReader, req: QuerySupplyOfRequest) -> QuerySupplyOfResponse:
        return QuerySupplyOfResponse(
            amount=Coin(denom=req.denom, amount=str(keeper.supply(state, req.denom))))

    queries.register("/cosmos.bank.v1beta1.Query/Balance", QueryBalanceRequest,
                     QueryBalanceResponse, balance)
    queries.register("/cosmos.bank.v1beta1.Query/AllBalances", QueryAllBalancesRequest,
                     QueryAllBalancesResponse, all_balances)
    queries.register("/cosmos.bank.v1beta1.Query/SupplyOf", QuerySupplyOfRequest,
                     QuerySupplyOfResponse, supply_of)
