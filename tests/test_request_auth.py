"""Developer request signatures: what the transfer agent accepts, and what it refuses."""

import json

import httpx
import pytest
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey

from apinode.openai_errors import ApiError
from apinode.openai_signing import signed_http_client
from apinode.request_auth import ReplayGuard, sign_request, verify_request
from chain.inference.payload import request_message
from chain.tx.signature import verify

AGENT = "infer1l3e9pgs3mmwuwrh95fecme0s0qtn28809wentd"
KEY = bytes.fromhex("22" * 32)
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
NOW = 1_800_000_000


def check(headers, body=BODY, agent=AGENT, guard=None, now=NOW):
    return verify_request(headers, body, agent, guard or ReplayGuard(60), 60, now=now)


def refusal(headers, **kw) -> ApiError:
    with pytest.raises(ApiError) as err:
        check(headers, **kw)
    assert err.value.status == 401
    return err.value


def test_a_signed_request_verifies_and_its_signature_is_what_the_chain_checks():
    signed = check(sign_request(KEY, BODY, AGENT, NOW))
    assert signed.developer == str(Address(PrivateKey(KEY).public_key, prefix="infer"))
    message = request_message(signed.prompt_hash, signed.timestamp, AGENT)
    assert verify(signed.pubkey, message, signed.signature)


@pytest.mark.parametrize(("tamper", "code"), [
    (lambda h: {**h, "X-Timestamp": str(NOW - 120)}, "stale_signature"),
    (lambda h: {k: v for k, v in h.items() if k != "X-Requester-Pubkey"}, "invalid_signature"),
    (lambda h: {**h, "Authorization": "Signature !!"}, "invalid_signature"),
    (lambda h: {**h, "X-Requester-Address": sign_request(bytes.fromhex("33" * 32), BODY, AGENT,
                                                         NOW)["X-Requester-Address"]},
     "invalid_signature"),
    (lambda h: {**h, "X-Timestamp": str(NOW + 1)}, "invalid_signature"),
])
def test_tampered_or_incomplete_headers_are_refused(tamper, code):
    assert refusal(tamper(sign_request(KEY, BODY, AGENT, NOW))).code == code


def test_another_body_or_another_agent_does_not_verify():
    headers = sign_request(KEY, BODY, AGENT, NOW)
    assert refusal(headers, body=BODY + b" ").code == "invalid_signature"
    other = "infer1evf5078ktqq4c588qamju7m5p90ygr6rdnpdla"
    assert refusal(headers, agent=other).code == "invalid_signature"


def test_a_replayed_signature_is_refused():
    guard = ReplayGuard(60)
    headers = sign_request(KEY, BODY, AGENT, NOW)
    check(headers, guard=guard)
    assert refusal(headers, guard=guard).code == "replayed_signature"


def test_the_openai_http_client_helper_signs_each_body_it_sends():
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(check(request.headers, body=request.content,
                          now=int(request.headers["X-Timestamp"])))
        return httpx.Response(200, json={})

    client = signed_http_client(KEY, AGENT, transport=httpx.MockTransport(answer))
    client.post("http://ta.example/v1/chat/completions", content=BODY,
                headers={"Authorization": "Bearer unused"})
    client.post("http://ta.example/v1/chat/completions", content=BODY + b"\n")
    assert len(seen) == 2 and seen[0].prompt_hash != seen[1].prompt_hash
