"""The chain node as the client sees it: gRPC calls by method path, with the protobuf classes
the chain itself registers (chain/*/module.py ``service_queries``), so no stubs are needed."""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from types import TracebackType
from typing import TypeVar

import grpc
from cosmpy.protos.cosmos.auth.v1beta1 import query_pb2 as auth_query
from cosmpy.protos.cosmos.auth.v1beta1.auth_pb2 import BaseAccount
from google.protobuf.message import Message

from chain.gov import cli as gov_cli
from client.errors import CliError, from_rpc
from inferchain_pb.inference.v1 import query_pb2 as q

INFERENCE = "/inference.v1.Query/"
AUTH_ACCOUNT = "/cosmos.auth.v1beta1.Query/Account"
TIMEOUT_S = 10.0

Reply = TypeVar("Reply", bound=Message)


class Node:
    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.channel.close()

    def call(self, path: str, request: Message, reply_type: type[Reply],
             not_found: str = "") -> Reply:
        """The node's reply; ``not_found``, when given, is what a NOT_FOUND answer means."""
        method = self.channel.unary_unary(path, request_serializer=_serialize,
                                          response_deserializer=reply_type.FromString)
        try:
            return method(request, timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            if not_found and exc.code() == grpc.StatusCode.NOT_FOUND:
                raise CliError(not_found) from exc
            raise from_rpc(exc, self.address) from exc

    def inference(self, name: str, request: Message, reply_type: type[Reply],
                  not_found: str = "") -> Reply:
        """A call to the chain's own query service (proto/inference/v1/query.proto)."""
        return self.call(INFERENCE + name, request, reply_type, not_found)

    def status(self) -> q.QueryStatusResponse:
        return self.inference("Status", q.QueryStatusRequest(), q.QueryStatusResponse)

    def gov(self) -> gov_cli.Node:
        """The gov command line's reader (chain/gov/cli.py) on this node's channel; its calls
        raise grpc.RpcError, which ``rpc_errors`` words."""
        return gov_cli.Node(self.channel)

    def params(self, module: str) -> dict:
        with self.rpc_errors():
            return self.gov().params([module])[module]

    @contextmanager
    def rpc_errors(self) -> Iterator[None]:
        try:
            yield
        except grpc.RpcError as exc:
            raise from_rpc(exc, self.address) from exc

    def min_gas_price(self) -> Decimal:
        """ninfer per unit of gas below which the chain refuses a fee (auth params)."""
        return Decimal(self.params("auth")["min_gas_price"])

    def account(self, address: str) -> BaseAccount:
        """The signer's account number and sequence; an account exists once it was funded."""
        reply = self.call(AUTH_ACCOUNT, auth_query.QueryAccountRequest(address=address),
                          auth_query.QueryAccountResponse,
                          not_found=f"account {address} does not exist on chain: it must "
                                    f"receive funds before it can sign transactions")
        account = BaseAccount()
        reply.account.Unpack(account)
        return account

    def check_chain_id(self, wanted: str) -> str:
        """The node's chain id, refused when the client expects another chain."""
        chain_id = self.status().chain_id
        if wanted and wanted != chain_id:
            raise CliError(f"the node at {self.address} runs chain {chain_id!r}, not "
                           f"{wanted!r} (--chain-id or `inferchain config set chain-id`)")
        return chain_id


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
