"""The client home (``~/.inferchain`` or ``--home``), its config file, and the settings a
command runs with: a flag wins over the config file, which wins over the default.

``HOME/config/client.toml`` holds flat ``key = "value"`` lines, as a Cosmos client.toml does:
``node`` (the chain node's gRPC address), ``chain-id`` (checked against the node's before
signing; empty means take the node's), ``output`` (``text`` or ``json``) and
``keyring-backend`` (``file`` or ``test``).
"""

import argparse
import json
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from client.errors import CliError

CONFIG_FILE = Path("config") / "client.toml"
OUTPUTS = ("text", "json")
KEYRING_BACKENDS = ("file", "test")


def _node_address(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"node {value!r} is not a gRPC address HOST:PORT, e.g. 127.0.0.1:9090")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise CliError(f"{value!r} is not one of {', '.join(choices)}")
        return value
    return check


def _chain_id(value: str) -> str:
    if len(value) > 50 or any(c.isspace() for c in value):
        raise CliError(f"chain id {value!r} must be at most 50 characters without spaces")
    return value


# Each config key, its default and the check its value passes.
KEYS: dict[str, tuple[str, Callable[[str], str]]] = {
    "node": ("127.0.0.1:9090", _node_address),
    "chain-id": ("", _chain_id),
    "output": ("text", _one_of(OUTPUTS)),
    "keyring-backend": ("file", _one_of(KEYRING_BACKENDS)),
}


def default_home() -> Path:
    return Path(os.path.expanduser("~")) / ".inferchain"


def check_key(key: str) -> str:
    if key not in KEYS:
        raise CliError(f"unknown config key {key!r}; known keys: {', '.join(KEYS)}")
    return key


def check(key: str, value: str) -> str:
    """``value`` for config key ``key``, refused in words if either is not allowed."""
    check_key(key)
    try:
        return KEYS[key][1](value)
    except CliError as exc:
        raise CliError(f"config {key}: {exc}") from exc


def read_config(home: Path) -> dict[str, str]:
    """The config file's values (none when there is no file yet), each checked."""
    path = home / CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read the config file {path}: {exc}") from exc
    values = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise CliError(f"{path}: {key} must be a string")
        values[key] = check(key, value)
    return values


def write_config(home: Path, values: dict[str, str]) -> Path:
    path = home / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return path


@dataclass(frozen=True)
class Settings:
    home: Path
    node: str
    chain_id: str
    output: str
    keyring_backend: str


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every client command takes; unset ones fall back to the config file."""
    parser.add_argument("--home", type=Path, help="client home (default ~/.inferchain)")
    parser.add_argument("--node", help="the chain node's gRPC address HOST:PORT "
                        "(default 127.0.0.1:9090)")
    parser.add_argument("--chain-id", help="the chain the node must run (default: the node's)")
    parser.add_argument("--output", "-o", choices=OUTPUTS, help="text (default) or json")
    parser.add_argument("--keyring-backend", choices=KEYRING_BACKENDS,
                        help="file (encrypted, default) or test (unencrypted, for tests only)")


def resolve(args: argparse.Namespace) -> Settings:
    home = (args.home or default_home()).expanduser()
    config = read_config(home)

    def pick(key: str) -> str:
        flag = getattr(args, key.replace("-", "_"), None)
        value = flag if flag is not None else config.get(key, KEYS[key][0])
        return check(key, value)

    return Settings(home=home, node=pick("node"), chain_id=pick("chain-id"),
                    output=pick("output"), keyring_backend=pick("keyring-backend"))
