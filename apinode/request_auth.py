"""Per-request developer signatures (docs/design.md §3.1), checked by the transfer agent.

The developer signs ``chain.inference.payload.request_message``: the chain id, the request's
purpose (an inference, or an API key), the TA's address, sha256(body), a timestamp and a random
nonce, with its account key. An inference's signature goes on chain in MsgStartInference, where
the chain checks the same bytes again, so a signature authorises exactly one request body, for
one purpose, to one transfer agent of one chain, once, for a short time. A body asking for
``n`` > 1 completions signs ``n`` too; the chain starts one inference per choice index.
Headers:
  Authorization: Signature <base64 of the 64-byte r‖s>
  X-Requester-Address: the developer's infer1… address
  X-Requester-Pubkey: base64 of its 33-byte compressed secp256k1 key (the chain may not
                      know it yet: it learns an account's key from its first transaction)
  X-Timestamp: unix seconds
  X-Request-Nonce: base64 of 16 random bytes
"""

import base64
import binascii
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from coincurve import PrivateKey
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from apinode.openai_errors import ApiError, authentication_failed
from apinode.store import Database, UsedRequest
from chain.auth import address
from chain.errors import ChainError
from chain.inference.payload import REQUEST_NONCE_BYTES, RequestPurpose, request_message
from chain.tx.signature import verify

SCHEME = "Signature "
ADDRESS_HEADER = "X-Requester-Address"
PUBKEY_HEADER = "X-Requester-Pubkey"
TIMESTAMP_HEADER = "X-Timestamp"
NONCE_HEADER = "X-Request-Nonce"
API_KEYS_PATH = "/v1/inferchain/api-keys"  # the endpoint that takes RequestPurpose.API_KEY
PRUNE_EVERY_S = 60


@dataclass(frozen=True)
class SignedRequest:
    """A verified request: everything MsgStartInference needs from the developer.

    A request authorised by a bearer API key has no pubkey, signature, timestamp or nonce
    (empty): its start is paid from the developer's allowance for this transfer agent instead.
    """

    developer: str
    pubkey: bytes
    signature: bytes
    timestamp: int
    prompt_hash: bytes
    nonce: bytes = b""


def requested_choices(body: bytes, purpose: RequestPurpose) -> int:
    """How many completions (OpenAI's ``n``) an inference request body asks for, as both the
    developer and the transfer agent read it for the signed message: 1 for anything else (a
    body that does not parse is refused before its signature matters)."""
    if purpose is not RequestPurpose.INFERENCE:
        return 1
    try:
        n = json.loads(body).get("n")
    except (ValueError, AttributeError, RecursionError):
        return 1
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def sign_request(private_key: bytes, body: bytes, transfer_agent: str, chain_id: str,
                 purpose: RequestPurpose = RequestPurpose.INFERENCE,
                 timestamp: int | None = None, nonce: bytes | None = None) -> dict[str, str]:
    """The headers a developer adds to one request; low-S, as the chain demands. A fresh
    random nonce each call: signing one body twice gives two distinct requests."""
    key = PrivateKey(private_key)
    stamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_bytes(REQUEST_NONCE_BYTES) if nonce is None else nonce
    message = request_message(chain_id, purpose, transfer_agent, hashlib.sha256(body).digest(),
                              stamp, nonce, requested_choices(body, purpose))
    # libsecp256k1 always signs in low-S form; drop the recovery byte to get r‖s.
    signature = key.sign_recoverable(hashlib.sha256(message).digest(), hasher=None)[:64]
    pubkey = key.public_key.format(compressed=True)
    return {"Authorization": SCHEME + base64.b64encode(signature).decode(),
            ADDRESS_HEADER: address.encode(address.from_pubkey(pubkey)),
            PUBKEY_HEADER: base64.b64encode(pubkey).decode(),
            TIMESTAMP_HEADER: str(stamp),
            NONCE_HEADER: base64.b64encode(nonce).decode()}


def is_signed(headers: Mapping[str, str]) -> bool:
    return headers.get("Authorization", "").startswith(SCHEME)


class ReplayGuard:
    """The signed requests this transfer agent took, kept in its store until their timestamps
    leave the freshness window (after that the timestamp check refuses them): a replay is
    refused after a restart, and by every API node process that shares the database."""

    def __init__(self, db: Database, window_s: int) -> None:
        self._db = db
        self._window = window_s
        self._pruned_at = 0

    def first_use(self, message: bytes, developer: str, timestamp: int, now: int) -> bool:
        """Records the signed message; False if it was recorded before."""
        expires = datetime.fromtimestamp(max(timestamp, now) + self._window, UTC)
        digest = hashlib.sha256(message).hexdigest()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._prune(now)
        try:
            with self._db.session() as session:
                session.add(UsedRequest(digest=digest, developer=developer, expires_at=expires))
        except IntegrityError:
            return False
        return True

    def _prune(self, now: int) -> None:
        with self._db.session() as session:
            session.execute(delete(UsedRequest).where(
                UsedRequest.expires_at < datetime.fromtimestamp(now, UTC)))
        self._pruned_at = now


def verify_request(headers: Mapping[str, str], body: bytes, transfer_agent: str, chain_id: str,
                   purpose: RequestPurpose, guard: ReplayGuard, window_s: int,
                   now: int | None = None) -> SignedRequest:
    """Checks a signed request or raises the 401 that says what is wrong. Blocking (a
    signature check and a database write): call it off the event loop."""
    now = int(time.time()) if now is None else now
    try:
        signature = base64.b64decode(headers["Authorization"][len(SCHEME):], validate=True)
        pubkey = base64.b64decode(headers[PUBKEY_HEADER], validate=True)
        developer = headers[ADDRESS_HEADER]
        timestamp = int(headers[TIMESTAMP_HEADER])
        nonce = base64.b64decode(headers[NONCE_HEADER], validate=True)
    except (KeyError, ValueError, binascii.Error) as exc:
        raise authentication_failed(
            f"A signed request needs Authorization: Signature <base64>, {ADDRESS_HEADER}, "
            f"{PUBKEY_HEADER}, {TIMESTAMP_HEADER} and {NONCE_HEADER} headers ({exc}).",
            "invalid_signature") from exc
    if len(nonce) != REQUEST_NONCE_BYTES:
        raise authentication_failed(f"{NONCE_HEADER} must be {REQUEST_NONCE_BYTES} bytes, "
                                    f"base64-encoded.", "invalid_signature")
    if abs(now - timestamp) > window_s:
        raise authentication_failed(f"{TIMESTAMP_HEADER} {timestamp} is more than {window_s}s "
                                    f"from this node's clock ({now}).", "stale_signature")
    prompt_hash = hashlib.sha256(body).digest()
    message = request_message(chain_id, purpose, transfer_agent, prompt_hash, timestamp, nonce,
                              requested_choices(body, purpose))
    try:
        owner = address.encode(address.from_pubkey(pubkey))
        valid = owner == developer and verify(pubkey, message, signature)
    except ChainError as exc:
        raise authentication_failed(f"Invalid signature: {exc.message}",
                                    "invalid_signature") from exc
    if not valid:
        raise authentication_failed(
            f"The request signature does not verify for {developer}, purpose {purpose.value!r}, "
            f"transfer agent {transfer_agent} on chain {chain_id}.", "invalid_signature")
    if not guard.first_use(message, developer, timestamp, now):
        raise authentication_failed("This request signature was already used.",
                                    "replayed_signature")
    return SignedRequest(developer, pubkey, signature, timestamp, prompt_hash, nonce)


def refuse_unsigned() -> ApiError:
    return authentication_failed(
        "Sign each request with your account key (Authorization: Signature ...); see "
        "apinode.openai_signing for a helper that plugs into the openai client.",
        "missing_signature")
