"""cosmos.tx.v1beta1.Service: Simulate, BroadcastTx and GetTx, as cosmpy calls them.

cosmpy sends a ``Tx`` where the SDK expects ``TxRaw``; both serialize to the same bytes, so
whatever arrives is re-read as raw bytes and verified over exactly those bytes.

Simulations share the event loop with ABCI and block production. Each is bounded by the node's
simulation gas limit, and they run one at a time, each after a turn of the loop: however many
arrive, consensus requests that are waiting are served between two of them.

Simulate is also an ABCI query path, as in the Cosmos SDK: CometBFT-RPC clients (cosmjs's
``SigningStargateClient.simulate``) estimate gas with ``abci_query`` on
"/cosmos.tx.v1beta1.Service/Simulate". Both answer through ``simulation``.
"""

import asyncio

import grpc
from cosmpy.protos.cosmos.base.abci.v1beta1.abci_pb2 import GasInfo, Result, TxResponse
from cosmpy.protos.cosmos.tx.v1beta1 import service_pb2 as tx_service
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import Tx

from chain.app import Application, abci_events
from chain.query import QueryError, QueryRouter, invalid
from chain.services.broadcast import Broadcaster, BroadcastUnavailable
from chain.store import KVReader
from chain.tx.decode import tx_hash

SERVICE = "cosmos.tx.v1beta1.Service"
SIMULATE_PATH = f"/{SERVICE}/Simulate"


def simulation(app: Application, req: tx_service.SimulateRequest
               ) -> tx_service.SimulateResponse:
    """The tx's gas and events as the mempool's state would run it; QueryError when it fails."""
    raw = req.tx_bytes or (req.tx.SerializeToString() if req.HasField("tx") else b"")
    if not raw:
        raise invalid("empty tx")
    outcome = app.simulate(raw)
    if not outcome.ok:
        raise invalid(f"simulation failed (code {outcome.code}, codespace "
                      f"{outcome.codespace}): {outcome.log}")
    return tx_service.SimulateResponse(
        gas_info=GasInfo(gas_wanted=outcome.gas_wanted, gas_used=outcome.gas_used),
        result=Result(events=abci_events(outcome.events)))


def register_abci_simulate(queries: QueryRouter, app: Application) -> None:
    """Answers Simulate through ABCI Query; gRPC clients get TxService's own, which takes its
    turn among the other requests on the event loop."""
    def simulate(state: KVReader, req: tx_service.SimulateRequest
                 ) -> tx_service.SimulateResponse:
        return simulation(app, req)

    queries.register(SIMULATE_PATH, tx_service.SimulateRequest, tx_service.SimulateResponse,
                     simulate)


class TxService:
    def __init__(self, app: Application, broadcaster: Broadcaster) -> None:
        self._app = app
        self._broadcaster = broadcaster
        self._simulating = asyncio.Lock()

    async def simulate(self, req: tx_service.SimulateRequest,
                       context: grpc.aio.ServicerContext) -> tx_service.SimulateResponse:
        async with self._simulating:
            await asyncio.sleep(0)
            try:
                return simulation(self._app, req)
            except QueryError as exc:
                await context.abort(exc.status, exc.message)

    async def broadcast_tx(self, req: tx_service.BroadcastTxRequest,
                           context: grpc.aio.ServicerContext) -> tx_service.BroadcastTxResponse:
        if req.mode not in (tx_service.BROADCAST_MODE_SYNC, tx_service.BROADCAST_MODE_ASYNC):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "only BROADCAST_MODE_SYNC and BROADCAST_MODE_ASYNC are supported")
        if not req.tx_bytes:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty tx")
        try:
            admission = await self._broadcaster.broadcast(req.tx_bytes)
        except BroadcastUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return tx_service.BroadcastTxResponse(tx_response=TxResponse(
            txhash=tx_hash(req.tx_bytes).hex().upper(), code=admission.code,
            codespace=admission.codespace, raw_log=admission.log,
            gas_wanted=admission.gas_wanted, gas_used=admission.gas_used))

    async def get_tx(self, req: tx_service.GetTxRequest,
                     context: grpc.aio.ServicerContext) -> tx_service.GetTxResponse:
        found = self._app.committed_tx(req.hash)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"tx not found: {req.hash}")
        tx = Tx()
        found.tx.Unpack(tx)
        return tx_service.GetTxResponse(tx=tx, tx_response=found)

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(fn: object, request_type: type) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=request_type.FromString,
                response_serializer=lambda m: m.SerializeToString())

        return grpc.method_handlers_generic_handler(SERVICE, {
            "Simulate": unary(self.simulate, tx_service.SimulateRequest),
            "BroadcastTx": unary(self.broadcast_tx, tx_service.BroadcastTxRequest),
            "GetTx": unary(self.get_tx, tx_service.GetTxRequest),
        })
