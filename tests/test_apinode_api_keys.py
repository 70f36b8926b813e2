"""Bearer API keys end to end: issued for a signed request, paid from an on-chain allowance."""

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request

import grpc
import httpx
import openai
import pytest
from chain_nodes import ROOT, ChainNode, funded_keys
from conftest import free_port, wait_healthy
from inference_actors import AGENT_FEE, PRICE, genesis_models
from nacl.signing import SigningKey

from apinode.config import write_home
from apinode.openai_signing import SignedRequests
from apinode.tx_sender import TxSender
from chain.auth import address
from chain.inference.key_commitments import FORFEIT_ACCOUNT
from genesis.solo import layout_solo
from genesis.template import parse_template
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import FINISHED, MsgGrantAllowance
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc

MODEL = genesis_models()[0]["id"]
CHAIN_ID = "inferchain-test"


def spawn(args: list[str], log_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log_path.open("w"),
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def participant(tmp_path_factory):
    root = tmp_path_factory.mktemp("apikeys")
    developer, operator = funded_keys(2)
    grpc_port, ml_port, http_port = free_port(), free_port(), free_port()
    home = root / "participant"
    url = f"http://127.0.0.1:{http_port}"
    write_home(home, {"chain_id": CHAIN_ID, "listen": f"127.0.0.1:{http_port}",
                      "public_url": url, "chain_grpc": f"127.0.0.1:{grpc_port}",
                      "mlnode": f"127.0.0.1:{ml_port}"}, operator.private_key_hex)
    node_key = SigningKey(bytes.fromhex((home / "node.key").read_text().strip()))
    model = genesis_models()[0]
    template = parse_template({
        "chain_id": CHAIN_ID, "validators": [{"name": "val0", "power": 10}],
        "accounts": [{"address": k.address, "coins": "1000000000000ninfer"}
                     for k in (developer, operator)],
        "models": genesis_models(),
        # In genesis: a participant registering later has no weight until its proof of compute.
        "participants": [{"address": operator.address, "url": url,
                          "node_pubkey": bytes(node_key.verify_key).hex(),
                          "models": [{"model_id": model["id"],
                                      "weights_sha256": model["weights_sha256"]}]}],
        "params": {"inference": {"expiration_blocks": 2000, "max_draw_age_blocks": 200}}})
    info = layout_solo(template, root / "chain", grpc_port=grpc_port, block_interval_ms=300)
    chain = ChainNode(info.home, grpc_port).start()
    chain.wait_height(2)
    ml = spawn(["-m", "mlnode", "serve", "--port", str(ml_port), "--max-batch", "2"],
               root / "mlnode.log")
    processes = [ml]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{ml_port}") as channel:
            wait_healthy(ml_grpc.MLNodeStub(channel), ml, root / "mlnode.log")
        api = spawn(["-m", "apinode", "serve", "--home", str(home)], root / "apinode.log")
        processes.append(api)
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                    agent = json.loads(reply.read())["address"]
                break
            except OSError:
                assert api.poll() is None and time.monotonic() < deadline, \
                    (root / "apinode.log").read_text()[-3000:]
                time.sleep(0.5)
        yield url, agent, developer, grpc_port, home
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        chain.close()


def query(grpc_port: int, name: str, request, reply_type):
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        return channel.unary_unary(f"/inference.v1.Query/{name}",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=reply_type.FromString)(request, timeout=5)


def grant(grpc_port: int, developer, agent: str, limit: int) -> None:
    async def send() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            sender = TxSender(channel, developer.private_key_hex, CHAIN_ID)
            await sender.send([MsgGrantAllowance(creator=developer.address,
                                                 transfer_agent=agent, limit=limit)])
    asyncio.run(send())
    deadline = time.monotonic() + 30
    while query(grpc_port, "Allowance", q.QueryAllowanceRequest(
            developer=developer.address, transfer_agent=agent),
            q.QueryAllowanceResponse).remaining != limit:
        assert time.monotonic() < deadline, "the allowance did not reach the chain"
        time.sleep(0.3)


def test_an_api_key_works_once_the_developer_grants_an_allowance(participant):
    url, agent, developer, grpc_port, home = participant
    signer = SignedRequests(bytes.fromhex(developer.private_key_hex), agent, CHAIN_ID)
    issued = httpx.post(f"{url}/v1/inferchain/api-keys", content=b"{}", auth=signer).json()
    assert issued["developer"] == developer.address and issued["transfer_agent"] == agent
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=issued["api_key"], max_retries=0)
    ask = {"model": MODEL, "max_tokens": 6, "temperature": 0,
           "messages": [{"role": "user", "content": "Name a color."}]}
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(**ask)
    assert err.value.status_code == 402 and "allowance" in err.value.message

    grant(grpc_port, developer, agent, 10_000_000)
    reply = client.chat.completions.create(**ask)
    assert reply.choices[0].message.content
    inference_id = reply.model_extra["inference_id"]
    deadline = time.monotonic() + 120
    while True:
        try:  # NOT_FOUND until the first of start and finish is committed
            found = query(grpc_port, "Inference", q.QueryInferenceRequest(id=inference_id),
                          q.QueryInferenceResponse).inference
            if found.status == FINISHED:
                break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
        assert time.monotonic() < deadline, "the inference was not charged"
        time.sleep(0.5)
    assert found.via_allowance and found.transfer_agent == agent
    # The chain took the start only under the agent's commitment of the request, made before
    # its draw; the start took the commitment and handed the agent its forfeit back.
    with pytest.raises(grpc.RpcError) as taken:
        query(grpc_port, "KeyRequestCommitment", q.QueryKeyRequestCommitmentRequest(
            transfer_agent=agent, inference_id=inference_id),
            q.QueryKeyRequestCommitmentResponse)
    assert taken.value.code() == grpc.StatusCode.NOT_FOUND
    assert query(grpc_port, "Account", q.QueryAccountRequest(
        address=address.encode(FORFEIT_ACCOUNT)), q.QueryAccountResponse).balance == 0
    remaining = query(grpc_port, "Allowance", q.QueryAllowanceRequest(
        developer=developer.address, transfer_agent=agent), q.QueryAllowanceResponse).remaining
    cost = (reply.usage.prompt_tokens + reply.usage.completion_tokens) * PRICE
    assert cost == found.cost and found.agent_fee == AGENT_FEE
    assert 10_000_000 - remaining == cost + AGENT_FEE

    # The same call with curl, as an OpenAI quickstart would make it.
    curl = subprocess.run(
        ["curl", "-sS", "--fail-with-body", f"{url}/v1/chat/completions",
         "-H", "Content-Type: application/json",
         "-H", f"Authorization: Bearer {issued['api_key']}", "-d", json.dumps(ask)],
        capture_output=True, text=True, timeout=120, check=True)
    answer = json.loads(curl.stdout)
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"]

    stranger = openai.OpenAI(base_url=f"{url}/v1", api_key="ick-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(**ask)

    # The API node logged every completion request, refused ones included.
    with sqlite3.connect(home / "apinode.sqlite") as db:
        rows = db.execute("SELECT http_status, status, developer, inference_id, "
                          "completion_tokens FROM request_log ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [402, 200, 200, 401]
    assert rows[1][1:] == ("ok", developer.address, inference_id,
                           reply.usage.completion_tokens)
