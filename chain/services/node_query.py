"""Queries about the node and chain rather than a module: blocks, consensus params, status.

Block data comes from what the app recorded at its last Commit, so solo and CometBFT nodes
answer the same way without asking CometBFT.
"""

from cosmpy.protos.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from cosmpy.protos.cosmos.consensus.v1 import query_pb2 as consensus_query
from cosmpy.protos.tendermint.p2p.types_pb2 import DefaultNodeInfo
from cosmpy.protos.tendermint.types.block_pb2 import Block
from cosmpy.protos.tendermint.types.params_pb2 import BlockParams, ConsensusParams
from cosmpy.protos.tendermint.types.types_pb2 import Data, Header
from google.protobuf.timestamp_pb2 import Timestamp

from chain.app import APP_NAME, Application
from chain.query import QueryRouter
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2 as inference_query

# CometBFT's defaults, which genesis/ writes; max_gas -1 means no block gas limit.
BLOCK_MAX_BYTES = 22020096
BLOCK_MAX_GAS = -1


def register(queries: QueryRouter, app: Application, moniker: str) -> None:
    def latest_block(state: KVReader, req: tm_query.GetLatestBlockRequest
                     ) -> tm_query.GetLatestBlockResponse:
        last = app.last_block
        seconds, nanos = divmod(last.get("time_ns", 0), 1_000_000_000)
        header = Header(chain_id=app.chain_id, height=last.get("height", 0),
                        time=Timestamp(seconds=seconds, nanos=nanos),
                        app_hash=bytes.fromhex(last.get("app_hash", "")),
                        proposer_address=bytes.fromhex(last.get("proposer", "")))
        block = Block(header=header,
                      data=Data(txs=[bytes.fromhex(t) for t in last.get("txs", [])]))
        response = tm_query.GetLatestBlockResponse(block=block)
        response.block_id.hash = bytes.fromhex(last.get("hash", ""))
        return response

    def node_info(state: KVReader, req: tm_query.GetNodeInfoRequest
                  ) -> tm_query.GetNodeInfoResponse:
        response = tm_query.GetNodeInfoResponse(
            default_node_info=DefaultNodeInfo(network=app.chain_id, moniker=moniker,
                                              version="0.38"))
        response.application_version.name = APP_NAME
        response.application_version.app_name = APP_NAME
        response.application_version.version = "0.1.0"
        return response

    def consensus_params(state: KVReader, req: consensus_query.QueryParamsRequest
                         ) -> consensus_query.QueryParamsResponse:
        return consensus_query.QueryParamsResponse(params=ConsensusParams(
            block=BlockParams(max_bytes=BLOCK_MAX_BYTES, max_gas=BLOCK_MAX_GAS)))

    def status(state: KVReader, req: inference_query.QueryStatusRequest
               ) -> inference_query.QueryStatusResponse:
        return inference_query.QueryStatusResponse(
            chain_id=app.chain_id, height=app.store.height, app_hash=app.store.app_hash,
            modules=app.modules.manager.names, block_time_unix_ns=app.last_block.get("time_ns", 0))

    queries.register("/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock",
                     tm_query.GetLatestBlockRequest, tm_query.GetLatestBlockResponse,
                     latest_block)
    queries.register("/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo",
                     tm_query.GetNodeInfoRequest, tm_query.GetNodeInfoResponse, node_info)
    queries.register("/cosmos.consensus.v1.Query/Params", consensus_query.QueryParamsRequest,
                     consensus_query.QueryParamsResponse, consensus_params)
    queries.register("/inference.v1.Query/Status", inference_query.QueryStatusRequest,
                     inference_query.QueryStatusResponse, status)
