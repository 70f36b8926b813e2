"""Penalties, logit biases and n > 1 end to end: real chain, API node and ML node processes,
the official openai client, and validator workers that re-score on their own ML nodes.

One network of three participants, one of whose ML node (``mlnode serve --cheat
ignore-transforms``) drops every request's penalties and biases and otherwise serves the
real model with the real rule. The developer's requests show what OpenAI documents (a +100
bias forces a token, -100 bans the greedy one, a frequency or presence penalty cuts repeats),
read from the output ids on chain; ``n`` > 1 comes back as that many choices, each its own
settled inference, streamed or not, signed or with an API key. At the end the validators'
verdicts: every honest output, transformed or not, passes with no rule violation, and the
outputs the cheater served without their transform are invalidated.
"""

from collections.abc import Iterator

import grpc
import httpx
import openai
import pytest
from chain_nodes import CHAIN_ID
from inference_actors import developer_charge
from local_network import MODEL, LocalNetwork, MlNodes
from test_apinode_api_keys import grant
from test_validation_e2e import FAST_WORKER, ONE_LONG_EPOCH, all_checked, wait_for_seeds

from apinode.openai_signing import SignedRequests
from chain.inference.keeper import invalid_now
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import INVALIDATED, VALIDATED
from inferchain_pb.inference.v1.validation_pb2 import FAILED
from inferchain_pb.mlnode.v1 import mlnode_pb2 as ml
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc

CHEAT = "ignore-transforms"
# Greedy answers "Hello, hello, hello, ..." (29 repeats in 32 tokens).
REPETITIVE = "Write the word 'hello' twenty times."
# Every inference a test here served: the validators' verdicts are checked on all of them.
SERVED: list[str] = []


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(honest port, cheating port)."""
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 2, cheats=[None, CHEAT])
    yield nodes.ports[0], nodes.ports[1]
    nodes.close()


@pytest.fixture(scope="module")
def net(mlnodes: tuple[int, int],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    honest_port, cheat_port = mlnodes
    network = LocalNetwork(tmp_path_factory.mktemp("network"),
                           [cheat_port, honest_port, honest_port], params=ONE_LONG_EPOCH,
                           in_genesis=True, node_settings=[FAST_WORKER] * 3)
    try:
        wait_for_seeds(network, 0)
        yield network
    finally:
        network.close()


def cheater(net: LocalNetwork) -> str:
    return net.nodes[0].address


def honest_output(net: LocalNetwork, **ask: object) -> list[int]:
    """The output ids on chain of ``ask`` as an honest executor served it: asked again (each
    time a new request, so a new draw) while the cheater is drawn."""
    client = net.client(net.nodes[1])
    for _ in range(12):
        reply = client.chat.completions.create(model=MODEL, **ask)
        inference = net.finished(reply.model_extra["inference_id"])
        # The cheater's answers to a strong transform break the rule at many positions and are
        # judged at the end too: once validators invalidate enough of them it leaves the
        # draw, so a later test may never meet it again.
        if inference.executor == cheater(net) and strong(ask):
            SERVED.append(inference.id)
        if inference.executor != cheater(net):
            SERVED.append(inference.id)
            assert len(inference.output_ids) == reply.usage.completion_tokens
            return list(inference.output_ids)
    raise AssertionError("the cheater was drawn twelve times in a row")


def strong(ask: dict) -> bool:
    """A transform that moves the rule's pick at most positions: a forcing bias (+100), or a
    full penalty on the repetitive prompt."""
    return (100 in ask.get("logit_bias", {}).values()
            or 2.0 in (ask.get("frequency_penalty"), ask.get("presence_penalty")))


def token_of(port: int, text: str) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        ids = ml_grpc.MLNodeStub(channel).Tokenize(ml.TokenizeRequest(text=text),
                                                   timeout=30).token_ids
    assert len(ids) == 1, ids
    return ids[0]


def repeats(ids: list[int]) -> int:
    return len(ids) - len(set(ids))


def test_a_plus_100_bias_forces_its_token_and_minus_100_bans_the_greedy_one(net, mlnodes):
    ask = {"messages": [{"role": "user", "content": "What is the capital of France?"}],
           "max_tokens": 8, "temperature": 0}
    plain = honest_output(net, **ask)
    banana = token_of(mlnodes[0], " banana")
    assert banana not in plain
    assert honest_output(net, **ask, logit_bias={str(banana): 100}) == [banana] * 8
    banned = honest_output(net, **ask, logit_bias={str(plain[0]): -100})
    assert plain[0] not in banned and banned[0] != plain[0]


def test_frequency_and_presence_penalties_cut_the_repeats_of_a_repetitive_answer(net):
    ask = {"messages": [{"role": "user", "content": REPETITIVE}], "max_tokens": 32,
           "temperature": 0}
    plain = honest_output(net, **ask)
    frequency = honest_output(net, **ask, frequency_penalty=2.0)
    presence = honest_output(net, **ask, presence_penalty=2.0)
    assert repeats(plain) >= 10, plain
    assert repeats(frequency) < repeats(plain) and repeats(presence) < repeats(plain)
    # A negative penalty rewards repeating: never fewer repeats than without one.
    assert repeats(honest_output(net, **ask, frequency_penalty=-1.0)) >= repeats(plain)


def test_n_3_is_three_choices_each_a_settled_inference_of_its_own(net):
    reply = net.client(net.nodes[2]).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Name a fruit."}], n=3,
        max_tokens=8, temperature=1.0, seed=11)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    ids = [c.model_extra["inference_id"] for c in reply.choices]
    assert len(set(ids)) == 3 and reply.model_extra["inference_id"] == ids[0]
    settled = [net.finished(i) for i in ids]
    SERVED.extend(ids)
    assert len({s.seed for s in settled}) == 3 and settled[0].seed == 11
    assert {s.transfer_agent for s in settled} == {net.nodes[2].address}
    for choice, inference in zip(reply.choices, settled, strict=True):
        assert choice.message.content and inference.output_tokens > 0
    assert reply.usage.completion_tokens == sum(s.output_tokens for s in settled)
    assert reply.usage.prompt_tokens == sum(s.prompt_tokens for s in settled)


def test_a_streamed_n_2_names_each_chunks_choice_and_ends_both(net):
    stream = net.client(net.nodes[1]).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], n=2,
        max_tokens=6, temperature=0.8, stream=True, stream_options={"include_usage": True})
    texts, finished, ids, usage = ["", ""], [None, None], [set(), set()], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            ids[choice.index].add(choice.model_extra["inference_id"])
            if choice.finish_reason:
                finished[choice.index] = choice.finish_reason
    assert all(finished) and all(texts)
    assert all(len(found) == 1 for found in ids) and ids[0] != ids[1]
    settled = [net.finished(found.pop()) for found in ids]
    SERVED.extend(s.id for s in settled)
    assert usage.completion_tokens == sum(s.output_tokens for s in settled)


def test_an_api_key_request_for_n_2_is_two_inferences_paid_from_the_allowance(net):
    node = net.nodes[1]
    signer = SignedRequests(bytes.fromhex(net.developer.private_key_hex), node.address,
                            CHAIN_ID)
    issued = httpx.post(f"{node.url}/v1/inferchain/api-keys", content=b"{}",
                        auth=signer).json()
    grant(net.chain.grpc_port, net.developer, node.address, 50_000_000)
    client = openai.OpenAI(base_url=f"{node.url}/v1", api_key=issued["api_key"],
                           max_retries=0)
    before = net.query("Allowance", q.QueryAllowanceRequest(
        developer=net.developer.address, transfer_agent=node.address),
        q.QueryAllowanceResponse).remaining
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", n=2,
                                      max_tokens=6, temperature=0.9)
    assert [c.index for c in reply.choices] == [0, 1] and all(c.text for c in reply.choices)
    ids = [c.model_extra["inference_id"] for c in reply.choices]
    settled = [net.finished(i) for i in ids]
    SERVED.extend(ids)
    assert len(set(ids)) == 2 and all(s.via_allowance for s in settled)
    after = net.query("Allowance", q.QueryAllowanceRequest(
        developer=net.developer.address, transfer_agent=node.address),
        q.QueryAllowanceResponse).remaining
    assert before - after == developer_charge(settled)


def test_fields_that_would_change_the_output_unseen_are_refused_by_name(net, mlnodes):
    client = net.client(net.nodes[1])
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    for extra, param in [({"logit_bias": {"49152": 5}}, "logit_bias"),
                         ({"reasoning_effort": "high"}, "reasoning_effort"),
                         ({"function_call": "auto"}, "function_call"),
                         ({"n": 9}, "n")]:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(**ask, **extra)
        assert caught.value.body["param"] == param, caught.value.body


def test_validators_pass_every_honest_output_and_invalidate_the_ignored_transforms(net,
                                                                                 mlnodes):
    """The cheater serves biased requests as if unbiased: every one of its positions breaks
    the rule. Served until it has taken one and the honest two another each, or until the
    cheater has left the draw: the earlier tests' strong transforms may already have had
    three of its outputs invalidated in a row, which makes it INVALID."""
    banana = token_of(mlnodes[0], " banana")
    client = net.client(net.nodes[1])
    executors = {net.inference(i).executor for i in SERVED}
    for n in range(24):
        if invalid_now(net.participant(cheater(net))):
            break
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"Count to {n + 3}."}],
            max_tokens=12, temperature=0.7, seed=500 + n, logit_bias={str(banana): 100},
            frequency_penalty=0.5)
        SERVED.append(net.finished(reply.model_extra["inference_id"]).id)
        executors = {net.inference(i).executor for i in SERVED}
        if cheater(net) in executors and len(executors) == 3:
            break
    assert len(executors - {cheater(net)}) == 2, executors
    if cheater(net) not in executors:
        assert invalid_now(net.participant(cheater(net))), executors
        assert any(i.executor == cheater(net) for i in net.inferences(INVALIDATED))

    tasks = all_checked(net, SERVED)
    for inference_id, found in tasks.items():
        inference = net.inference(inference_id)
        transformed = bool(inference.logit_bias or inference.presence_penalty
                           or inference.frequency_penalty)
        if found.executor == cheater(net) and transformed:
            assert (found.state, inference.status) == (FAILED, INVALIDATED), inference_id
            assert all(r.rule_violations >= 3 for r in found.reports), found.reports
        else:
            assert inference.status == VALIDATED, inference_id
            assert all(r.passed and r.ids_match and r.rule_violations == 0
                       for r in found.reports), found.reports
