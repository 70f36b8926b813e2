"""Auth's gRPC queries: accounts as BaseAccount, exactly as Cosmos clients expect them."""

import grpc
from cosmpy.protos.cosmos.auth.v1beta1.query_pb2 import (
    QueryAccountRequest,
    QueryAccountResponse,
    QueryParamsRequest,
    QueryParamsResponse,
)
from google.protobuf.any_pb2 import Any as AnyPb

from chain.auth.keeper import AuthKeeper
from chain.query import QueryError, QueryRouter, address_arg
from chain.store import KVReader


def register(queries: QueryRouter, keeper: AuthKeeper) -> None:
    def account(state: KVReader, req: QueryAccountRequest) -> QueryAccountResponse:
        found = keeper.get_account(state, address_arg(req.address, "address"))
        if found is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND, f"account {req.address} not found")
        packed = AnyPb()
        packed.Pack(found, type_url_prefix="/")
        return QueryAccountResponse(account=packed)

    def params(state: KVReader, req: QueryParamsRequest) -> QueryParamsResponse:
        p = keeper.params(state)
        response = QueryParamsResponse()
        response.params.max_memo_characters = p.max_memo_characters
        response.params.tx_sig_limit = p.tx_sig_limit
        response.params.tx_size_cost_per_byte = p.tx_size_cost_per_byte
        response.params.sig_verify_cost_secp256k1 = p.sig_verify_cost_secp256k1
        return response

    queries.register("/cosmos.auth.v1beta1.Query/Account", QueryAccountRequest,
                     QueryAccountResponse, account)
    queries.register("/cosmos.auth.v1beta1.Query/Params", QueryParamsRequest,
                     QueryParamsResponse, params)
