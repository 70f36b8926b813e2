"""A local network end to end: a chain, participants each with an ML node and an API node
process, and developers using the official openai client with signed requests.

The basic chat tests run on every kind of network: a solo chain with SQLite stores, a CometBFT
chain, and a solo chain whose API nodes keep their stores in PostgreSQL. Bad input and a killed
executor are shown on the solo network, the one with three participants.
"""

import hashlib
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial

import httpx
import openai
import pytest
from chain_client import GAS_PRICE, ledger
from chain_nodes import CHAIN_ID, funded_keys
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from inference_actors import AGENT_FEE
from local_network import (
    MODEL,
    POOR_FUNDS,
    ApiNode,
    LocalNetwork,
    MlNodes,
    kill_while_owing,
    poll,
    postgres_databases,
)

from apinode.openai_signing import signed_http_client
from apinode.request_auth import API_KEYS_PATH, sign_request
from apinode.store import OutboxState
from chain.inference.payload import REQUEST_NONCE_BYTES, request_id
from genesis.comet_config import find_cometbft
from inferchain_pb.inference.v1.inference_pb2 import FINISHED, STARTED, VALIDATED, VOTING

POSTGRES_URL = os.environ.get("INFERCHAIN_TEST_POSTGRES_URL", "")
SOLO = pytest.param("solo", id="solo")
NETWORKS = [
    SOLO,
    pytest.param("cometbft", id="cometbft", marks=pytest.mark.skipif(
        find_cometbft() is None, reason="cometbft is not installed (make cometbft)")),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.skipif(
        not POSTGRES_URL, reason="INFERCHAIN_TEST_POSTGRES_URL is not set: point it at a "
        "PostgreSQL server the tests may create databases on, e.g. postgresql+psycopg://"
        "postgres:postgres@127.0.0.1:5432/inferchain_test (.ci/run starts one)")),
]
on_every_network = pytest.mark.parametrize("network", NETWORKS, indirect=True)
on_solo = pytest.mark.parametrize("network", [SOLO], indirect=True)
# Three on the solo network, so a dead executor leaves a choice of two; two elsewhere.
PARTICIPANTS = {"solo": 3, "cometbft": 2, "postgresql": 2}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """ML node ports, lent to each network in turn: loading the model is the slow start."""
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), max(PARTICIPANTS.values()))
    yield nodes.ports
    nodes.close()


@pytest.fixture(scope="module")
def network(request: pytest.FixtureRequest, mlnodes: list[int],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """The network named by the test's parameter; pytest groups the tests by it, so each
    kind starts once (and stops, its PostgreSQL databases dropped, before the next)."""
    kind = request.param
    ports = mlnodes[:PARTICIPANTS[kind]]
    with ExitStack() as stack:
        databases = None
        if kind == "postgresql":
            databases = stack.enter_context(postgres_databases(
                POSTGRES_URL, [f"inferchain_e2e_p{i}" for i in range(len(ports))]))
        net = LocalNetwork(tmp_path_factory.mktemp(f"network-{kind}"), ports,
                           "cometbft" if kind == "cometbft" else "solo", databases)
        stack.callback(net.close)
        yield net


def assert_openai_error(error: object, code: str | None, param: str | None = None) -> None:
    """OpenAI's error object: exactly message, type, param and code."""
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, error
    assert error["message"] and error["type"], error
    assert (error["code"], error["param"]) == (code, param), error


def assert_consistent_books(network: LocalNetwork) -> None:
    """What the chain holds adds up: each charged inference cost its tokens at its price, each
    developer's escrow is what its open inferences hold, and its balance is its genesis funds
    less that escrow and what its charged inferences cost."""
    finished, started, accounts = poll(lambda: books_at_one_height(network),
                                       "the books read within one committed height", 60, 0.2)
    for inference in finished:
        assert inference.cost == ((inference.prompt_tokens + inference.output_tokens)
                                  * inference.price_per_token), inference
        assert inference.output_tokens == len(inference.output_ids) and inference.artifact
    for developer, funds in network.funds.items():
        account = accounts[developer]
        assert account.escrow == sum(i.escrow for i in started if i.developer == developer)
        charged = sum(i.cost + i.agent_fee for i in finished if i.developer == developer)
        assert account.balance == funds - account.escrow - charged, developer


def books_at_one_height(network: LocalNetwork) -> tuple[list, list, dict] | None:
    """Charged and open inferences and the developers' accounts, all read while no block
    committed: queries read the latest height, and an inference moving from one status to
    another between two reads would be counted twice or not at all."""
    height = network.height()
    finished = [i for status in (FINISHED, VALIDATED, VOTING) for i in network.inferences(status)]
    started = network.inferences(STARTED)
    accounts = {developer: network.account(developer) for developer in network.funds}
    return (finished, started, accounts) if network.height() == height else None


@on_every_network
def test_chat_completion_with_logprobs_is_served_and_charged_on_chain(network: LocalNetwork
                                                                      ) -> None:
    agent = network.nodes[0]
    before = network.account(network.developer.address).balance
    reply = network.client(agent).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=12, temperature=0, logprobs=True, top_logprobs=3)
    text = reply.choices[0].message.content
    assert "Paris" in text
    tokens = reply.choices[0].logprobs.content
    assert len(tokens) == reply.usage.completion_tokens and len(tokens[0].top_logprobs) == 3
    inference = network.finished(reply.model_extra["inference_id"])
    executor, _ = network.executor_of(inference.id)  # read from its own store
    assert inference.executor == executor.address
    assert inference.transfer_agent == agent.address
    assert len(inference.output_ids) == reply.usage.completion_tokens and inference.artifact
    cost = (reply.usage.prompt_tokens + reply.usage.completion_tokens) * inference.price_per_token
    assert inference.cost == cost
    assert (inference.starter, inference.agent_fee) == (agent.address, AGENT_FEE)
    assert before - network.account(network.developer.address).balance == cost + AGENT_FEE


@on_every_network
def test_streaming_through_the_other_participant(network: LocalNetwork) -> None:
    stream = network.client(network.nodes[1]).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8,
        stream=True, stream_options={"include_usage": True}, seed=5)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage.completion_tokens >= 1
    assert chunks[-2].choices[0].finish_reason in {"stop", "length"}
    network.finished(chunks[0].model_extra["inference_id"])


@on_solo
def test_bad_input_gets_openai_errors_and_the_node_keeps_serving(network: LocalNetwork) -> None:
    agent = network.nodes[0]
    signed = network.client(agent)
    key = bytes.fromhex(network.developer.private_key_hex)

    def post(body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{agent.url}/v1/chat/completions", content=body, timeout=60,
                          headers={"Content-Type": "application/json", **headers})

    malformed = b'{"model": "' + MODEL.encode() + b'", "messages": ['
    reply = post(malformed, sign_request(key, malformed, agent.address, CHAIN_ID))
    assert reply.status_code == 400
    assert_openai_error(reply.json()["error"], None)

    with pytest.raises(openai.BadRequestError) as bad:
        signed.chat.completions.create(model=MODEL, messages=HI, extra_body={"max_tokens": "9"})
    assert_openai_error(bad.value.body, "invalid_type", "max_tokens")
    with pytest.raises(openai.BadRequestError) as bad:
        signed.chat.completions.create(model=MODEL, messages=HI, temperature=7)
    assert_openai_error(bad.value.body, "decimal_above_max_value", "temperature")
    with pytest.raises(openai.BadRequestError) as bad:
        signed.chat.completions.create(model=MODEL, messages=[])
    assert_openai_error(bad.value.body, "empty_array", "messages")
    with pytest.raises(openai.NotFoundError) as bad:
        signed.chat.completions.create(model="no-such-model", messages=HI)
    assert_openai_error(bad.value.body, "model_not_found", "model")
    with pytest.raises(openai.NotFoundError) as bad:  # the network serves generation only
        signed.embeddings.create(model=MODEL, input="hello")
    assert_openai_error(bad.value.body, "invalid_url")
    assert "POST /v1/embeddings" in bad.value.body["message"]
    assert httpx.get(f"{agent.url}/v1/chat/completions", timeout=30).json()["error"][
        "code"] == "invalid_url"
    with pytest.raises(openai.BadRequestError) as bad:  # the model's context is 8192 tokens
        signed.chat.completions.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "hello " * 9000}])
    assert_openai_error(bad.value.body, "context_length_exceeded", "messages")
    assert "8192" in bad.value.body["message"]

    with pytest.raises(openai.APIStatusError) as poor:
        network.client(agent, network.poor).chat.completions.create(model=MODEL, messages=HI,
                                                                   max_tokens=4)
    assert poor.value.status_code == 402
    assert_openai_error(poor.value.body, "insufficient_quota")
    assert network.account(network.poor.address).balance == POOR_FUNDS

    with pytest.raises(openai.AuthenticationError) as unauthorized:
        openai.OpenAI(base_url=f"{agent.url}/v1", api_key="sk-none", max_retries=0
                      ).chat.completions.create(model=MODEL, messages=HI)
    assert_openai_error(unauthorized.value.body, "invalid_api_key")
    body = b'{"model": "' + MODEL.encode() + b'", "max_tokens": 1, "messages": [' \
           b'{"role": "user", "content": "hi"}]}'
    reply = post(body, {})
    assert reply.status_code == 401
    assert_openai_error(reply.json()["error"], "missing_signature")
    headers = sign_request(key, body, agent.address, CHAIN_ID)
    assert post(body, headers).status_code == 200
    replayed = post(body, headers)
    assert replayed.status_code == 401
    assert_openai_error(replayed.json()["error"], "replayed_signature")

    ok = signed.chat.completions.create(model=MODEL, max_tokens=2, messages=HI)
    assert ok.usage.completion_tokens >= 1
    assert agent.process.poll() is None
    assert "/v1/chat/completions failed" not in agent.log()  # no refusal was an unexpected 500


@on_solo
def test_the_same_body_twice_is_two_requests_and_a_captured_one_is_taken_once(
        network: LocalNetwork) -> None:
    """The official client sends one body twice within a second: each request carries a
    nonce of its own, so both are served and charged. A byte-identical copy of one of them,
    presented again at its transfer agent (before and after that node restarts), at another
    participant's, or at the API-key endpoint, is refused with an OpenAI-shaped 401 and starts
    nothing; the developer pays for exactly the two answers."""
    agent, other = network.nodes[0], network.nodes[1]
    sent: list[httpx.Request] = []
    client = openai.OpenAI(
        base_url=f"{agent.url}/v1", api_key="unused", max_retries=0,
        http_client=signed_http_client(bytes.fromhex(network.developer.private_key_hex),
                                       agent.address, CHAIN_ID,
                                       event_hooks={"request": [sent.append]}))
    ask = partial(client.chat.completions.create, model=MODEL, messages=HI, max_tokens=2,
                  temperature=0)
    every: list[str] = []  # every answered request, of each round
    for _ in range(3):  # sent together; again should the two straddle a second boundary
        sent.clear()
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda _: ask(), range(2)))
        every += [r.model_extra["inference_id"] for r in replies]
        if sent[0].headers["X-Timestamp"] == sent[1].headers["X-Timestamp"]:
            break
    assert sent[0].content == sent[1].content
    assert sent[0].headers["X-Timestamp"] == sent[1].headers["X-Timestamp"]
    answered = {r.model_extra["inference_id"] for r in replies}
    assert len(answered) == 2
    for inference_id in every:  # settled before the books are read
        network.finished(inference_id)
    assert_consistent_books(network)
    before = network.account(network.developer.address)

    captured = sent[0]

    def replay(url: str) -> httpx.Response:
        return httpx.post(url, content=captured.content, headers=dict(captured.headers),
                          timeout=60)

    def refused(reply: httpx.Response, code: str) -> str:
        assert reply.status_code == 401, reply.text
        assert_openai_error(reply.json()["error"], code)
        return reply.json()["error"]["message"]

    completions = "/v1/chat/completions"
    assert "already used" in refused(replay(agent.url + completions), "replayed_signature")
    assert f"transfer agent {other.address}" in refused(replay(other.url + completions),
                                                        "invalid_signature")
    assert "purpose 'api-key'" in refused(replay(agent.url + API_KEYS_PATH),
                                          "invalid_signature")
    agent.kill()
    agent.start()
    agent.wait_ready()
    refused(replay(agent.url + completions), "replayed_signature")
    assert network.account(network.developer.address) == before
    assert_consistent_books(network)


@on_solo
def test_a_developer_cannot_be_answered_beyond_its_funds_by_sending_at_once(
        network: LocalNetwork) -> None:
    """Funds for about two and a half requests, six sent at once through one transfer agent:
    the agent holds each answered request's escrow until its start lands, so the others are
    refused (402) and every answer the developer gets is paid for on chain."""
    agent = network.nodes[0]
    first = network.client(agent).chat.completions.create(model=MODEL, messages=HI,
                                                         max_tokens=4)
    known = network.finished(first.model_extra["inference_id"])
    escrow = (known.prompt_tokens + 4) * known.price_per_token + known.agent_fee
    fresh = funded_keys(1)[0]
    wallet = LocalWallet(PrivateKey(bytes.fromhex(network.developer.private_key_hex)),
                         prefix="infer")
    funds = 2 * escrow + escrow // 2
    sent = ledger(network.chain.grpc_port).send_tokens(fresh.address, funds, "ninfer",
                                                       wallet).wait_to_complete()
    # The books (assert_consistent_books) start from each developer's funds; cosmpy pays
    # gas_wanted × its gas price as the fee.
    fee = math.ceil(sent.response.gas_wanted * GAS_PRICE)
    network.funds[network.developer.address] -= funds + fee
    network.funds[fresh.address] = funds
    client = network.client(agent, fresh)

    def ask(seed: int) -> str | int:
        try:
            return client.chat.completions.create(model=MODEL, messages=HI, max_tokens=4,
                                                  seed=seed).model_extra["inference_id"]
        except openai.APIStatusError as exc:
            assert_openai_error(exc.body, "insufficient_quota")
            return exc.status_code

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(ask, range(6)))
    answered = [o for o in outcomes if isinstance(o, str)]
    assert answered and 402 in outcomes, outcomes
    charged = [network.finished(inference_id) for inference_id in answered]
    spent = funds - network.account(fresh.address).balance
    assert spent == sum(i.cost + i.agent_fee for i in charged) <= funds
    assert_consistent_books(network)


@on_solo
def test_an_executor_killed_mid_answer_ends_that_answer_with_an_error_and_nothing_else(
        network: LocalNetwork) -> None:
    """SIGKILL the executor while it streams: tokens already went out, so the developer gets
    an OpenAI error event rather than a silent retry; the chain keeps the inference open
    (escrowed, unfinished) until it expires; the transfer agent serves the next request and
    the restarted executor serves again."""
    agent = network.nodes[0]
    client = network.client(agent)
    by_address = {n.address: n for n in network.nodes}
    counting = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]
    for n in range(12):  # (1/3)^12: about 2e-6 that every draw picks the agent
        chunks = iter(client.chat.completions.create(model=MODEL, messages=counting,
                                                     max_tokens=300, temperature=0,
                                                     stream=True, seed=n))
        inference_id = next(chunks).model_extra["inference_id"]
        executor = by_address[poll(partial(network.inference, inference_id),
                                   "the start did not reach the chain", 30).executor]
        if executor is not agent:
            break
        list(chunks)  # the transfer agent drew itself: let it finish and draw again
    else:
        pytest.fail("the transfer agent drew itself twelve times")
    executor.kill()
    with pytest.raises(openai.APIError) as broke:
        list(chunks)
    assert_openai_error(broke.value.body, "executor_failed")
    assert network.inference(inference_id).status == STARTED
    assert_consistent_books(network)

    ok = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=2)
    assert network.finished(ok.model_extra["inference_id"]).executor != executor.address
    executor.start()
    executor.wait_ready()
    ok = network.client(executor).chat.completions.create(model=MODEL, messages=HI,
                                                          max_tokens=2)
    network.finished(ok.model_extra["inference_id"])
    assert network.inference(inference_id).status == STARTED
    assert_consistent_books(network)


@on_solo
def test_a_killed_executor_is_skipped_and_drains_its_outbox_after_restart(
        network: LocalNetwork) -> None:
    """SIGKILL the executor of a request while its finish is still in its outbox; requests
    keep succeeding because the transfer agent moves past it in the draw, and the chain
    counts it no miss (a dead executor signs no refusal); restarted on the same home it does
    not register again, sends the finish it owed, and serves; the chain's books add up
    throughout."""
    question = [{"role": "user", "content": "Name a colour."}]
    for n in range(3):
        reply = network.client(network.nodes[0]).chat.completions.create(
            model=MODEL, messages=question, max_tokens=4, temperature=0, seed=n)
        owed = reply.model_extra["inference_id"]
        victim, _ = network.executor_of(owed)
        if kill_while_owing(victim, f"finish_inference:{owed}"):
            break
    else:
        pytest.fail("each finish reached the chain before its executor could be killed")
    states = victim.outbox_states()
    assert states[OutboxState.PENDING] + states[OutboxState.SENT] >= 1

    others = [n for n in network.nodes if n is not victim]
    misses = {n.address: network.participant(n.address).misses for n in network.nodes}
    agent = others[0]
    client = network.client(agent)
    for n in range(30):  # the victim is first in a draw a third of the time: (2/3)^30 ≈ 5e-6
        reply = client.chat.completions.create(model=MODEL, messages=question, max_tokens=2,
                                               seed=100 + n)
        assert reply.usage.completion_tokens >= 1
        inference = network.finished(reply.model_extra["inference_id"])
        assert inference.executor in {n.address for n in others}
        if inference.attempt:
            # Passed over: the killed executor first, then perhaps the agent's own pick,
            # which it may not take past a pick that left no signed refusal.
            order = network.draw(inference.id, inference.draw_height)
            assert order[0] == victim.address, (order, inference.attempt)
            assert set(order[1:inference.attempt]) <= {agent.address}, order
            break
    else:
        pytest.fail("no request drew the killed executor first")
    assert all(network.participant(n.address).misses == misses[n.address]
               for n in network.nodes)
    assert_consistent_books(network)

    registered = network.participant(victim.address).registered_height
    victim.start()
    victim.wait_ready()
    assert f"participant {victim.address} is registered" in victim.log()
    assert network.participant(victim.address).registered_height == registered

    def drained() -> bool | None:
        states = victim.outbox_states()
        return True if states[OutboxState.PENDING] + states[OutboxState.SENT] == 0 else None
    poll(drained, "the restarted node still owes the chain", 180)
    # Only a report whose opening period passed while the node was down may be given up on:
    # the chain takes a sealed report's opening for opening_blocks only.
    assert all(key.endswith(":open") and "never opened" in error
               for key, error in victim.failed_outbox().items()), victim.failed_outbox()
    assert network.finished(owed).executor == victim.address

    reply = network.client(victim).chat.completions.create(model=MODEL, messages=HI,
                                                            max_tokens=2)
    network.finished(reply.model_extra["inference_id"])
    assert_consistent_books(network)


def stamped_for(network: LocalNetwork, agent: ApiNode, body: bytes,
                wanted: Callable[[list[str]], bool]) -> dict[str, str]:
    """The developer's signed headers for ``body`` at ``agent``, stamped a second ago, with a
    nonce whose draw is ``wanted``: the id hashes what the developer signs, so a developer can
    pick among nonces (an agent cannot), which lets the test know the draw beforehand."""
    key = bytes.fromhex(network.developer.private_key_hex)
    stamp = int(time.time()) - 1
    for _ in range(200):
        nonce = secrets.token_bytes(REQUEST_NONCE_BYTES)
        inference_id = request_id(network.developer.address, hashlib.sha256(body).digest(),
                                  stamp, agent.address, nonce)
        order, _ = network.request_draw(inference_id, stamp)
        if wanted(order):
            return {**sign_request(key, body, agent.address, CHAIN_ID, timestamp=stamp,
                                   nonce=nonce), "Content-Type": "application/json"}
    pytest.fail("no nonce of 200 gave the wanted draw")


@on_solo
def test_an_executor_that_failed_lately_is_passed_at_once_and_serves_when_back(
        network: LocalNetwork) -> None:
    """A transfer agent that saw an executor fail passes it at once for a minute, through a
    notice on chain it may claim: with that executor back from a restart and the other one
    dead, a request whose draw is (it, the agent, the dead one) is claimed by it and served
    by it at attempt 0, although the agent passed it unasked."""
    agent, back, dead = network.nodes
    # The agent starts afresh: an earlier test on this network may have left it remembering
    # that one of these executors failed it, and it would then put that one off at once.
    agent.kill()
    agent.start()
    agent.wait_ready()
    body = json.dumps({"model": MODEL, "messages": HI, "max_tokens": 2}).encode()
    url = f"{agent.url}/v1/chat/completions"
    back.kill()
    reply = httpx.post(url, content=body, timeout=120, headers=stamped_for(
        network, agent, body, lambda order: order[0] == back.address))
    assert reply.status_code == 200, reply.text
    assert f"executor {back.address} (attempt 0) failed before its first token" in agent.log()
    back.start()
    back.wait_ready()
    dead.kill()
    try:
        reply = httpx.post(url, content=body, timeout=120, headers=stamped_for(
            network, agent, body,
            lambda order: order == [back.address, agent.address, dead.address]))
        assert reply.status_code == 200, reply.text
        log = agent.log()
        assert f"passing executor {back.address} (attempt 0) without trying it" in log
        assert f"executor {back.address} (attempt 0) claimed the request" in log
        served = network.finished(reply.json()["inference_id"])
        assert (served.executor, served.attempt) == (back.address, 0)
    finally:
        dead.start()
        dead.wait_ready()
    assert_consistent_books(network)
