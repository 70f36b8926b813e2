"""The used-request-signature set holds one window of requests: each signature is forgotten
once its request is too old to start, and a floor keeps a later, wider window (by
governance) from letting a forgotten signature start again. In-process chain, real
handlers, governance and replay."""

import pytest
from inference_actors import start_msg
from inference_net import T0, Net
from test_gov_module import VOTING_PERIOD, param, proposal_id, run_vote, submit

from chain.inference.keeper import REQUEST_SIG
from inferchain_pb.inference.v1.gov_pb2 import PROPOSAL_STATUS_PASSED, VOTE_OPTION_YES

WINDOW = 10


@pytest.fixture
def net() -> Net:
    return Net(3, inference_params={"request_time_window_s": WINDOW}, extra_state={
        "epochs": {"params": {"epoch_length_blocks": 50, "poc_window_blocks": 0}},
        "gov": {"params": {"min_deposit": 1_000, "min_initial_deposit": 100,
                           "deposit_period_blocks": 3, "voting_period_blocks": VOTING_PERIOD}}})


def used(net: Net) -> list[int]:
    """The request timestamps of the signatures the chain remembers, in key order."""
    state = net.app.store.begin_block()
    return [int.from_bytes(key[len(REQUEST_SIG):len(REQUEST_SIG) + 8], "big")
            for key, _ in state.iterate(REQUEST_SIG)]


def floor(net: Net) -> int:
    return net.app.modules.inference.request_signature_floor(net.app.store.begin_block())


def test_a_signature_is_kept_while_its_request_could_start_and_forgotten_after(net):
    agent, _, first = net.start("first")
    assert net.one(agent.tx(first)).code == 0
    stamped = first.request_timestamp
    net.block([])
    agent, _, second = net.start("second")
    assert net.one(agent.tx(second)).code == 0
    assert used(net) == [stamped, second.request_timestamp]
    # The last block whose time is within the window of the first request keeps it.
    while T0 + net.height + 1 - WINDOW <= stamped:
        net.block([])
    assert used(net) == [stamped, second.request_timestamp]
    assert floor(net) == 0
    net.block([])
    assert used(net) == [second.request_timestamp]
    assert floor(net) == stamped + 1
    while used(net):
        net.block([])
    assert floor(net) == second.request_timestamp + 1
    net.replica()  # a node replaying every block agrees on the app hash


def test_a_wider_window_lets_no_forgotten_signature_start_again(net):
    agent, executor, first = net.start("old")
    assert net.one(agent.tx(first)).code == 0
    stamped = first.request_timestamp
    while used(net):
        net.block([])
    pid = proposal_id(submit(net, net.developer,
                             param("inference", "request_time_window_s", 3_600)))
    assert run_vote(net, pid, [VOTE_OPTION_YES] * 3).status == PROPOSAL_STATUS_PASSED
    net.block([])
    # Stamped before the floor: inside the new window, but the chain can no longer tell
    # whether it was used, so it is refused as stale without touching any balance.
    before = net.balance(net.developer), net.account(net.developer).escrow
    late = start_msg(agent, net.developer, "also-old", executor.address, net.height,
                     stamped, [1, 2, 3, 4])
    refused = net.one(agent.tx(late))
    assert refused.code == 12 and "no longer kept" in refused.log, refused.log
    assert (net.balance(net.developer), net.account(net.developer).escrow) == before
    # A request stamped now starts as before, and its signature cannot be used twice.
    agent, _, fresh = net.start("fresh")
    assert net.one(agent.tx(fresh)).code == 0
    assert used(net) == [fresh.request_timestamp]
    net.replica()
