"""Per-request developer signatures (docs/design.md §3.1), checked by the transfer agent.

The developer signs ``sha256(body) ‖ timestamp ‖ TA address`` with its account key; the
same bytes go on chain in MsgStartInference, where the chain checks them again, so a
signature authorises exactly one request body, to one transfer agent, for a short time.
Headers:
  Authorization: Signature <base64 of the 64-byte r‖s>
  X-Requester-Address: the developer's infer1… address
  X-Requester-Pubkey: base64 of its 33-byte compressed secp256k1 key (the chain may not
                      know it yet: it learns an account's key from its first transaction)
  X-Timestamp: unix seconds
"""

import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from coincurve import PrivateKey

from apinode.openai_errors import ApiError, authentication_failed
from chain.auth import address
from chain.errors import ChainError
from chain.inference.payload import request_message
from chain.tx.signature import verify

SCHEME = "Signature "
ADDRESS_HEADER = "X-Requester-Address"
PUBKEY_HEADER = "X-Requester-Pubkey"
TIMESTAMP_HEADER = "X-Timestamp"


@dataclass(frozen=True)
class SignedRequest:
    """A verified request: everything MsgStartInference needs from the developer.

    A request authorised by a bearer API key has no pubkey, signature or timestamp (empty):
    its start is paid from the developer's allowance for this transfer agent instead.
    """

    developer: str
    pubkey: bytes
    signature: bytes
    timestamp: int
    prompt_hash: bytes


def sign_request(private_key: bytes, body: bytes, transfer_agent: str,
                 timestamp: int | None = None) -> dict[str, str]:
    """The headers a developer adds to one request; low-S, as the chain demands."""
    key = PrivateKey(private_key)
    stamp = int(time.time()) if timestamp is None else timestamp
    message = request_message(hashlib.sha256(body).digest(), stamp, transfer_agent)
    # libsecp256k1 always signs in low-S form; drop the recovery byte to get r‖s.
    signature = key.sign_recoverable(hashlib.sha256(message).digest(), hasher=None)[:64]
    pubkey = key.public_key.format(compressed=True)
    return {"Authorization": SCHEME + base64.b64encode(signature).decode(),
            ADDRESS_HEADER: address.encode(address.from_pubkey(pubkey)),
            PUBKEY_HEADER: base64.b64encode(pubkey).decode(),
            TIMESTAMP_HEADER: str(stamp)}


def is_signed(headers: Mapping[str, str]) -> bool:
    return headers.get("Authorization", "").startswith(SCHEME)


class ReplayGuard:
    """Signatures seen within the freshness window; older ones are refused as stale anyway."""

    def __init__(self, window_s: int, capacity: int = 100_000) -> None:
        self._window = window_s
        self._capacity = capacity
        self._seen: OrderedDict[bytes, int] = OrderedDict()

    def first_use(self, signature: bytes, now: int) -> bool:
        while self._seen and (next(iter(self._seen.values())) < now - 2 * self._window
                              or len(self._seen) >= self._capacity):
            self._seen.popitem(last=False)
        if signature in self._seen:
            return False
        self._seen[signature] = now
        return True


def verify_request(headers: Mapping[str, str], body: bytes, transfer_agent: str,
                   guard: ReplayGuard, window_s: int, now: int | None = None) -> SignedRequest:
    """Checks a signed request or raises the 401 that says what is wrong."""
    now = int(time.time()) if now is None else now
    try:
        signature = base64.b64decode(headers["Authorization"][len(SCHEME):], validate=True)
        pubkey = base64.b64decode(headers[PUBKEY_HEADER], validate=True)
        developer = headers[ADDRESS_HEADER]
        timestamp = int(headers[TIMESTAMP_HEADER])
    except (KeyError, ValueError, binascii.Error) as exc:
        raise authentication_failed(
            f"A signed request needs Authorization: Signature <base64>, {ADDRESS_HEADER}, "
            f"{PUBKEY_HEADER} and {TIMESTAMP_HEADER} headers ({exc}).",
            "invalid_signature") from exc
    if abs(now - timestamp) > window_s:
        raise authentication_failed(f"{TIMESTAMP_HEADER} {timestamp} is more than {window_s}s "
                                    f"from this node's clock ({now}).", "stale_signature")
    try:
        owner = address.encode(address.from_pubkey(pubkey))
        prompt_hash = hashlib.sha256(body).digest()
        valid = owner == developer and verify(
            pubkey, request_message(prompt_hash, timestamp, transfer_agent), signature)
    except ChainError as exc:
        raise authentication_failed(f"Invalid signature: {exc.message}",
                                    "invalid_signature") from exc
    if not valid:
        raise authentication_failed("The request signature does not verify for "
                                    f"{developer} and transfer agent {transfer_agent}.",
                                    "invalid_signature")
    if not guard.first_use(signature, now):
        raise authentication_failed("This request signature was already used.",
                                    "replayed_signature")
    return SignedRequest(developer, pubkey, signature, timestamp, prompt_hash)


def refuse_unsigned() -> ApiError:
    return authentication_failed(
        "Sign each request with your account key (Authorization: Signature ...); see "
        "apinode.openai_signing for a helper that plugs into the openai client.",
        "missing_signature")
