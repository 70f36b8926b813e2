"""The inference lifecycle on a real solo node: transactions and queries over gRPC."""

import dataclasses
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
    AGENT_FEE,
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
from chain.epochs.params import EpochsParams
from chain.inference.keeper import ESCROW_ACCOUNT
from genesis.solo import layout_solo
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.epochs_pb2 import MsgSubmitPoc, PocNonce
from inferchain_pb.inference.v1.inference_pb2 import FINISHED
from mlnode.poc import PocModel, compute, poc_seed
from mlnode.types import PocModelSpec

# Epochs of 32 s at 200 ms blocks, 30 s of them for proof of compute (room for a loaded
# machine): a participant that registers in epoch 0 proves its compute in epoch 0's window
# and has weight from epoch 1 on.
EPOCHS = EpochsParams(epoch_length_blocks=160, poc_window_blocks=150,
                      poc_validation_window_blocks=1)
POC_TRIES = 300  # about 7 nonces under the target


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
    spec = dataclasses.replace(template(keys, models=genesis_models()), params={"epochs": {
        "epoch_length_blocks": EPOCHS.epoch_length_blocks,
        "poc_window_blocks": EPOCHS.poc_window_blocks,
        "poc_validation_window_blocks": EPOCHS.poc_validation_window_blocks}})
    info = layout_solo(spec, tmp_path_factory.mktemp("inference") / "home", grpc_port=port,
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


def current_epoch(channel: grpc.Channel):
    return query(channel, "Epoch", q.QueryEpochRequest(), q.QueryEpochResponse).current


def prove(channel: grpc.Channel, client, part: Actor) -> None:
    """The participant passes a proof-of-compute epoch, as its API node would: real nonces in
    epoch 0's PoC window (the chain has no members yet to check them, so they are accepted),
    and weight from the next boundary."""
    epoch = current_epoch(channel)
    assert epoch.number == 0 and epoch.poc_block_hash, epoch
    spec = PocModelSpec(hidden=EPOCHS.poc_hidden, layers=EPOCHS.poc_layers,
                        heads=EPOCHS.poc_heads, ffn=EPOCHS.poc_ffn, seq_len=EPOCHS.poc_seq_len)
    model = PocModel(spec, poc_seed(epoch.poc_block_hash, part.address))
    nonces = [PocNonce(nonce=n.nonce, distance=n.distance) for n in compute(
        model, range(POC_TRIES), EPOCHS.poc_target_distance_micro / 1e6)]
    committed(client, part.tx(MsgSubmitPoc(creator=part.address, epoch=0, nonces=nonces)))
    deadline = time.monotonic() + 120
    while current_epoch(channel).number == 0:
        assert time.monotonic() < deadline, "epoch 1 did not begin"
        time.sleep(0.2)


def test_register_start_finish_and_query_over_grpc(node):
    chain, client, channel, (developer, *parts) = node
    for i, part in enumerate(parts):
        committed(client, part.tx(part.register(f"http://127.0.0.1:{7000 + i}")))
    prove(channel, client, parts[0])  # the others act as transfer agents only
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
    assert before.balance - after.balance == 5 * PRICE + AGENT_FEE and after.escrow == 0
    earned = query(channel, "Account", q.QueryAccountRequest(address=executor.address),
                   q.QueryAccountResponse)
    assert earned.work_balance == 5 * PRICE
    escrow_account = address.encode(ESCROW_ACCOUNT)
    assert client.query_bank_balance(escrow_account, "ninfer") == 5 * PRICE
