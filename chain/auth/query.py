"""Auth's gRPC queries (cosmos.auth.v1beta1.Query): accounts as BaseAccount, exactly as
Cosmos clients expect them."""

import grpc
from cosmpy.protos.cosmos.auth.v1beta1.query_pb2 import (
    QueryAccountRequest,
    QueryAccountResponse,
    QueryParamsRequest,
    QueryParamsResponse,
)
from google.protobuf.any_pb2 import Any as AnyPb

from chain.auth.keeper import AuthKeeper
from chain.query import QueryError, address_arg
from chain.store import KVReader


class AuthQueries:
    def __init__(self, keeper: AuthKeeper) -> None:
        self._keeper = keeper

    def account(self, state: KVReader, req: QueryAccountRequest) -> QueryAccountResponse:
        found = self._keeper.get_account(state, address_arg(req.address, "address"))
        if found is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND, f"account {req.address} not found")
        packed = AnyPb()
        packed.Pack(found, type_url_prefix="/")
        return QueryAccountResponse(account=packed)

    def params(self, state: KVReader, req: QueryParamsRequest) -> QueryParamsResponse:
        p = self._keeper.params(state)
        response = QueryParamsResponse()
        response.params.max_memo_characters = p.max_memo_characters
        response.params.tx_sig_limit = p.tx_sig_limit
        response.params.tx_size_cost_per_byte = p.tx_size_cost_per_byte
        response.params.sig_verify_cost_secp256k1 = p.sig_verify_cost_secp256k1
        return response
