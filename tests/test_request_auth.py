"""Developer request signatures: what the transfer agent accepts, and what it refuses.

The replay record lives in the API node's store, so these run on SQLite and, when
INFERCHAIN_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

import json
import os
from collections.abc import Iterator

import httpx
import pytest
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey
from local_network import postgres_databases

from apinode.openai_errors import ApiError
from apinode.openai_signing import purpose_of, signed_http_client
from apinode.request_auth import ReplayGuard, sign_request, verify_request
from apinode.store import Base, Database, UsedRequest
from chain.inference.payload import RequestPurpose, request_message
from chain.tx.signature import verify

AGENT = "infer1l3e9pgs3mmwuwrh95fecme0s0qtn28809wentd"
OTHER_AGENT = "infer1evf5078ktqq4c588qamju7m5p90ygr6rdnpdla"
CHAIN = "inferchain-test"
KEY = bytes.fromhex("22" * 32)
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
NOW = 1_800_000_000
WINDOW = 60
INFERENCE = RequestPurpose.INFERENCE
POSTGRES_URL = os.environ.get("INFERCHAIN_TEST_POSTGRES_URL", "")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A database of this module's own on the test server: the store's tests wipe the one
    INFERCHAIN_TEST_POSTGRES_URL names, and `make test`'s parallel workers may run them at the
    same time as these."""
    with postgres_databases(POSTGRES_URL, ["inferchain_test_request_auth"]) as (url,):
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES_URL, reason="INFERCHAIN_TEST_POSTGRES_URL is not set"))])
def url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'node.db'}"
        return
    found = request.getfixturevalue("postgres_url")
    Base.metadata.drop_all(Database.open(found).engine)
    yield found
    Base.metadata.drop_all(Database.open(found).engine)


@pytest.fixture
def guard(url: str) -> Iterator[ReplayGuard]:
    db = Database.open(url)
    yield ReplayGuard(db, WINDOW)
    db.close()


def sign(body: bytes = BODY, **kw) -> dict[str, str]:
    return sign_request(KEY, body, kw.pop("agent", AGENT), kw.pop("chain_id", CHAIN),
                        **{"timestamp": NOW, **kw})


def check(headers, guard: ReplayGuard, body=BODY, agent=AGENT, purpose=INFERENCE, now=NOW,
          chain_id=CHAIN):
    return verify_request(headers, body, agent, chain_id, purpose, guard, WINDOW, now=now)


def refusal(headers, guard: ReplayGuard, **kw) -> ApiError:
    with pytest.raises(ApiError) as err:
        check(headers, guard, **kw)
    assert err.value.status == 401
    assert err.value.body()["error"]["type"] == "invalid_request_error"
    return err.value


def test_a_signed_request_verifies_and_its_signature_is_what_the_chain_checks(guard):
    signed = check(sign(), guard)
    assert signed.developer == str(Address(PrivateKey(KEY).public_key, prefix="infer"))
    message = request_message(CHAIN, INFERENCE, AGENT, signed.prompt_hash, signed.timestamp,
                              signed.nonce)
    assert len(signed.nonce) == 16 and verify(signed.pubkey, message, signed.signature)


def test_a_request_for_n_choices_signs_n_so_the_chain_starts_no_more(guard):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                       "n": 3}).encode()
    signed = check(sign(body), guard, body=body)
    three = request_message(CHAIN, INFERENCE, AGENT, signed.prompt_hash, signed.timestamp,
                            signed.nonce, 3)
    assert verify(signed.pubkey, three, signed.signature)
    for other in (1, 2, 4):
        assert not verify(signed.pubkey, request_message(
            CHAIN, INFERENCE, AGENT, signed.prompt_hash, signed.timestamp, signed.nonce, other),
            signed.signature)


@pytest.mark.parametrize(("tamper", "code"), [
    (lambda h: {**h, "X-Timestamp": str(NOW - 120)}, "stale_signature"),
    (lambda h: {k: v for k, v in h.items() if k != "X-Requester-Pubkey"}, "invalid_signature"),
    (lambda h: {k: v for k, v in h.items() if k != "X-Request-Nonce"}, "invalid_signature"),
    (lambda h: {**h, "X-Request-Nonce": "AAAA"}, "invalid_signature"),
    (lambda h: {**h, "X-Request-Nonce": sign()["X-Request-Nonce"]}, "invalid_signature"),
    (lambda h: {**h, "Authorization": "Signature !!"}, "invalid_signature"),
    (lambda h: {**h, "X-Requester-Address": sign_request(bytes.fromhex("33" * 32), BODY, AGENT,
                                                         CHAIN)["X-Requester-Address"]},
     "invalid_signature"),
    (lambda h: {**h, "X-Timestamp": str(NOW + 1)}, "invalid_signature"),
])
def test_tampered_or_incomplete_headers_are_refused(guard, tamper, code):
    assert refusal(tamper(sign()), guard).code == code


@pytest.mark.parametrize("elsewhere", [
    {"body": BODY + b" "}, {"agent": OTHER_AGENT}, {"chain_id": "other-chain"},
    {"purpose": RequestPurpose.API_KEY}])
def test_a_signature_serves_one_body_agent_chain_and_purpose(guard, elsewhere):
    """A captured completion request presented with another body, at another transfer
    agent, on another chain or at the key endpoint does not verify, and names why."""
    error = refusal(sign(), guard, **elsewhere)
    assert error.code == "invalid_signature"
    assert f"purpose '{elsewhere.get('purpose', INFERENCE)}'" in error.message
    signing = {k: v for k, v in elsewhere.items() if k != "body"}
    assert check(sign(elsewhere.get("body", BODY), **signing), guard,
                 **elsewhere)  # signed for there, it is taken there


def test_a_replayed_request_is_refused_and_the_same_body_signed_again_is_not(guard):
    headers = sign()
    first = check(headers, guard)
    assert refusal(headers, guard).code == "replayed_signature"
    again = check(sign(), guard)  # the same body, the same second, a new nonce
    assert again.prompt_hash == first.prompt_hash and again.signature != first.signature


def test_the_replay_record_outlives_a_restart_for_the_whole_window(url):
    headers = sign()
    first = Database.open(url)
    check(headers, ReplayGuard(first, WINDOW))
    first.close()
    reopened = Database.open(url)
    guard = ReplayGuard(reopened, WINDOW)
    assert refusal(headers, guard, now=NOW + WINDOW).code == "replayed_signature"
    # Past the window the timestamp refuses it, and the record may go.
    assert refusal(headers, guard, now=NOW + WINDOW + 1).code == "stale_signature"
    check(sign(timestamp=NOW + 3 * WINDOW), guard, now=NOW + 3 * WINDOW)  # prunes the old one
    with reopened.session() as session:
        assert session.query(UsedRequest).count() == 1
    reopened.close()


def test_two_guards_on_one_database_take_a_request_once(url):
    """API node processes sharing a database: a request taken by one is a replay at the
    other."""
    one, two = Database.open(url), Database.open(url)
    headers = sign()
    check(headers, ReplayGuard(one, WINDOW))
    assert refusal(headers, ReplayGuard(two, WINDOW)).code == "replayed_signature"
    one.close()
    two.close()


def test_the_openai_http_client_signs_each_request_as_a_new_one(guard):
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(check(request.headers, guard, body=request.content,
                          purpose=purpose_of(request.url.path),
                          now=int(request.headers["X-Timestamp"])))
        return httpx.Response(200, json={})

    client = signed_http_client(KEY, AGENT, CHAIN, transport=httpx.MockTransport(answer))
    for _ in range(2):  # the same body twice within a second: two requests
        client.post("http://ta.example/v1/chat/completions", content=BODY,
                    headers={"Authorization": "Bearer unused"})
    client.post("http://ta.example/v1/inferchain/api-keys", content=b"{}")
    assert len(seen) == 3 and seen[0].prompt_hash == seen[1].prompt_hash
    assert len({s.nonce for s in seen}) == 3


def test_a_database_from_an_older_node_gains_the_replay_table_on_open(url):
    older = Database.open(url)
    UsedRequest.__table__.drop(older.engine)
    older.close()
    upgraded = Database.open(url)
    headers = sign()
    check(headers, ReplayGuard(upgraded, WINDOW))
    assert refusal(headers, ReplayGuard(upgraded, WINDOW)).code == "replayed_signature"
    upgraded.close()
