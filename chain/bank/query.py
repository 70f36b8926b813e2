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

from chain.bank.coins import valid_denom
from chain.bank.keeper import BankKeeper
from chain.query import QueryRouter, address_arg, invalid
from chain.store import KVReader


def _denom_arg(denom: str) -> str:
    if not valid_denom(denom):
        raise invalid(f"invalid denom {denom!r}")
    return denom


def register(queries: QueryRouter, keeper: BankKeeper) -> None:
    def balance(state: KVReader, req: QueryBalanceRequest) -> QueryBalanceResponse:
        denom = _denom_arg(req.denom)
        amount = keeper.balance(state, address_arg(req.address, "address"), denom)
        return QueryBalanceResponse(balance=Coin(denom=denom, amount=str(amount)))

    def all_balances(state: KVReader, req: QueryAllBalancesRequest) -> QueryAllBalancesResponse:
        found = keeper.balances(state, address_arg(req.address, "address"))
        return QueryAllBalancesResponse(
            balances=[Coin(denom=d, amount=str(a)) for d, a in sorted(found.items())])

    def supply_of(state: KVReader, req: QuerySupplyOfRequest) -> QuerySupplyOfResponse:
        denom = _denom_arg(req.denom)
        return QuerySupplyOfResponse(
            amount=Coin(denom=denom, amount=str(keeper.supply(state, denom))))

    queries.register("/cosmos.bank.v1beta1.Query/Balance", QueryBalanceRequest,
                     QueryBalanceResponse, balance)
    queries.register("/cosmos.bank.v1beta1.Query/AllBalances", QueryAllBalancesRequest,
                     QueryAllBalancesResponse, all_balances)
    queries.register("/cosmos.bank.v1beta1.Query/SupplyOf", QuerySupplyOfRequest,
                     QuerySupplyOfResponse, supply_of)
