"""Read-only queries by gRPC method path, served to gRPC clients and to ABCI Query alike.

A module registers its query methods here (its ``query.py``); the gRPC server and the ABCI
``Query`` call both look them up by the same path, e.g. "/cosmos.bank.v1beta1.Query/Balance".
Queries read the latest committed state, never a block in progress.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.message import DecodeError, Message

from chain.errors import ChainError
from chain.store import KVReader

if TYPE_CHECKING:
    from chain.app import Application


class QueryError(Exception):
    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class QueryMethod:
    request_type: type[Message]
    response_type: type[Message]
    handle: Callable[[KVReader, Message], Message]


class QueryRouter:
    def __init__(self, app: "Application") -> None:
        self._app = app
        self.methods: dict[str, QueryMethod] = {}

    def register(self, path: str, request_type: type[Message], response_type: type[Message],
                 handle: Callable[[KVReader, Message], Message]) -> None:
        if path in self.methods:
            raise ValueError(f"query {path} is registered twice")
        self.methods[path] = QueryMethod(request_type, response_type, handle)

    def call(self, path: str, request: Message) -> Message:
        method = self.methods[path]
        try:
            return method.handle(self._app.store.begin_block(), request)
        except ChainError as exc:
            raise QueryError(grpc.StatusCode.INVALID_ARGUMENT, exc.message) from exc

    def abci_query(self, req: abci.RequestQuery) -> abci.ResponseQuery:
        height = self._app.store.height
        method = self.methods.get(req.path)
        if method is None:
            return abci.ResponseQuery(code=6, codespace="sdk", height=height,
                                      log=f"unknown query path {req.path}")
        request = method.request_type()
        try:
            request.ParseFromString(req.data)
            response = self.call(req.path, request)
        except DecodeError as exc:
            return abci.ResponseQuery(code=2, codespace="sdk", height=height,
                                      log=f"cannot decode request: {exc}")
        except QueryError as exc:
            return abci.ResponseQuery(code=38 if exc.status == grpc.StatusCode.NOT_FOUND
                                      else 18, codespace="sdk", height=height, log=exc.message)
        return abci.ResponseQuery(value=response.SerializeToString(), height=height)
