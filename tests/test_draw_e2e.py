"""Under concurrent load, with one ML node stalled for a while and one participant refusing
every forward, every answer a developer receives is charged on chain and no honest transfer
agent or executor ever disagrees with the chain's draw.

Real processes (tests/local_network.py): a solo chain with short epochs, four participants.
Participants 0 and 1 are honest and take the developers' requests; participant 2 refuses every
forward (executor fault "refuse-all"), so each skip counts a miss against it and its
availability falls below 1 from one epoch's draw weights to the next; participant 3's ML node
is stopped (SIGSTOP) for a stretch of requests and resumed (SIGCONT), so its executor stalls
and is skipped. Throughout, two healthy executors below their batch limit (4 rows each, 8
requests in flight) remain, and every participant is among a request's picks (a transfer agent
serves itself past a silent pick only on a signed refusal, so the other healthy executor must
be one of them), so no request may be refused.
"""

import itertools
import json
import signal
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from inference_actors import developer_charge
from local_network import CHARGED, MODEL, ApiNode, LocalNetwork, MlNodes, poll

from chain.inference.keeper import availability_ppm
from chain.scales import PPM

IN_FLIGHT = 8
EPOCH_BLOCKS = 10
# The request's whole time for its four picks (one draw per request): 22 blocks each.
DRAW_WINDOW = 120
ATTEMPTS = 4
# Answers before the stall, during it (at least; it lasts until a transfer agent has given up
# on the stalled executor), and after the resume.
BEFORE, DURING, AFTER = 8, 16, 16
QUESTION = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlNodes]:
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 3)
    yield nodes
    for process in nodes.processes:  # never leave a stopped process behind
        process.send_signal(signal.SIGCONT)
    nodes.close()


class Load:
    """IN_FLIGHT developers' threads streaming requests through participants 0 and 1."""

    def __init__(self, network: LocalNetwork) -> None:
        self.network = network
        self.answered: list[str] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self._seeds = itertools.count()
        self._lock = threading.Lock()

    def run(self, index: int) -> None:
        client = self.network.client(self.network.nodes[index % 2])
        while not self.stop.is_set():
            with self._lock:
                seed = next(self._seeds)
            try:
                chunks = list(client.chat.completions.create(
                    model=MODEL, messages=QUESTION, max_tokens=4, temperature=0, seed=seed,
                    stream=True))
            except Exception as exc:  # every failure the developer sees is a test failure
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
            with self._lock:
                self.answered.append(chunks[0].model_extra["inference_id"])

    def count(self) -> int:
        with self._lock:
            return len(self.answered)

    def wait_for(self, answers: int) -> None:
        poll(lambda: True if self.count() >= answers or self.errors else None,
             f"{answers} answers", 240)
        assert not self.errors, self.errors


def gave_up_on(network: LocalNetwork, executor: ApiNode) -> bool:
    """Whether a transfer agent waited out its time on ``executor`` and moved on."""
    return any(f"gave up on executor {executor.address}" in line
               for node in network.nodes for line in node.log().splitlines())


def health(network: LocalNetwork, index: int) -> dict:
    with urllib.request.urlopen(f"{network.nodes[index].url}/health", timeout=5) as reply:
        return json.loads(reply.read())


def test_every_answer_is_charged_while_an_ml_node_stalls_and_a_participant_refuses(
        mlnodes: MlNodes, tmp_path) -> None:
    ports = mlnodes.ports
    honest = {"validator": False, "poc": False, "first_token_timeout_s": 60.0}
    network = LocalNetwork(
        tmp_path, [ports[0], ports[1], ports[0], ports[2]],
        params={"inference": {"max_draw_age_blocks": DRAW_WINDOW, "max_attempts": ATTEMPTS},
                "epochs": {"epoch_length_blocks": EPOCH_BLOCKS}},
        node_settings=[honest, honest, {**honest, "executor_fault": "refuse-all"}, honest])
    stalled = mlnodes.processes[2]
    refuser, sleeper = network.nodes[2], network.nodes[3]
    load = Load(network)
    try:
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            running = [pool.submit(load.run, i) for i in range(IN_FLIGHT)]
            try:
                load.wait_for(BEFORE)
                stalled.send_signal(signal.SIGSTOP)
                stalled_at = network.chain.height()
                load.wait_for(BEFORE + DURING)
                # Stalled until a transfer agent has given up on it for the next pick.
                poll(lambda: True if gave_up_on(network, sleeper) else None,
                     "no transfer agent gave up on the stalled executor", 120)
                stalled.send_signal(signal.SIGCONT)
                load.wait_for(BEFORE + DURING + AFTER)
                # Several epochs of draw weights, each fixed with the misses of the last.
                poll(lambda: True if network.chain.height() > stalled_at + 3 * EPOCH_BLOCKS
                     else None, "three epochs after the stall", 120)
                load.wait_for(load.count() + IN_FLIGHT)
            finally:
                stalled.send_signal(signal.SIGCONT)
                load.stop.set()
            for thread in running:
                thread.result()
        assert not load.errors, load.errors

        charged = {i: network.finished(i, timeout=60) for i in load.answered}
        assert all(i.status in CHARGED for i in charged.values())
        # At the registry's price: ten-block epochs settle fast, and an inference of a settled
        # epoch is its summary, which keeps the cost and the token counts but not the price.
        price = network.models[0]["price_per_token"]
        for inference in charged.values():
            assert inference.price_per_token == (0 if inference.summarized_height else price)
            assert inference.cost == ((inference.prompt_tokens + inference.output_tokens)
                                      * price) > 0
        spent = network.funds[network.developer.address] - network.account(
            network.developer.address).balance
        assert spent == developer_charge(charged.values())
        for node in network.nodes:
            executed = sum(1 for i in charged.values() if i.executor == node.address)
            assert network.participant(node.address).completions == executed
        assert not any(i.executor == refuser.address for i in charged.values())

        refusing = network.participant(refuser.address)
        assert refusing.misses > 0 and availability_ppm(refusing) < PPM
        for index in range(len(network.nodes)):
            assert health(network, index)["draw_mismatches"] == {
                "refused_starts": 0, "refused_forwards": 0}, network.nodes[index].log()
    finally:
        network.close()
