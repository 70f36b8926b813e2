"""Account keys kept in the client home, one JSON file per key under ``keyring-<backend>/``.

Two backends, as a Cosmos keyring has them:

- ``file``: the private key is sealed with PyNaCl's SecretBox (XSalsa20-Poly1305) under a key
  derived from the keyring passphrase with Argon2id (libsodium's ``pwhash``); the KDF limits and
  salt are stored with each key. One keyring has one passphrase: adding a key checks the
  passphrase against a key already there.
- ``test``: the private key is stored in the clear. For tests and throw-away networks only; the
  directory name says so, as Cosmos's ``keyring-test`` does.

The address and public key are stored in the clear in both, so listing and showing keys needs
no passphrase; signing does. Files are owner-only (0600, directory 0700).
"""

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.mnemonic import generate_mnemonic, validate_mnemonic_and_normalise

from client.errors import CliError
from genesis.addresses import ACCOUNT_PREFIX

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSPHRASE = 8
KDF = nacl.pwhash.argon2id


@dataclass(frozen=True)
class KeyInfo:
    """What the keyring tells without a passphrase."""

    name: str
    address: str
    pubkey: bytes

    def public(self) -> dict[str, str]:
        return {"name": self.name, "type": "local", "address": self.address,
                "pubkey": base64.b64encode(self.pubkey).decode()}


def new_mnemonic() -> str:
    """24 BIP-39 words; the key is derived on Cosmos's path m/44'/118'/0'/0/0."""
    return generate_mnemonic()


def key_from_mnemonic(mnemonic: str) -> PrivateKey:
    try:
        words = validate_mnemonic_and_normalise(mnemonic)
    except ValueError as exc:
        raise CliError(f"invalid mnemonic: {exc}") from exc
    return LocalWallet.from_mnemonic(words).signer()


def key_from_hex(text: str) -> PrivateKey:
    try:
        raw = bytes.fromhex(text.strip())
        if len(raw) != 32:
            raise ValueError(f"{len(raw)} bytes")
        return PrivateKey(raw)
    except ValueError as exc:
        raise CliError(f"not a hex secp256k1 private key (64 hex digits): {exc}") from exc


class Keyring:
    def __init__(self, home: Path, backend: str) -> None:
        self.backend = backend
        self.dir = home / f"keyring-{backend}"

    def _path(self, name: str) -> Path:
        if NAME.fullmatch(name) is None:
            raise CliError(f"invalid key name {name!r}: 1 to 64 of letters, digits, '.', '_' "
                           f"and '-', starting with a letter or digit")
        return self.dir / f"{name}.json"

    def _record(self, name: str) -> dict:
        path = self._path(name)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise CliError(f"no key named {name!r} in the {self.backend} keyring at "
                           f"{self.dir}") from None
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read key {name!r} from {path}: {exc}") from exc

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.json")) if self.dir.is_dir() else []

    def info(self, name: str) -> KeyInfo:
        record = self._record(name)
        return KeyInfo(name=name, address=record["address"],
                       pubkey=base64.b64decode(record["pubkey"]))

    def entries(self) -> list[KeyInfo]:
        return [self.info(name) for name in self.names()]

    def find(self, name_or_address: str) -> KeyInfo:
        """A key by its name, or by its address (as ``tx bank send FROM`` takes either)."""
        if name_or_address.startswith(ACCOUNT_PREFIX + "1"):
            for key in self.entries():
                if key.address == name_or_address:
                    return key
            raise CliError(f"no key with address {name_or_address} in the {self.backend} "
                           f"keyring at {self.dir}")
        return self.info(name_or_address)

    def needs_passphrase(self) -> bool:
        return self.backend == "file"

    def is_empty(self) -> bool:
        return not self.names()

    def check_new(self, name: str) -> None:
        """Refuses a name that is malformed or taken, before anything is asked or derived."""
        if self._path(name).exists():
            raise CliError(f"a key named {name!r} already exists in the {self.backend} "
                           f"keyring; delete it first or choose another name")

    def add(self, name: str, key: PrivateKey, passphrase: str | None) -> KeyInfo:
        self.check_new(name)
        path = self._path(name)
        address = str(Address(key.public_key, prefix=ACCOUNT_PREFIX))
        for other in self.entries():
            if other.address == address:
                raise CliError(f"this key is already in the keyring as {other.name!r}")
        if self.needs_passphrase():
            secret = self._sealed(key, self._checked_new_passphrase(passphrase))
        else:
            secret = {"private_key_hex": key.private_key_hex}
        record = {"name": name, "address": address,
                  "pubkey": base64.b64encode(key.public_key.public_key_bytes).decode(),
                  "secret": secret}
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(record, out, indent=2)
        return KeyInfo(name=name, address=address, pubkey=key.public_key.public_key_bytes)

    def delete(self, name: str) -> KeyInfo:
        info = self.info(name)
        self._path(name).unlink()
        return info

    def private_key(self, name: str, passphrase: str | None) -> PrivateKey:
        """The key that signs; a wrong passphrase is refused, never a garbled key."""
        secret = self._record(name)["secret"]
        if not self.needs_passphrase():
            return key_from_hex(secret["private_key_hex"])
        if passphrase is None:
            raise CliError("the file keyring needs its passphrase")
        box = nacl.secret.SecretBox(KDF.kdf(
            nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(),
            base64.b64decode(secret["salt"]), opslimit=secret["opslimit"],
            memlimit=secret["memlimit"]))
        try:
            return PrivateKey(box.decrypt(base64.b64decode(secret["box"])))
        except nacl.exceptions.CryptoError:
            raise CliError("wrong keyring passphrase") from None

    def _checked_new_passphrase(self, passphrase: str | None) -> str:
        if passphrase is None or len(passphrase) < MIN_PASSPHRASE:
            raise CliError(f"the keyring passphrase must have at least {MIN_PASSPHRASE} "
                           f"characters")
        names = self.names()
        if names:
            self.private_key(names[0], passphrase)
        return passphrase

    @staticmethod
    def _sealed(key: PrivateKey, passphrase: str) -> dict:
        salt = nacl.utils.random(KDF.SALTBYTES)
        opslimit, memlimit = KDF.OPSLIMIT_INTERACTIVE, KDF.MEMLIMIT_INTERACTIVE
        box = nacl.secret.SecretBox(KDF.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(),
                                            salt, opslimit=opslimit, memlimit=memlimit))
        return {"kdf": "argon2id", "opslimit": opslimit, "memlimit": memlimit,
                "salt": base64.b64encode(salt).decode(),
                "box": base64.b64encode(box.encrypt(key.private_key_bytes)).decode()}
