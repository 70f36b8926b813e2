"""Bank's gRPC queries (cosmos.bank.v1beta1.Query): one balance, all balances of an
address, supply."""

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
from chain.query import address_arg, invalid
from chain.store import KVReader


def _denom_arg(denom: str) -> str:
    if not valid_denom(denom):
        raise invalid(f"invalid denom {denom!r}")
    return denom


class BankQueries:
    def __init__(self, keeper: BankKeeper) -> None:
        self._keeper = keeper

    def balance(self, state: KVReader, req: QueryBalanceRequest) -> QueryBalanceResponse:
        denom = _denom_arg(req.denom)
        amount = self._keeper.balance(state, address_arg(req.address, "address"), denom)
        return QueryBalanceResponse(balance=Coin(denom=denom, amount=str(amount)))

    def all_balances(self, state: KVReader, req: QueryAllBalancesRequest
                     ) -> QueryAllBalancesResponse:
        found = self._keeper.balances(state, address_arg(req.address, "address"))
        return QueryAllBalancesResponse(
            balances=[Coin(denom=d, amount=str(a)) for d, a in sorted(found.items())])

    def supply_of(self, state: KVReader, req: QuerySupplyOfRequest) -> QuerySupplyOfResponse:
        denom = _denom_arg(req.denom)
        return QuerySupplyOfResponse(
            amount=Coin(denom=denom, amount=str(self._keeper.supply(state, denom))))
