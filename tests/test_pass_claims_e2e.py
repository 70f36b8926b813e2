"""A transfer agent that passes a live first pick to favour the next one gets nothing for it:
the passed pick claims the request on chain and serves it.

Real processes (tests/local_network.py): a solo chain and three participants. Participant 0
runs the "pass-first-pick" fault: for every request whose draw names another participant
first, it posts a notice that it passes that pick without ever forwarding it the request, as
an agent favouring the next pick would (docs/design.md §3.3). The first pick's API node reads
the notice and claims the request within the claim window; the agent, held by the claim, then
forwards the request to it after all. Every such request is served at attempt 0 by the pick the
agent tried to pass, nobody is counted passed over, and the notices' bonds come back with the
starts.

The passes' price in time: with two of the three executors down, a request whose draw names
both before the live one is passed twice through notices nobody claims and served by its third
pick, inside the default draw window; with all three down, the developer's 503 names what
became of each pick.
"""

from collections.abc import Iterator

import grpc
import openai
import pytest
from local_network import MODEL, LocalNetwork, MlNodes, poll
from test_paid_work_e2e import ask_and_settle

from chain.auth import address
from chain.inference.params import InferenceParams
from chain.inference.pass_notices import BOND_ACCOUNT
from inferchain_pb.inference.v1 import query_pb2 as q

REQUESTS = 4
# Each draw names another participant first about two thirds of the time: asking until two
# of them came (at most this many) misses with a chance near 1e-6.
MOST_REQUESTS = 24
# Among three executors of equal weight, the live one is the third pick of a third of the
# draws: asking until one came (at most this many) misses with a chance near 6e-5.
MOST_DEAD_PICK_REQUESTS = 24


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlNodes]:
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 2)
    yield nodes
    nodes.close()


def test_a_live_first_pick_claims_the_request_its_agent_tries_to_pass(mlnodes: MlNodes,
                                                                      tmp_path) -> None:
    quiet = {"validator": False, "poc": False}
    network = LocalNetwork(
        tmp_path, [mlnodes.ports[0], mlnodes.ports[1], mlnodes.ports[1]],
        params={"inference": {"max_draw_age_blocks": 40}},
        node_settings=[{**quiet, "transfer_agent_fault": "pass-first-pick"}, quiet, quiet])
    agent, *executors = network.nodes
    try:
        claimed: list[str] = []

        def notice_of(inference_id: str) -> q.QueryPassNoticeResponse | None:
            try:
                return network.query("PassNotice", q.QueryPassNoticeRequest(
                    transfer_agent=agent.address, inference_id=inference_id, attempt=0),
                                     q.QueryPassNoticeResponse)
            except grpc.RpcError as exc:  # dropped with its draw window
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise

        def two_claimed() -> bool:
            claimed.clear()
            for line in agent.log().splitlines():
                if "claimed the request at height" in line:
                    claimed.append(line.split("inference ")[1].split(":")[0])
            return len(claimed) >= 2

        answered, charged = ask_and_settle(network, agent, REQUESTS, most=MOST_REQUESTS,
                                           until=two_claimed)
        assert two_claimed(), f"none of {len(answered)} requests drew another node first"
        by_id = {i.id: i for i in charged}
        for inference_id in claimed:
            inference = by_id[inference_id]
            # The pick the agent passed served it, at attempt 0: the pass bought nothing.
            assert inference.attempt == 0, inference
            assert inference.executor in {e.address for e in executors}
            notice = notice_of(inference_id)
            if notice is not None:  # still within its draw window
                assert notice.notice.claimed_at > 0 and notice.notice.bond == 0
                assert notice.notice.pick == inference.executor
        for node in executors:
            assert network.participant(node.address).passed_over == 0
            assert network.participant(node.address).misses == 0
        warned = "".join(node.log() for node in executors)
        assert "says it passes this node" in warned
        assert network.account(address.encode(BOND_ACCOUNT)).balance == 0
        assert "FAULT INJECTION 'pass-first-pick' is on" in agent.log()
    finally:
        network.close()


def test_a_request_whose_first_two_picks_are_down_is_served_by_its_third(mlnodes: MlNodes,
                                                                         tmp_path) -> None:
    """Participant 0 is the agent and weighs nothing (it is never drawn); of the three
    executors two are down. Every request is answered; one whose draw names both down
    executors first is passed twice, each pass a notice nobody claims, and is served at
    attempt 2, within the default draw window (the chain's default, not the longer one the
    other tests give slow CPU generation)."""
    quiet = {"validator": False, "poc": False}
    window = InferenceParams().max_draw_age_blocks
    network = LocalNetwork(
        tmp_path, [mlnodes.ports[0], mlnodes.ports[1], mlnodes.ports[1], mlnodes.ports[1]],
        params={"inference": {"max_draw_age_blocks": window}}, node_settings=[quiet] * 4,
        weights=[0, 100, 100, 100])
    agent, *executors = network.nodes
    live, down = executors[-1], executors[:-1]
    try:
        for node in down:
            node.kill()
        client = network.client(agent)
        third = None
        for seed in range(MOST_DEAD_PICK_REQUESTS):
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Name a colour."}],
                max_tokens=4, temperature=0, seed=seed)
            assert reply.choices[0].message.content
            inference = network.finished(reply.model_extra["inference_id"], timeout=60)
            assert inference.executor == live.address, inference
            if inference.attempt == 2:
                third = inference
                break
        assert third is not None, "no draw named both down executors first"
        assert third.start_height - third.draw_height <= window, third
        # Each pass was a notice of a down pick, unclaimed (unless already out of state).
        picks = [notice_pick(network, agent, third, attempt) for attempt in (0, 1)]
        assert set(picks) <= {node.address for node in down} | {None}, picks
        assert None in picks or picks[0] != picks[1], picks
        for node in down:
            assert network.participant(node.address).passed_over >= 1
            assert network.participant(node.address).misses == 0
        assert network.participant(live.address).passed_over == 0
        poll(lambda: network.account(address.encode(BOND_ACCOUNT)).balance == 0 or None,
             "every notice's bond returned by its start", 30)

        # With every executor down, the developer's 503 says what became of each pick.
        live.kill()
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Name a colour."}],
                max_tokens=4, temperature=0, seed=MOST_DEAD_PICK_REQUESTS)
        error = refused.value.body
        assert error["code"] == "no_executor", error
        assert "the draw's picks: " in error["message"], error
        assert all(node.address in error["message"] for node in executors), error
    finally:
        network.close()


def notice_pick(network: LocalNetwork, agent, inference, attempt: int) -> str | None:
    """The pick the agent's notice of ``attempt`` passed, unclaimed; None once the notice
    left state with its draw window."""
    try:
        found = network.query("PassNotice", q.QueryPassNoticeRequest(
            transfer_agent=agent.address, inference_id=inference.id, attempt=attempt),
                              q.QueryPassNoticeResponse)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    assert found.notice.claimed_at == 0, found
    return found.notice.pick
