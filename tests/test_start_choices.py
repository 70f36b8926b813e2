"""A start's logit transform and choices through the chain's real handlers, block by block:
the bounds a start is held to, the transform recorded for validators, and the n starts one
signed request may lead to (one per choice index, never more)."""

import math

import pytest
from inference_actors import start_msg
from inference_net import T0, Net

from chain.query import QueryError
from inferchain_pb.inference.v1.inference_pb2 import STARTED, LogitBias, MsgStartInference

INVALID_SAMPLING = 18
BAD_SIGNATURE = 9
DUPLICATE_START = 6


@pytest.fixture
def net() -> Net:
    return Net()


def choice_start(net: Net, label: str, choice: int, choices: int,
                 **kw: object) -> tuple:
    """(agent, start) for choice ``choice`` of the request ``label`` the developer signed for
    ``choices`` completions at one transfer agent, run by the executor its id draws."""
    agent, stamp = net.parts[0], T0 + net.height
    probe = start_msg(agent, net.developer, label, agent.address, net.height, stamp,
                      [1, 2, 3, 4], choice=choice, choices=choices)
    executor = net.draw_at(probe.inference_id, net.height)[0]
    return agent, start_msg(agent, net.developer, label, executor, net.height, stamp,
                            [1, 2, 3, 4], choice=choice, choices=choices, **kw)


def bias(*pairs: tuple[int, float]) -> list[LogitBias]:
    return [LogitBias(token_id=t, bias=b) for t, b in pairs]


BAD_TRANSFORMS = [
    ({"presence_penalty": 2.5}, "presence_penalty must be in [-2, 2]"),
    ({"frequency_penalty": -2.01}, "frequency_penalty must be in [-2, 2]"),
    ({"frequency_penalty": math.nan}, "frequency_penalty must be in [-2, 2]"),
    ({"presence_penalty": math.inf}, "presence_penalty must be in [-2, 2]"),
    ({"logit_bias": bias((5, 100.5))}, "logit biases must be in [-100, 100]"),
    ({"logit_bias": bias((5, -math.inf))}, "logit biases must be in [-100, 100]"),
    ({"logit_bias": bias((9, 1.0), (5, 1.0))}, "strictly ascending"),
    ({"logit_bias": bias((5, 1.0), (5, 2.0))}, "strictly ascending"),
    ({"logit_bias": bias(*((t, 1.0) for t in range(301)))}, "at most 300 logit biases"),
]


@pytest.mark.parametrize(("transform", "fragment"), BAD_TRANSFORMS)
def test_a_start_with_a_transform_out_of_bounds_is_refused_and_changes_nothing(
        net, transform, fragment):
    agent, _, start = net.start("bounds", **transform)
    before = net.balance(net.developer)
    result = net.one(agent.tx(start))
    assert (result.code, result.codespace) == (INVALID_SAMPLING, "inference"), result.log
    assert fragment in result.log
    assert net.balance(net.developer) == before
    with pytest.raises(QueryError, match="not found"):
        net.inference("bounds")
    net.assert_conserved()


def test_a_start_records_its_transform_for_the_validators_and_the_agent_signs_it(net):
    transform = {"presence_penalty": 0.5, "frequency_penalty": -1.25,
                 "logit_bias": bias((3, -100.0), (7, 2.5), (49151, 100.0))}
    agent, _, start = net.start("transform", **transform)
    tampered = MsgStartInference()
    tampered.CopyFrom(start)
    tampered.frequency_penalty = 0.0
    refused = net.one(agent.tx(tampered))
    assert refused.code == BAD_SIGNATURE and "node-key signature" in refused.log
    tampered.CopyFrom(start)
    del tampered.logit_bias[1]
    assert net.one(agent.tx(tampered)).code == BAD_SIGNATURE
    assert net.one(agent.tx(start)).code == 0
    recorded = net.inference("transform")
    assert recorded.status == STARTED
    assert (recorded.presence_penalty, recorded.frequency_penalty) == (0.5, -1.25)
    assert [(b.token_id, b.bias) for b in recorded.logit_bias] == [
        (3, -100.0), (7, 2.5), (49151, 100.0)]


def test_one_signed_request_for_three_choices_starts_three_inferences_and_no_fourth():
    net = Net(expiration_blocks=100)
    before = net.balance(net.developer)
    # Everything below is the one request the developer signed, at one timestamp.
    starts = [choice_start(net, "three", i, 3) for i in range(3)]
    _, fourth = choice_start(net, "three", 3, 3)
    _, inflated = choice_start(net, "three", 3, 4, signed_choices=3)
    _, single = choice_start(net, "three", 0, 0, signed_choices=3)
    agent = net.parts[0]
    assert len({start.inference_id for _, start in starts}) == 3
    assert len({start.request_signature for _, start in starts}) == 1
    for _, start in starts:
        result = net.one(agent.tx(start))
        assert result.code == 0, result.log
        assert net.inference(start.inference_id).status == STARTED
    escrow = net.account(net.developer).escrow
    assert escrow == 3 * net.inference(starts[0][1].inference_id).escrow
    assert net.balance(net.developer) == before - escrow

    result = net.one(agent.tx(fourth))
    assert result.code == INVALID_SAMPLING and "not below the request's 3 choices" in result.log
    # Claiming the request asked for more choices breaks the developer's signature.
    result = net.one(agent.tx(inflated))
    assert result.code == BAD_SIGNATURE and "request signature" in result.log
    # Nor can the signature serve as a request for one completion.
    assert net.one(agent.tx(single)).code == BAD_SIGNATURE
    # An index already started cannot be started again.
    assert net.one(agent.tx(starts[1][1])).code == DUPLICATE_START
    assert net.account(net.developer).escrow == escrow
    assert net.balance(net.developer) == before - escrow
    net.assert_conserved()


def test_a_start_for_more_choices_than_the_chain_allows_is_refused(net):
    agent, start = choice_start(net, "nine", 0, 9)
    result = net.one(agent.tx(start))
    assert result.code == INVALID_SAMPLING and "at most 8 choices" in result.log
