"""Errors in OpenAI's shape, so the official clients raise their usual exception classes.

OpenAI answers every failure with ``{"error": {"message", "type", "param", "code"}}`` and an
HTTP status; the ``openai`` client picks its exception class from the status alone and shows
the message. We keep OpenAI's own ``type`` and ``code`` strings wherever OpenAI has one for the
same situation, so tools that match on them keep working:

- 400 ``invalid_request_error`` with codes such as ``invalid_type``, ``invalid_value``,
  ``empty_array``, ``missing_required_parameter`` and ``context_length_exceeded``;
- 401 ``invalid_request_error`` / ``invalid_api_key`` (OpenAI has no ``authentication_error``
  type; signature failures reuse the type with codes of our own);
- 404 ``invalid_request_error`` / ``model_not_found``, and ``invalid_url`` for a route the
  node does not serve (``/v1/embeddings`` among them: the network serves generation);
- 429 ``requests`` / ``rate_limit_exceeded``.

Where OpenAI has no equivalent we chose: 402 for an on-chain balance too small for the escrow
(OpenAI signals its own ``insufficient_quota`` with a 429; we keep that type and code but use
402, since retrying does not help), 413 ``request_too_large`` for a body over
the size limit, 503 ``server_error`` / ``no_executor`` when no participant serves the model,
and 503 ``server_error`` with ``chain_unavailable``, ``mlnode_unavailable`` or
``store_unavailable`` while the node cannot reach its own chain node, ML node or database, and
``chain_stalled`` while the chain makes no block, and ``commitment_refused`` when the chain
refuses to take an API-key request's commitment: the client's retries, or another
participant's endpoint, get an answer, and nothing was billed.
"""

from typing import Any


class ApiError(Exception):
    """A failure the endpoint reports to the developer as-is."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = error_type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def context_length_exceeded(context_length: int, prompt_tokens: int, max_tokens: int,
                            param: str) -> ApiError:
    """OpenAI's wording, which tells the developer which of the two numbers to cut."""
    return invalid_request(
        f"This model's maximum context length is {context_length} tokens. However, you "
        f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the {param}, "
        f"{max_tokens} in the completion). Please reduce the length of the {param} or "
        f"completion.", param=param, code="context_length_exceeded")


def request_too_large(limit_bytes: int) -> ApiError:
    return ApiError(413, f"Request body is larger than {limit_bytes} bytes.",
                    code="request_too_large")


def authentication_failed(message: str, code: str = "invalid_api_key") -> ApiError:
    """Bad or missing key, or a bad, stale or replayed signature (``code`` says which)."""
    return ApiError(401, message, code=code)


def insufficient_balance(message: str) -> ApiError:
    return ApiError(402, message, error_type="insufficient_quota", code="insufficient_quota")


def invalid_url(method: str, path: str) -> ApiError:
    """OpenAI's answer to a route it does not have, so ``openai`` raises ``NotFoundError``."""
    return ApiError(404, f"Invalid URL ({method} {path}): this network serves chat and text "
                    "completions and the model list only.", code="invalid_url")


def model_not_found(model: str) -> ApiError:
    return ApiError(404, f"The model `{model}` does not exist or is not served by this "
                    "network.", param="model", code="model_not_found")


def rate_limited(message: str) -> ApiError:
    return ApiError(429, message, error_type="requests", code="rate_limit_exceeded")


def no_executor(model: str, reason: str = "") -> ApiError:
    """``reason``: the chain's word on why its draw has nobody, when it gave one (say, that
    no second validator serves the model, so nobody could check the answer)."""
    because = f" ({reason})" if reason else ""
    return ApiError(503, f"No participant can serve `{model}` right now{because}; try again "
                    "later.", error_type="server_error", code="no_executor")


def unavailable(part: str, code: str) -> ApiError:
    """One of the node's own parts (its chain node, ML node or store) does not answer."""
    return ApiError(503, f"This node cannot reach its {part} just now; try again shortly, or "
                         "through another participant.", error_type="server_error", code=code)


def commitment_refused(reason: str) -> ApiError:
    """The chain refused this transfer agent's commitment of an API-key request (its forfeit
    unpaid, say): nothing was billed, and another participant's endpoint may serve it."""
    return ApiError(503, f"This node could not commit the request on chain ({reason[:200]}); "
                         "try again later, or through another participant.",
                    error_type="server_error", code="commitment_refused")


def chain_stalled(waited_s: float) -> ApiError:
    return ApiError(503, f"The chain has made no block for the request in {waited_s:g}s; try "
                         "again later.", error_type="server_error", code="chain_stalled")
