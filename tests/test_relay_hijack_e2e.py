"""A drawn executor that refuses the forward and relays the start it carried cannot take the
inference from the transfer agent's next pick: the chain takes no relay without the agent's
delivery of the relayer's output, so the retry starts and its executor is paid.

Real processes (tests/local_network.py): a solo chain and three participants. Participant 0
is the developer's honest transfer agent; participant 1 runs the "refuse-and-relay" fault
(it refuses every forward without a signed refusal and sends the forwarded start as
MsgRelayStart at once); participant 2 is an honest executor. Participant 0 never serves
itself past participant 1's unsigned refusal (docs/design.md §3.3), so a request whose draw
puts participant 1 first goes to participant 2 unless it comes before participant 1.
Participant 1 is never charged a miss for the forwards it refused unsigned, but each one it
was passed over for is counted.
"""

from collections.abc import Iterator

import pytest
from inference_actors import developer_charge
from local_network import LocalNetwork, MlNodes, poll
from test_paid_work_e2e import ask_and_settle

from apinode.store import OutboxState

REQUESTS = 4
# Each draw puts the hostile node first about a third of the time: asking until it happened
# (at most this many) misses it with a chance near (2/3)^30, about 5e-6.
MOST_REQUESTS = 30


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlNodes]:
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 2)
    yield nodes
    nodes.close()


def test_a_pick_relaying_a_refused_forward_cannot_block_the_retry(mlnodes: MlNodes,
                                                                   tmp_path) -> None:
    quiet = {"validator": False, "poc": False}
    # The hostile node never generates: it shares the honest executor's ML node.
    network = LocalNetwork(
        tmp_path, [mlnodes.ports[0], mlnodes.ports[1], mlnodes.ports[1]],
        params={"inference": {"max_draw_age_blocks": 40}},
        node_settings=[quiet, {**quiet, "executor_fault": "refuse-and-relay"}, quiet])
    agent, hostile, honest = network.nodes
    try:
        answered, charged = ask_and_settle(
            network, agent, REQUESTS, most=MOST_REQUESTS,
            until=lambda: bool(hostile.outbox.with_prefix("relay_start:")))
        assert all(i.executor != hostile.address for i in charged)
        # The hostile node is asked only as the first pick (any other first pick serves),
        # and every start it was forwarded went out as its relay.
        relays = {e.key.removeprefix("relay_start:") for e in
                  hostile.outbox.with_prefix("relay_start:")}
        hijacked = [i for i in charged if i.id in relays]
        assert hijacked, f"none of {len(charged)} requests drew the hostile node first"
        assert relays <= set(answered)
        for inference in hijacked:
            # Retried past the hostile pick, and never onto the agent itself after an
            # unsigned refusal.
            assert inference.attempt >= 1 and inference.executor == honest.address
            assert inference.cost == ((inference.prompt_tokens + inference.output_tokens)
                                      * inference.price_per_token) > 0
        assert network.participant(hostile.address).completions == 0
        assert network.participant(hostile.address).misses == 0  # no evidence, no miss
        # Yet each pass is counted: beyond an allowance of its epoch's draws, passes cost
        # what misses do (a member silent on every draw keeps no reward).
        assert len(hijacked) <= network.participant(hostile.address).passed_over <= sum(
            i.attempt for i in charged)
        spent = network.funds[network.developer.address] - network.account(
            network.developer.address).balance
        assert spent == developer_charge(charged)

        # The chain refused each hostile relay as undelivered.
        def refused() -> bool | None:
            entries = hostile.outbox.with_prefix("relay_start:")
            return True if entries and all(
                e.state != OutboxState.COMMITTED and "signed no delivery" in (e.last_error or "")
                for e in entries) else None

        poll(refused, "the hostile relays refused by the chain", 60)
        assert "FAULT INJECTION 'refuse-and-relay' is on" in hostile.log()
    finally:
        network.close()
