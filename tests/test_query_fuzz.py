"""Every registered query path, fed random requests and random bytes through ABCI Query.

A query is untrusted input and an exception out of ABCI Query stops CometBFT, so whatever
arrives, the answer is code 0 or a clear error code with a log, and the state is untouched.
"""

import pytest
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.any_pb2 import Any as AnyPb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inference_actors import MODEL_ID
from inference_net import Net
from proto_strategies import build, messages

from chain.query import QueryError, abci_log
from chain.services import node_query
from chain.services.tx_service import register_abci_simulate
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.gov_pb2 import (
    PROPOSAL_STATUS_VOTING_PERIOD,
    MsgSubmitProposal,
    RetireModel,
)

# Error codes a query answers with: unknown path, undecodable request, invalid request,
# not found. Code 1 (internal) is a handler bug and fails these tests.
CLEAR_CODES = {0, 2, 6, 18, 38}
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])



@pytest.fixture(scope="module")
def net() -> Net:
    """A chain with participants, a model, one inference and one proposal in its voting
    period, and the node's own queries."""
    chain = Net(extra_state={"gov": {"params": {"min_deposit": 1_000,
                                                "min_initial_deposit": 1_000}}})
    node_query.register(chain.app.queries, chain.app, moniker="fuzz")
    register_abci_simulate(chain.app.queries, chain.app)
    agent, _, start = chain.start("fuzz-inference")
    assert chain.one(agent.tx(start)).code == 0
    content = AnyPb()
    content.Pack(RetireModel(model_id=MODEL_ID), type_url_prefix="/")
    proposal = MsgSubmitProposal(proposer=chain.developer.address, messages=[content],
                                 initial_deposit=1_000, title="retire", summary="fuzz state")
    assert chain.one(chain.developer.tx(proposal)).code == 0
    return chain


def _addresses(chain: Net) -> list[str]:
    real = [a.address for a in chain.all_accounts]
    return [*real, real[0].upper(), real[0][:-1], "cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu",
            "infer1", ""]


def _ask(chain: Net, path: str, data: bytes) -> abci.ResponseQuery:
    before = (chain.app.store.height, chain.app.store.app_hash)
    reply = chain.app.query(abci.RequestQuery(path=path, data=data))
    assert (chain.app.store.height, chain.app.store.app_hash) == before
    assert reply.code in CLEAR_CODES, (path, reply.code, reply.log)
    assert reply.code == 0 or reply.log, (path, reply.code)
    return reply


@FUZZ
@given(data=st.data())
def test_every_query_answers_random_requests_with_a_clear_code(net, data):
    path = data.draw(st.sampled_from(sorted(net.app.queries.methods)), label="path")
    method = net.app.queries.methods[path]
    values = data.draw(messages(method.request_type.DESCRIPTOR, _addresses(net)),
                       label="fields")
    request = build(method.request_type, values)
    if request is None:
        return
    reply = _ask(net, path, request.SerializeToString())
    try:
        direct = net.app.queries.call(path, request)
    except QueryError as exc:
        assert reply.code != 0 and reply.log == abci_log(exc)
    else:
        assert reply.code == 0 and direct.SerializeToString() == reply.value


@FUZZ
@given(data=st.data(), raw=st.binary(max_size=200))
def test_every_query_answers_random_bytes_with_a_clear_code(net, data, raw):
    path = data.draw(st.sampled_from(sorted(net.app.queries.methods)), label="path")
    _ask(net, path, raw)


# Requests that once raised out of ABCI Query (ValueError, OverflowError): each is refused
# with code 18 and a log naming the field.
REFUSED = [
    ("Inferences", q.QueryInferencesRequest(status=256), "status 256"),
    ("Inferences", q.QueryInferencesRequest(status=-1), "status -1"),
    ("Inferences", q.QueryInferencesRequest(status=1, from_height=-5), "from_height -5"),
    ("Inferences", q.QueryInferencesRequest(status=1, from_height=9, to_height=3), "to_height"),
    ("Proposals", q.QueryProposalsRequest(status=1000), "status 1000"),
    ("Proposals", q.QueryProposalsRequest(status=-(1 << 31)), "ProposalStatus"),
    ("Draw", q.QueryDrawRequest(inference_id="x", draw_height=-1), "draw_height -1"),
    ("ValidationTasks", q.QueryValidationTasksRequest(from_height=-(1 << 63)), "from_height"),
    ("Account", q.QueryAccountRequest(address="INFER1QQQQ"), "address"),
    ("PocNonces", q.QueryPocNoncesRequest(participant="nobody"), "participant"),
    ("PendingVotes", q.QueryPendingVotesRequest(voter=""), "voter"),
]


@pytest.mark.parametrize(("name", "request_", "named"), REFUSED,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(REFUSED)])
def test_out_of_range_fields_are_refused_with_code_18(net, name, request_, named):
    reply = _ask(net, f"/inference.v1.Query/{name}", request_.SerializeToString())
    assert reply.code == 18 and reply.codespace == "sdk" and named in reply.log, reply.log


def test_an_address_in_uppercase_is_refused_not_looked_up(net):
    upper = net.parts[0].address.upper()
    reply = _ask(net, "/inference.v1.Query/Participant",
                 q.QueryParticipantRequest(address=upper).SerializeToString())
    assert reply.code == 18 and "canonical" in reply.log


def test_the_proposal_in_its_voting_period_is_listed_by_status(net):
    reply = _ask(net, "/inference.v1.Query/Proposals", q.QueryProposalsRequest(
        status=PROPOSAL_STATUS_VOTING_PERIOD).SerializeToString())
    assert [p.id for p in q.QueryProposalsResponse.FromString(reply.value).proposals] == [1]


def test_the_largest_limit_is_served_up_to_the_cap_not_refused(net):
    reply = _ask(net, "/inference.v1.Query/Inferences", q.QueryInferencesRequest(
        status=1, limit=(1 << 32) - 1).SerializeToString())
    found = q.QueryInferencesResponse.FromString(reply.value).inferences
    assert reply.code == 0 and [i.id for i in found] == [net.ids["fuzz-inference"]]


@pytest.mark.parametrize("name", ["Inferences", "ValidationTasks"])
def test_a_huge_height_range_is_scanned_only_up_to_the_span(net, name):
    request = getattr(q, f"Query{name}Request")(from_height=1, to_height=(1 << 63) - 1)
    assert _ask(net, f"/inference.v1.Query/{name}", request.SerializeToString()).code == 0


@settings(max_examples=100, deadline=None)
@given(path=st.text(max_size=60))
def test_an_unknown_path_is_code_6(net, path):
    if path not in net.app.queries.methods:
        assert _ask(net, path, b"").code == 6


def test_a_handler_that_fails_unexpectedly_answers_internal_and_is_logged_once(net, caplog):
    def broken(state, request):
        raise KeyError("lost")

    net.app.queries.register("/fuzz.v1.Query/Broken", q.QueryStatusRequest,
                             q.QueryStatusResponse, broken)
    try:
        reply = net.app.query(abci.RequestQuery(path="/fuzz.v1.Query/Broken"))
    finally:
        del net.app.queries.methods["/fuzz.v1.Query/Broken"]
    assert (reply.code, reply.codespace) == (1, "sdk")
    assert reply.log == ("rpc error: code = Internal desc = internal error in query "
                         "/fuzz.v1.Query/Broken: KeyError: 'lost'")
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 1 and "Broken" in failures[0].getMessage()
