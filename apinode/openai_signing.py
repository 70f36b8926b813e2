"""Plugs per-request signatures into the official ``openai`` client (docs/design.md §3.1).

    client = openai.OpenAI(base_url=..., api_key="unused",
                           http_client=signed_http_client(private_key, transfer_agent, chain_id))

Every request is signed as it is sent, with a fresh nonce, so retries, streaming and the same
body sent again all work: each is a request of its own.
"""

from collections.abc import Generator

import httpx

from apinode.request_auth import API_KEYS_PATH, sign_request
from chain.inference.payload import RequestPurpose


def purpose_of(path: str) -> RequestPurpose:
    """The purpose a request to ``path`` is signed for: the transfer agent checks the same."""
    return RequestPurpose.API_KEY if path.endswith(API_KEYS_PATH) else RequestPurpose.INFERENCE


class SignedRequests(httpx.Auth):
    requires_request_body = True

    def __init__(self, private_key: bytes, transfer_agent: str, chain_id: str) -> None:
        self._key = private_key
        self._agent = transfer_agent
        self._chain_id = chain_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers.update(sign_request(self._key, request.content, self._agent,
                                            self._chain_id, purpose_of(request.url.path)))
        yield request


def signed_http_client(private_key: bytes, transfer_agent: str, chain_id: str,
                       **kwargs: object) -> httpx.Client:
    return httpx.Client(auth=SignedRequests(private_key, transfer_agent, chain_id), **kwargs)
