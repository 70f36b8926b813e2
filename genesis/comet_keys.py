"""CometBFT's ed25519 key files, written byte-compatible with what `cometbft init` produces.

A validator key signs votes (config/priv_validator_key.json, with its double-sign guard in
data/priv_validator_state.json); a node key authenticates P2P connections (config/node_key.json)
and its hash is the node ID that `persistent_peers` names. Both are ed25519 (PyNaCl).
"""

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

PUB_KEY_TYPE = "tendermint/PubKeyEd25519"
PRIV_KEY_TYPE = "tendermint/PrivKeyEd25519"


def validator_address(pub_key: bytes) -> str:
    """CometBFT's validator address: upper-case hex of sha256(pubkey)[:20]."""
    return hashlib.sha256(pub_key).digest()[:20].hex().upper()


def node_id(pub_key: bytes) -> str:
    """CometBFT's P2P node ID: lower-case hex of sha256(pubkey)[:20]."""
    return hashlib.sha256(pub_key).digest()[:20].hex()


def pub_key_json(pub_key: bytes) -> dict[str, str]:
    """The amino-JSON public key object used in genesis validators and priv_validator_key.json."""
    return {"type": PUB_KEY_TYPE, "value": base64.b64encode(pub_key).decode()}


@dataclass(frozen=True)
class Ed25519Key:
    """An ed25519 key pair kept as its 32-byte seed; everything else is derived from it."""

    seed: bytes

    @classmethod
    def generate(cls) -> "Ed25519Key":
        """A fresh key from the OS's random source."""
        return cls(seed=bytes(SigningKey.generate()))

    @property
    def public_key(self) -> bytes:
        """The 32-byte public key."""
        return bytes(SigningKey(self.seed).verify_key)

    def priv_key_json(self) -> dict[str, str]:
        """Go's ed25519 private key is seed‖pubkey (64 bytes); CometBFT stores exactly that."""
        value = base64.b64encode(self.seed + self.public_key).decode()
        return {"type": PRIV_KEY_TYPE, "value": value}


def _write_private_json(path: Path, obj: object) -> Path:
    """Key files are 0600 like CometBFT's own, and created fresh so no old key is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(obj, indent=2))
    return path


def write_priv_validator_key(home: Path, key: Ed25519Key) -> Path:
    """Writes HOME/config/priv_validator_key.json for `key`."""
    return _write_private_json(home / "config" / "priv_validator_key.json", {
        "address": validator_address(key.public_key),
        "pub_key": pub_key_json(key.public_key),
        "priv_key": key.priv_key_json(),
    })


def write_priv_validator_state(home: Path) -> Path:
    """Writes HOME/data/priv_validator_state.json at height 0: nothing signed yet."""
    return _write_private_json(home / "data" / "priv_validator_state.json",
                               {"height": "0", "round": 0, "step": 0})


def write_node_key(home: Path, key: Ed25519Key) -> Path:
    """Writes HOME/config/node_key.json for `key`."""
    return _write_private_json(home / "config" / "node_key.json", {"priv_key": key.priv_key_json()})


def read_priv_validator_key(path: Path) -> SigningKey:
    """The signing key of a CometBFT priv_validator_key.json, refused unless its private key
    (Go's seed ‖ public key) and its public key belong together."""
    keys = json.loads(path.read_text())
    private = base64.b64decode(keys["priv_key"]["value"])
    key = SigningKey(private[:32])
    if len(private) != 64 or bytes(key.verify_key) != base64.b64decode(keys["pub_key"]["value"]):
        raise ValueError(f"{path}: not a CometBFT ed25519 validator key pair")
    return key
