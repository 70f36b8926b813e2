"""The genesis a joining node takes from the network it joins: read from a file, or fetched
from a running peer's CometBFT RPC (``/genesis``), and held to the chain id and genesis hash
the network published, so a new node never starts on another chain's history.

The genesis hash is sha256 over the document's canonical JSON (keys sorted, no whitespace,
UTF-8), not over the file's bytes: a peer's RPC serves the document re-encoded by Go, so only
a hash of the content names the same genesis whichever way it was obtained.
"""

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

FETCH_TIMEOUT_S = 10.0
HASH_LENGTH = 64


class GenesisRefused(ValueError):
    """The genesis could not be had, or is not the network's the operator named."""


def genesis_hash(genesis: dict[str, Any]) -> str:
    """The hex sha256 of the document's canonical JSON (see the module docstring)."""
    canonical = json.dumps(genesis, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_genesis(path: Path) -> dict[str, Any]:
    """The genesis document in ``path``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenesisRefused(f"genesis file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise GenesisRefused(f"genesis file {path} is not a JSON document: {exc}") from None
    return _document(document, str(path))


def fetch_genesis(rpc_url: str, timeout: float = FETCH_TIMEOUT_S) -> dict[str, Any]:
    """The genesis a peer's CometBFT RPC serves at ``rpc_url`` (its base URL, or its
    ``/genesis`` URL)."""
    base = rpc_url.rstrip("/")
    base = base.removesuffix("/genesis")
    answer = query_peer_rpc(base, "genesis", "--genesis-from", timeout)
    genesis = answer.get("genesis")
    if genesis is None:
        raise GenesisRefused(f"the peer at {base}/genesis served no genesis document "
                             f"(answer: {str(answer)[:200]})")
    return _document(genesis, f"{base}/genesis")


def query_peer_rpc(rpc_url: str, path: str, flag: str,
                   timeout: float = FETCH_TIMEOUT_S) -> dict[str, Any]:
    """The ``result`` of a peer's CometBFT RPC at ``rpc_url``/``path``; every way of failing
    is a GenesisRefused naming ``flag``, the option the operator gave the URL with."""
    base = rpc_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise GenesisRefused(f"{flag} {rpc_url!r} is not an http(s) URL of a CometBFT "
                             f"RPC, e.g. http://peer.example.org:26657")
    url = f"{base}/{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            answer = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        raise GenesisRefused(f"the peer at {url} answered HTTP {exc.code}{_rpc_error(exc)}"
                             ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GenesisRefused(f"cannot reach the peer's RPC at {url} ({reason}); check "
                             f"{flag}") from None
    except ValueError:
        raise GenesisRefused(f"the peer at {url} did not answer JSON; is it a CometBFT "
                             f"RPC?") from None
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, dict):
        raise GenesisRefused(f"the peer at {url} answered no result "
                             f"(answer: {str(answer)[:200]})")
    return result


def _rpc_error(exc: urllib.error.HTTPError) -> str:
    """CometBFT's own words for a refused request (e.g. a height it does not hold), which it
    sends as a JSON-RPC error with the HTTP error; other servers' pages are not repeated."""
    try:
        error = json.loads(exc.read()).get("error", {})
        return f": {error.get('message', '')} {error.get('data', '')}".rstrip()
    except (OSError, ValueError, AttributeError):
        return "; is it a CometBFT RPC?"


def check_genesis(genesis: dict[str, Any], chain_id: str, expected_hash: str) -> None:
    """Refuses a genesis of another chain, or one whose hash is not the one published."""
    found = genesis.get("chain_id")
    if found != chain_id:
        raise GenesisRefused(f"the genesis is for chain {found!r}, not {chain_id!r}: wrong "
                             f"--chain-id, or a genesis of another network")
    wanted = expected_hash.strip().lower()
    if len(wanted) != HASH_LENGTH or any(c not in "0123456789abcdef" for c in wanted):
        raise GenesisRefused(f"--genesis-hash {expected_hash!r} is not a sha256 in hex "
                             f"({HASH_LENGTH} digits)")
    actual = genesis_hash(genesis)
    if actual != wanted:
        raise GenesisRefused(f"the genesis of chain {chain_id!r} has hash {actual}, not the "
                             f"expected {wanted}: it is not the network's genesis")


def _document(document: object, source: str) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("chain_id"), str) \
            or not isinstance(document.get("app_state"), dict):
        raise GenesisRefused(f"{source} is not a genesis document (no chain_id or app_state)")
    return document
