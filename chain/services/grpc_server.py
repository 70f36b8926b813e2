"""The node's gRPC server: every registered query, the tx service, on one port."""

import logging
from collections import defaultdict

import grpc
from google.protobuf.message import DecodeError, Message

from chain.query import HEIGHT_HEADER, QueryError, QueryRouter
from chain.services.tx_service import SERVICE as TX_SERVICE
from chain.services.tx_service import TxService

log = logging.getLogger(__name__)


def query_handlers(queries: QueryRouter) -> list[grpc.GenericRpcHandler]:
    """One generic handler per gRPC service named in the query paths, but the tx service's:
    TxService serves it (its Simulate is also a query path, for ABCI Query's sake).

    Requests arrive as bytes and are decoded here, so undecodable ones are answered
    INVALID_ARGUMENT as ABCI Query answers them, rather than gRPC's generic INTERNAL.
    """
    services: dict[str, dict[str, grpc.RpcMethodHandler]] = defaultdict(dict)
    for path, method in queries.methods.items():
        service, name = path.lstrip("/").split("/")
        if service == TX_SERVICE:
            continue

        async def call(data: bytes, context: grpc.aio.ServicerContext, path: str = path,
                       request_type: type[Message] = method.request_type) -> Message:
            try:
                request = request_type.FromString(data)
            except (DecodeError, RecursionError) as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"cannot decode request: {exc}")
            named = dict(context.invocation_metadata() or ()).get(HEIGHT_HEADER, "0")
            if not (named.isascii() and named.isdigit()) or len(named) > 19:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"{HEIGHT_HEADER} {named[:40]!r} is not a block height")
            try:
                return queries.call(path, request, int(named))
            except QueryError as exc:
                await context.abort(exc.status, exc.message)

        services[service][name] = grpc.unary_unary_rpc_method_handler(
            call, response_serializer=lambda m: m.SerializeToString())
    return [grpc.method_handlers_generic_handler(s, m) for s, m in services.items()]


async def start_grpc(listen: str, queries: QueryRouter, txs: TxService) -> grpc.aio.Server:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([*query_handlers(queries), txs.handler()])
    if not server.add_insecure_port(listen):
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    log.info("Cosmos gRPC listening on %s", listen)
    return server
