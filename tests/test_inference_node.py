"""The inference lifecycle on a real solo node: transactions and queries over gRPC."""

import time

import grpc
import pytest
from chain_client import broadcast_raw, ledger
from chain_nodes import ChainNode, funded_keys, template
from conftest import free_port
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.tx.v1beta1 import service_pb2 as tx_service
from inference_actors import (
    MODEL_ID,
    PRICE,
    Actor,
    finish_msg,
    genesis_models,
    request_id,
    start_msg,
)
from nacl.signing import SigningKey

from chain.auth import address
from chain.inference.keeper import ESCROW_ACCOUNT
from genesis.solo import layout_solo
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import FINISHED


def query(channel: grpc.Channel, name: str, request, response_type):
    call = channel.unary_unary(f"/inference.v1.Query/{name}",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_type.FromString)
    return call(request, timeout=5)


def request_draw(channel: grpc.Channel, inference_id: str,
                 timestamp: int) -> q.QueryDrawResponse:
    """The draw of a request stamped ``timestamp``, once the chain has its draw block."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return query(channel, "Draw", q.QueryDrawRequest(
                inference_id=inference_id, model_id=MODEL_ID, request_timestamp=timestamp),
                q.QueryDrawResponse)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    keys = funded_keys(4)
    port = free_port()
    info = layout_solo(template(keys, models=genesis_models()),
                       tmp_path_factory.mktemp("inference") / "home", grpc_port=port,
                       block_interval_ms=200)
    chain = ChainNode(info.home, port).start()
    chain.wait_height(2)
    actors = []
    for number, key in enumerate(keys):
        wallet = LocalWallet(PrivateKey(bytes.fromhex(key.private_key_hex)), prefix="infer")
        actors.append(Actor(wallet, SigningKey.generate(), account_number=number))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield chain, ledger(port), channel, actors
    channel.close()
    chain.close()


def committed(client, raw: bytes) -> None:
    code, log, tx_hash = broadcast_raw(client, raw)
    assert code == 0, log
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            reply = client.txs.GetTx(tx_service.GetTxRequest(hash=tx_hash))
        except grpc.RpcError:
            time.sleep(0.2)
            continue
        assert reply.tx_response.code == 0, reply.tx_response.raw_log
        return
    raise TimeoutError(tx_hash)


def test_register_start_finish_and_query_over_grpc(node):
    chain, client, channel, (developer, *parts) = node
    for i, part in enumerate(parts):
        committed(client, part.tx(part.register(f"http://127.0.0.1:{7000 + i}")))
    listed = query(channel, "Participants", q.QueryParticipantsRequest(),
                   q.QueryParticipantsResponse)
    assert {p.address for p in listed.participants} == {p.address for p in parts}
    now = int(time.time()) + 1  # whole seconds: a block from this second predates the parts
    for agent in parts:  # one that is not its own executor, where the draws allow
        draw = request_draw(channel, request_id(agent, developer, "node-1", now), now)
        if draw.order[0] != agent.address:
            break
    executor = next(p for p in parts if p.address == draw.order[0])
    start = start_msg(agent, developer, "node-1", executor.address, draw.draw_height, now,
                      [10, 11, 12], max_tokens=8)
    before = query(channel, "Account", q.QueryAccountRequest(address=developer.address),
                   q.QueryAccountResponse)
    committed(client, agent.tx(start))
    committed(client, executor.tx(finish_msg(executor, start, [5, 6])))
    found = query(channel, "Inference", q.QueryInferenceRequest(id=start.inference_id),
                  q.QueryInferenceResponse).inference
    assert (found.status, found.executor, found.cost) == (FINISHED, executor.address,
                                                          5 * PRICE)
    after = query(channel, "Account", q.QueryAccountRequest(address=developer.address),
                  q.QueryAccountResponse)
    assert before.balance - after.balance == 5 * PRICE and after.escrow == 0
    earned = query(channel, "Account", q.QueryAccountRequest(address=executor.address),
                   q.QueryAccountResponse)
    assert earned.work_balance == 5 * PRICE
    escrow_account = address.encode(ESCROW_ACCOUNT)
    assert client.query_bank_balance(escrow_account, "ninfer") == 5 * PRICE
