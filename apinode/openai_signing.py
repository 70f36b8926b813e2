"""Plugs per-request signatures into the official ``openai`` client (docs/design.md §3.1).

    client = openai.OpenAI(base_url=..., api_key="unused",
                           http_client=signed_http_client(private_key, transfer_agent))

Every request body is signed as it is sent, so retries and streaming work unchanged.
"""

from collections.abc import Generator

import httpx

from apinode.request_auth import sign_request


class SignedRequests(httpx.Auth):
    requires_request_body = True

    def __init__(self, private_key: bytes, transfer_agent: str) -> None:
        self._key = private_key
        self._agent = transfer_agent

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers.update(sign_request(self._key, request.content, self._agent))
        yield request


def signed_http_client(private_key: bytes, transfer_agent: str, **kwargs: object
                       ) -> httpx.Client:
    return httpx.Client(auth=SignedRequests(private_key, transfer_agent), **kwargs)
