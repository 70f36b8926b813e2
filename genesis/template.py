"""The genesis template: a small TOML file a person writes, checked strictly before any build.

Format (see `default_template.toml`):

    chain_id = "inferchain-local"
    initial_height = 1                        # optional, default 1
    genesis_time = "2026-01-01T00:00:00Z"     # optional, default: the time of the build
    [[accounts]]
    address = "infer1..."
    coins = "1000000000000ninfer"
    [[validators]]
    name = "val0"
    power = 10
    pub_key = "base64 ed25519"                # optional: left out, the layout generates the key
    [params.auth]                             # per-module params, copied to app_state.auth.params
    min_gas_price = "0.01"
    [[participants]]                          # optional: participants known from the start
    address = "infer1..."
    url = "http://127.0.0.1:8100"
    node_pubkey = "hex ed25519"
    consensus_pubkey = "hex ed25519"          # optional: its CometBFT validator key
    models = [{model_id = "...", weights_sha256 = "..."}]
    [[reputations]]                           # optional: trust a participant starts with
    address = "infer1..."
    reputation_ppm = 1000000                  # 0 (newcomer) to 1000000 (full)

Every problem found is reported at once, each prefixed with where it is (`accounts[1].coins`), so a
person fixes a template in one pass instead of one error per run.
"""

import base64
import binascii
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.inference.model import MODEL_FIELDS, model_problems
from chain.scales import PPM
from genesis.addresses import validate_account_address
from genesis.coins import Coin, parse_coins
from genesis.timestamps import normalize_genesis_time

MAX_CHAIN_ID_LENGTH = 50  # CometBFT's types.MaxChainIDLen
# CometBFT's MaxTotalVotingPower (MaxInt64 / 8): a larger total makes it refuse the genesis.
MAX_TOTAL_VOTING_POWER = (2**63 - 1) // 8
# Validator names become directory names (DIR/val0) and monikers, so they stay path-safe.
_VALIDATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MODULE_NAME = re.compile(r"[a-z][a-z0-9_]*")

_TOP_KEYS = {"chain_id", "initial_height", "genesis_time", "accounts", "validators", "params",
             "models", "reputations", "participants"}
_PARTICIPANT_KEYS = {"address", "url", "node_pubkey", "models", "weight", "consensus_pubkey"}
_REPUTATION_KEYS = {"address", "reputation_ppm"}
_ACCOUNT_KEYS = {"address", "coins"}
_VALIDATOR_KEYS = {"name", "power", "pub_key"}


class TemplateError(ValueError):
    """A template that cannot become a valid genesis; `problems` lists every reason found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(f"invalid genesis template {source}:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class AccountSpec:
    """A funded account: canonical lower-case bech32 address and coins sorted by denom."""

    address: str
    coins: tuple[Coin, ...]


@dataclass(frozen=True)
class ValidatorSpec:
    """A genesis validator; `pub_key` (32 raw ed25519 bytes) is None when a layout makes the key."""

    name: str
    power: int
    pub_key: bytes | None = None


@dataclass(frozen=True)
class Template:
    """A checked template. `params` maps module name to that module's param overrides."""

    chain_id: str
    validators: tuple[ValidatorSpec, ...]
    accounts: tuple[AccountSpec, ...] = ()
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The inference module's model registry: one dict per [[models]] entry.
    models: tuple[Mapping[str, Any], ...] = ()
    # Starting reputations for the validation module: {"address", "reputation_ppm"} each.
    reputations: tuple[Mapping[str, Any], ...] = ()
    # Participants registered at genesis, so they validate from the first epoch.
    participants: tuple[Mapping[str, Any], ...] = ()
    initial_height: int = 1
    genesis_time: str | None = None  # canonical RFC 3339 (see timestamps.py), None = build time


def load_template(path: str | Path) -> Template:
    """Reads and checks a TOML template file; raises TemplateError listing every problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise TemplateError(str(path), [f"not valid TOML: {err}"]) from None
    return parse_template(data, source=str(path))


def parse_template(data: Mapping[str, Any], source: str = "<template>") -> Template:
    """Checks an already-parsed template (the dict tomllib returns) and turns it into a Template."""
    problems: list[str] = []
    for key in sorted(set(data) - _TOP_KEYS):
        problems.append(f"{key}: unknown key (expected one of {sorted(_TOP_KEYS)})")

    chain_id = _chain_id(data.get("chain_id"), problems)
    initial_height = _initial_height(data.get("initial_height", 1), problems)
    genesis_time = None
    if "genesis_time" in data:
        try:
            genesis_time = normalize_genesis_time(data["genesis_time"])
        except ValueError as err:
            problems.append(f"genesis_time: {err}")
    accounts = _accounts(data.get("accounts", []), problems)
    validators = _validators(data.get("validators"), problems)
    params = _params(data.get("params", {}), problems)
    models = _models(data.get("models", []), problems)
    reputations = _reputations(data.get("reputations", []), problems)
    participants = _participants(data.get("participants", []), problems)

    if problems:
        raise TemplateError(source, problems)
    return Template(
        chain_id=chain_id,
        initial_height=initial_height,
        genesis_time=genesis_time,
        accounts=accounts,
        validators=validators,
        params=params,
        models=models,
        reputations=reputations,
        participants=participants,
    )


def _chain_id(value: object, problems: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append("chain_id: required, a non-empty string")
        return ""
    if value != value.strip():
        problems.append(f"chain_id: {value!r} has leading or trailing whitespace")
    if len(value) > MAX_CHAIN_ID_LENGTH:
        problems.append(f"chain_id: longer than CometBFT's limit of {MAX_CHAIN_ID_LENGTH}")
    return value


def _initial_height(value: object, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"initial_height: must be an integer >= 1, got {value!r}")
        return 1
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entries(value: object, name: str, problems: list[str]) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        problems.append(f"{name}: must be an array of tables ([[{name}]])")
        return []
    return value


def _unknown_keys(entry: Mapping[str, Any], allowed: set[str], where: str,
                  problems: list[str]) -> None:
    for key in sorted(set(entry) - allowed):
        problems.append(f"{where}.{key}: unknown key (expected one of {sorted(allowed)})")


def _accounts(value: object, problems: list[str]) -> tuple[AccountSpec, ...]:
    accounts: list[AccountSpec] = []
    first_seen: dict[str, int] = {}
    for i, entry in enumerate(_entries(value, "accounts", problems)):
        where = f"accounts[{i}]"
        _unknown_keys(entry, _ACCOUNT_KEYS, where, problems)
        try:
            address = validate_account_address(entry.get("address"))
        except ValueError as err:
            problems.append(f"{where}.address: {err}")
            address = None
        try:
            coins = parse_coins(entry.get("coins"))
        except ValueError as err:
            problems.append(f"{where}.coins: {err}")
            coins = None
        if address is not None:
            if address in first_seen:
                problems.append(f"{where}.address: {address} is already funded by "
                                f"accounts[{first_seen[address]}]")
            else:
                first_seen[address] = i
        if address is not None and coins is not None:
            accounts.append(AccountSpec(address=address, coins=coins))
    return tuple(accounts)


def _validators(value: object, problems: list[str]) -> tuple[ValidatorSpec, ...]:
    if value is None or value == []:
        problems.append("validators: at least one [[validators]] entry is required")
        return ()
    validators: list[ValidatorSpec] = []
    names: set[str] = set()
    keys: set[bytes] = set()
    total_power = 0
    for i, entry in enumerate(_entries(value, "validators", problems)):
        where = f"validators[{i}]"
        _unknown_keys(entry, _VALIDATOR_KEYS, where, problems)
        name = entry.get("name")
        if not isinstance(name, str) or not _VALIDATOR_NAME.fullmatch(name):
            problems.append(f"{where}.name: {name!r} must be 1-64 of [A-Za-z0-9_.-], "
                            "starting with a letter or digit (it names the node's directory)")
            name = None
        elif name in names:
            problems.append(f"{where}.name: {name!r} is used twice")
        else:
            names.add(name)
        power = entry.get("power")
        if not _is_int(power) or power <= 0:
            problems.append(f"{where}.power: must be a positive integer, got {power!r}")
            power = None
        else:
            total_power += power
        pub_key = None
        if "pub_key" in entry:
            pub_key = _ed25519_pub_key(entry["pub_key"], f"{where}.pub_key", problems)
            if pub_key is not None and pub_key in keys:
                problems.append(f"{where}.pub_key: the same key is given to two validators")
            elif pub_key is not None:
                keys.add(pub_key)
        if name is not None and power is not None:
            validators.append(ValidatorSpec(name=name, power=power, pub_key=pub_key))
    if total_power > MAX_TOTAL_VOTING_POWER:
        problems.append(f"validators: total power {total_power} exceeds CometBFT's maximum "
                        f"{MAX_TOTAL_VOTING_POWER}")
    return tuple(validators)


def _ed25519_pub_key(value: object, where: str, problems: list[str]) -> bytes | None:
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        problems.append(f"{where}: must be the base64 of a 32-byte ed25519 public key "
                        "(the 'value' that `cometbft show-validator` prints)")
        return None
    return raw


def _models(value: object, problems: list[str]) -> tuple[Mapping[str, Any], ...]:
    """[[models]]: id and the weights' sha256 are required, the chain defaults the rest, and
    every field given is held to the registry's rule (``chain.inference.model``)."""
    models = []
    seen: set[str] = set()
    for i, entry in enumerate(_entries(value, "models", problems)):
        where = f"models[{i}]"
        _unknown_keys(entry, set(MODEL_FIELDS), where, problems)
        invalid = model_problems({"id": entry.get("id"),
                                  "weights_sha256": entry.get("weights_sha256"), **entry})
        problems.extend(f"{where}.{name}: {why}" for name, why in invalid.items())
        model_id = entry.get("id")
        if "id" not in invalid:
            if model_id in seen:
                problems.append(f"{where}.id: {model_id} is listed twice")
            seen.add(model_id)
        models.append(dict(entry))
    return tuple(models)


def _keyed_by_address(entry: Mapping[str, Any], keys: set[str], where: str,
                      problems: list[str]) -> None:
    """An entry about one account: only ``keys``, and a valid account address."""
    _unknown_keys(entry, keys, where, problems)
    try:
        validate_account_address(entry.get("address"))
    except ValueError as err:
        problems.append(f"{where}.address: {err}")


def _participants(value: object, problems: list[str]) -> tuple[Mapping[str, Any], ...]:
    participants = []
    for i, entry in enumerate(_entries(value, "participants", problems)):
        where = f"participants[{i}]"
        _keyed_by_address(entry, _PARTICIPANT_KEYS, where, problems)
        url, key = entry.get("url"), entry.get("node_pubkey")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problems.append(f"{where}.url: must be an http(s) URL")
        if not isinstance(key, str) or not re.fullmatch(r"[0-9a-f]{64}", key):
            problems.append(f"{where}.node_pubkey: must be 64 hex digits (ed25519)")
        consensus = entry.get("consensus_pubkey")
        if consensus is not None and (not isinstance(consensus, str)
                                      or not re.fullmatch(r"[0-9a-f]{64}", consensus)):
            problems.append(f"{where}.consensus_pubkey: must be 64 hex digits (the CometBFT "
                            f"validator's ed25519 key)")
        models = entry.get("models")
        if not isinstance(models, list) or not models or not all(
                isinstance(m, Mapping) and {"model_id", "weights_sha256"} <= set(m)
                <= {"model_id", "weights_sha256", "dtype"} for m in models):
            problems.append(f"{where}.models: a non-empty list of {{model_id, weights_sha256}} "
                            f"with an optional dtype")
        if "weight" in entry and (not _is_int(entry["weight"]) or entry["weight"] < 0):
            problems.append(f"{where}.weight: must be a non-negative integer")
        participants.append(dict(entry))
    return tuple(participants)


def _reputations(value: object, problems: list[str]) -> tuple[Mapping[str, Any], ...]:
    reputations = []
    for i, entry in enumerate(_entries(value, "reputations", problems)):
        where = f"reputations[{i}]"
        _keyed_by_address(entry, _REPUTATION_KEYS, where, problems)
        ppm = entry.get("reputation_ppm")
        if not _is_int(ppm) or not 0 <= ppm <= PPM:
            problems.append(f"{where}.reputation_ppm: must be an integer in "
                            f"[0, {PPM}]")
        reputations.append(dict(entry))
    return tuple(reputations)


def _params(value: object, problems: list[str]) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        problems.append("params: must be a table of [params.<module>] tables")
        return {}
    params: dict[str, dict[str, Any]] = {}
    for module, overrides in value.items():
        where = f"params.{module}"
        if not _MODULE_NAME.fullmatch(module):
            problems.append(f"{where}: module names are [a-z0-9_], starting with a letter")
        elif not isinstance(overrides, Mapping):
            problems.append(f"{where}: must be a table ([params.{module}])")
        else:
            _check_json_value(overrides, where, problems)
            params[module] = dict(overrides)
    return params


def _check_json_value(value: object, where: str, problems: list[str]) -> None:
    """Params end up in JSON; TOML dates and non-finite floats have no JSON form, so refuse them."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_json_value(item, f"{where}.{key}", problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_value(item, f"{where}[{i}]", problems)
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{where}: {value} has no JSON form; write it as a string")
    elif not isinstance(value, str | int | float | bool):
        problems.append(f"{where}: a {type(value).__name__} has no JSON form; write it as a string")
