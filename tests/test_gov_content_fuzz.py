"""Proposal contents fed by hypothesis, through real MsgSubmitProposal transactions.

A proposal's contents are Any messages from an untrusted proposer: whatever type URL and
bytes they carry, submission either accepts the proposal or refuses the tx with a clear gov
error; it never fails internally, and CheckTx never does either.
"""

import json

import pytest
from google.protobuf.any_pb2 import Any as AnyPb
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from inference_net import Net

from chain.gov.errors import SPACE
from inferchain_pb.inference.v1.gov_pb2 import (
    MsgSubmitProposal,
    ParamChange,
    RegisterModel,
    RetireModel,
    SoftwareUpgrade,
    UpdateModel,
)

CONTENT_TYPES = [ParamChange, RegisterModel, UpdateModel, RetireModel, SoftwareUpgrade]
TYPE_URLS = ["/" + t.DESCRIPTOR.full_name for t in CONTENT_TYPES]
MODULES = ["auth", "bank", "epochs", "gov", "inference", "validation", "", "nope"]
MIN_DEPOSIT = 1_000
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=10)
value_jsons = st.one_of(json_values.map(json.dumps), st.text(max_size=40),
                        st.sampled_from(["[" * 5000, "{\"a\":" * 3000, "1e999999", "NaN"]))
param_changes = st.builds(ParamChange, module=st.sampled_from(MODULES),
                          param=st.text(max_size=30) | st.sampled_from(
                              ["min_deposit", "expiration_blocks", "epoch_length_blocks",
                               "max_memo_characters", "tx_sig_limit"]),
                          value_json=value_jsons)
# Raw bytes under a known type URL, a real message under a random one, or both random.
contents = st.one_of(
    st.tuples(st.sampled_from(TYPE_URLS), st.binary(max_size=120)),
    st.tuples(st.just(TYPE_URLS[0]), param_changes.map(ParamChange.SerializeToString)),
    st.tuples(st.text(max_size=60), st.binary(max_size=60)),
)


@pytest.fixture(scope="module")
def net() -> Net:
    return Net(2, extra_state={"gov": {"params": {"min_deposit": MIN_DEPOSIT,
                                                  "min_initial_deposit": MIN_DEPOSIT}}})


def _submit(net: Net, packed: list[tuple[str, bytes]]):
    proposer = net.developer
    result = net.one(proposer.tx(MsgSubmitProposal(
        proposer=proposer.address, messages=[AnyPb(type_url=u, value=v) for u, v in packed],
        initial_deposit=MIN_DEPOSIT, title="fuzz", summary="random contents")))
    if result.code != 0:  # a refused tx still takes its fee and sequence
        assert "internal error" not in result.log, result.log
        assert result.codespace in (SPACE, "sdk") and result.log, (result.codespace, result.log)
    return result


@FUZZ
@given(packed=st.lists(contents, min_size=1, max_size=3))
@example(packed=[(TYPE_URLS[0], ParamChange(module="gov", param="min_deposit",
                                            value_json="[" * 5000).SerializeToString())])
@example(packed=[(TYPE_URLS[0], ParamChange(module="inference", param="expiration_blocks",
                                            value_json="{\"a\":" * 3000).SerializeToString())])
@example(packed=[(TYPE_URLS[1], b"\x0a\xff")])
@example(packed=[("", b"")])
def test_random_contents_are_accepted_or_refused_with_a_clear_gov_error(net, packed):
    _submit(net, packed)


def test_an_unknown_content_type_is_refused_with_invalid_content(net):
    result = _submit(net, [("/cosmos.bank.v1beta1.MsgSend", b"")])
    assert (result.codespace, result.code) == (SPACE, 3)
    assert "unknown content type" in result.log
