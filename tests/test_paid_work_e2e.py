"""A transfer agent that takes the answers and never starts the inferences on chain still
pays its executor: the executor relays the start the agent signed, and the developer is
charged exactly once for each answer it received.

Real processes (tests/local_network.py): a solo chain and two participants. Participant 0 is
the developers' transfer agent with the "withhold-start" fault (it never sends
MsgStartInference) and refuses to execute itself ("refuse-all"), so every request runs on
participant 1, an honest executor.
"""

from collections.abc import Callable, Iterator

import pytest
from inference_actors import developer_charge
from local_network import CHARGED, MODEL, ApiNode, LocalNetwork, MlNodes, poll

from apinode.store import OutboxState

REQUESTS = 3


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlNodes]:
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 2)
    yield nodes
    nodes.close()


def ask_and_settle(network: LocalNetwork, agent: ApiNode, requests: int,
                   until: Callable[[], bool] | None = None,
                   most: int = 0) -> tuple[list[str], list]:
    """Asks ``requests`` short greedy questions through ``agent``, each answered, and then,
    while ``until`` is given and still false, more up to ``most`` in all (a draw is random, so
    a test waiting for a particular pick asks until it came rather than a fixed count that
    misses it now and then); returns their inference ids and each inference once charged on
    chain."""
    client = network.client(agent)
    answered = []
    seed = 0
    while seed < requests or (until is not None and seed < most and not until()):
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Name a colour."}],
            max_tokens=4, temperature=0, seed=seed)
        assert reply.choices[0].message.content
        answered.append(reply.model_extra["inference_id"])
        seed += 1
    charged = [network.finished(i, timeout=60) for i in answered]
    assert all(i.status in CHARGED for i in charged)
    return answered, charged


def test_an_executor_is_paid_when_its_transfer_agent_withholds_every_start(
        mlnodes: MlNodes, tmp_path) -> None:
    quiet = {"validator": False, "poc": False}
    network = LocalNetwork(
        tmp_path, mlnodes.ports, params={"inference": {"max_draw_age_blocks": 40}},
        node_settings=[{**quiet, "transfer_agent_fault": "withhold-start",
                        "executor_fault": "refuse-all"}, quiet])
    agent, executor = network.nodes
    try:
        answered, charged = ask_and_settle(network, agent, REQUESTS)
        assert all((i.executor, i.transfer_agent) == (executor.address, agent.address)
                   for i in charged)
        # The executor's relays started them all, so it, not the agent, earned their fees.
        assert all(i.starter == executor.address and i.agent_fee > 0 for i in charged)
        for inference in charged:
            assert inference.cost == ((inference.prompt_tokens + inference.output_tokens)
                                      * inference.price_per_token) > 0
        spent = network.funds[network.developer.address] - network.account(
            network.developer.address).balance
        assert spent == developer_charge(charged)
        assert network.participant(executor.address).completions == REQUESTS
        assert network.participant(agent.address).completions == 0

        # Only the executor's relays started them; the agent sent nothing and said so.
        assert not agent.outbox.with_prefix("start_inference:")
        relays = executor.outbox.with_prefix("relay_start:")
        assert sorted(e.key.removeprefix("relay_start:") for e in relays) == sorted(answered)
        poll(lambda: True if all(e.state == OutboxState.COMMITTED for e in
                                 executor.outbox.with_prefix("relay_start:")) else None,
             "the executor's relays confirmed", 30)
        assert "FAULT INJECTION 'withhold-start' is on" in agent.log()
    finally:
        network.close()
