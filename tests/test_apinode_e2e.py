"""A local network end to end: a solo chain, two participants (each an ML node and an API
node process), and a developer using the official openai client with signed requests."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import grpc
import openai
import pytest
from chain_nodes import ROOT, ChainNode, funded_keys
from conftest import free_port, wait_healthy
from inference_actors import PRICE, genesis_models

from apinode.config import write_home
from apinode.openai_signing import signed_http_client
from genesis.solo import layout_solo
from genesis.template import parse_template
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import FINISHED
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc

MODEL = genesis_models()[0]["id"]
CHAIN_ID = "inferchain-test"


def spawn(args: list[str], log, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def wait_http(url: str, process: subprocess.Popen, log_path, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return json.loads(reply.read())
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not up:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    root = tmp_path_factory.mktemp("network")
    developer, *participants = funded_keys(3)
    grpc_port = free_port()
    template = parse_template({
        "chain_id": CHAIN_ID, "validators": [{"name": "val0", "power": 10}],
        "accounts": [{"address": k.address, "coins": "1000000000000ninfer"}
                     for k in (developer, *participants)],
        "models": genesis_models(),
        # CPU generation is slow: let a lone half wait long enough for its partner.
        "params": {"inference": {"expiration_blocks": 2000, "max_draw_age_blocks": 200}},
    })
    info = layout_solo(template, root / "chain", grpc_port=grpc_port, block_interval_ms=300)
    chain = ChainNode(info.home, grpc_port).start()
    chain.wait_height(2)
    processes, urls = [], []
    try:
        for i, key in enumerate(participants):
            ml_port, http_port = free_port(), free_port()
            ml_log = root / f"mlnode{i}.log"
            ml = spawn(["-m", "mlnode", "serve", "--port", str(ml_port), "--max-batch", "4"],
                       ml_log.open("w"))
            processes.append(ml)
            with grpc.insecure_channel(f"127.0.0.1:{ml_port}") as channel:
                wait_healthy(ml_grpc.MLNodeStub(channel), ml, ml_log)
            home = root / f"participant{i}"
            url = f"http://127.0.0.1:{http_port}"
            write_home(home, {"chain_id": CHAIN_ID, "listen": f"127.0.0.1:{http_port}",
                              "public_url": url, "chain_grpc": f"127.0.0.1:{grpc_port}",
                              "mlnode": f"127.0.0.1:{ml_port}"}, key.private_key_hex)
            api_log = home / "apinode.log"
            api = spawn(["-m", "apinode", "serve", "--home", str(home)], api_log.open("w"))
            processes.append(api)
            urls.append((url, wait_http(f"{url}/health", api, api_log)["address"]))
        yield chain, urls, developer, grpc_port
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        chain.close()


def client(url: str, agent: str, developer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0,
                         http_client=signed_http_client(bytes.fromhex(developer.private_key_hex),
                                                        agent))


def on_chain(grpc_port: int, name: str, request, reply_type):
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        call = channel.unary_unary(f"/inference.v1.Query/{name}",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=reply_type.FromString)
        return call(request, timeout=5)


def finished(grpc_port: int, inference_id: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = on_chain(grpc_port, "Inference", q.QueryInferenceRequest(id=inference_id),
                             q.QueryInferenceResponse).inference
            if found.status == FINISHED:
                return found
        except grpc.RpcError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"inference {inference_id} not FINISHED on chain")


def balance(grpc_port: int, address: str) -> int:
    return on_chain(grpc_port, "Account", q.QueryAccountRequest(address=address),
                    q.QueryAccountResponse).balance


def test_chat_completion_with_logprobs_is_served_and_settled_on_chain(network):
    chain, urls, developer, grpc_port = network
    (url, agent) = urls[0]
    before = balance(grpc_port, developer.address)
    reply = client(url, agent, developer).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=12, temperature=0, logprobs=True, top_logprobs=3)
    text = reply.choices[0].message.content
    assert "Paris" in text
    tokens = reply.choices[0].logprobs.content
    assert len(tokens) == reply.usage.completion_tokens and len(tokens[0].top_logprobs) == 3
    inference = finished(grpc_port, reply.model_extra["inference_id"])
    assert inference.executor in {a for _, a in urls}
    assert inference.transfer_agent == agent
    assert len(inference.output_ids) == reply.usage.completion_tokens
    cost = (reply.usage.prompt_tokens + reply.usage.completion_tokens) * PRICE
    assert inference.cost == cost
    assert before - balance(grpc_port, developer.address) == cost


def test_streaming_through_the_other_participant(network):
    chain, urls, developer, grpc_port = network
    (url, agent) = urls[1]
    stream = client(url, agent, developer).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8,
        stream=True, stream_options={"include_usage": True}, seed=5)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage.completion_tokens >= 1
    assert chunks[-2].choices[0].finish_reason in {"stop", "length"}
    finished(grpc_port, chunks[0].model_extra["inference_id"])


def test_bad_requests_get_openai_errors_and_the_node_keeps_serving(network):
    chain, urls, developer, grpc_port = network
    (url, agent) = urls[0]
    signed = client(url, agent, developer)
    with pytest.raises(openai.NotFoundError):
        signed.chat.completions.create(model="no-such-model",
                                       messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as err:
        signed.chat.completions.create(model=MODEL, temperature=7,
                                       messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["param"] == "temperature"
    unsigned = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-none", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        unsigned.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    ok = signed.chat.completions.create(model=MODEL, max_tokens=2,
                                        messages=[{"role": "user", "content": "hi"}])
    assert ok.usage.completion_tokens >= 1
