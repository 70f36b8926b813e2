"""Turns a checked template and the validators' public keys into a CometBFT v0.38 genesis.json.

`app_state` is the contract the chain app reads in InitChain; keep it exactly:

    {"auth": {"params": {...}},
     "bank": {"balances": [{"address": "infer1...",
                            "coins": [{"denom": "ninfer", "amount": "123"}]}],
              "params": {...}},
     "inference": {"params": {...}, "models": [...], "participants": [...]},
     "validation": {"params": {...}, "reputations": [{"address", "reputation_ppm"}]},
     "<module>": {"params": {...}}}      # one per other module named under [params]

Balances keep template order, coins are sorted by denom, amounts are decimal strings. The rest of
the document copies the shape `cometbft init` (v0.38.26) writes, field for field.
"""

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genesis.comet_keys import pub_key_json, validator_address
from genesis.template import Template
from genesis.timestamps import now_genesis_time

# Copied from the genesis.json that `cometbft init` writes (v0.38.26); int64s are JSON strings.
CONSENSUS_PARAMS: dict[str, Any] = {
    "block": {"max_bytes": "22020096", "max_gas": "-1"},
    "evidence": {
        "max_age_num_blocks": "100000",
        "max_age_duration": "172800000000000",  # 48h in nanoseconds
        "max_bytes": "1048576",
    },
    "validator": {"pub_key_types": ["ed25519"]},
    "version": {"app": "0"},
    "abci": {"vote_extensions_enable_height": "0"},
}


def build_genesis(
    template: Template,
    pub_keys: Mapping[str, bytes] | None = None,
    genesis_time: str | None = None,
) -> dict[str, Any]:
    """Returns the genesis document as a dict (key order is the order CometBFT writes).

    `pub_keys` maps validator name to its 32-byte ed25519 public key, for every validator whose
    template entry has no `pub_key`; naming a validator that already has one, or an unknown name,
    is an error. The time is the template's, else `genesis_time`, else now.
    """
    pub_keys = dict(pub_keys or {})
    validators = []
    for spec in template.validators:
        if spec.pub_key is not None and spec.name in pub_keys:
            raise ValueError(f"validator {spec.name!r} has a pub_key in the template already")
        pub_key = spec.pub_key if spec.pub_key is not None else pub_keys.pop(spec.name, None)
        if pub_key is None:
            raise ValueError(f"validator {spec.name!r} has no public key: give pub_key in the "
                             "template, or let `solo`/`localnet` generate its key")
        if len(pub_key) != 32:
            raise ValueError(f"validator {spec.name!r}: an ed25519 public key is 32 bytes")
        validators.append({
            "address": validator_address(pub_key),
            "pub_key": pub_key_json(pub_key),
            "power": str(spec.power),
            "name": spec.name,
        })
    if pub_keys:
        raise ValueError(f"public keys given for validators not in the template: "
                         f"{sorted(pub_keys)}")
    addresses = [v["address"] for v in validators]
    if len(set(addresses)) != len(addresses):
        raise ValueError("two validators share one public key")

    return {
        "genesis_time": template.genesis_time or genesis_time or now_genesis_time(),
        "chain_id": template.chain_id,
        "initial_height": str(template.initial_height),
        "consensus_params": copy.deepcopy(CONSENSUS_PARAMS),
        "validators": validators,
        "app_hash": "",
        "app_state": build_app_state(template),
    }


def build_app_state(template: Template) -> dict[str, Any]:
    """The `app_state` contract described in this module's docstring."""
    params = {module: copy.deepcopy(dict(values)) for module, values in template.params.items()}
    app_state: dict[str, Any] = {
        "auth": {"params": params.pop("auth", {})},
        "bank": {
            "balances": [
                {"address": account.address, "coins": [coin.to_json() for coin in account.coins]}
                for account in template.accounts
            ],
            "params": params.pop("bank", {}),
        },
    }
    if template.models or template.participants or "inference" in params:
        app_state["inference"] = {"params": params.pop("inference", {}),
                                  "models": [dict(m) for m in template.models]}
        if template.participants:
            app_state["inference"]["participants"] = [dict(p) for p in template.participants]
    if template.reputations:
        app_state["validation"] = {"params": params.pop("validation", {}),
                                   "reputations": [dict(r) for r in template.reputations]}
    for module, values in params.items():
        app_state[module] = {"params": values}
    return app_state


def genesis_json(genesis: Mapping[str, Any]) -> str:
    """The file's text: two-space indent like CometBFT's, insertion order kept, so it is stable."""
    return json.dumps(genesis, indent=2, ensure_ascii=False) + "\n"


def write_genesis(genesis: Mapping[str, Any], path: str | Path) -> Path:
    """Writes `genesis` to `path` (creating parent directories) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(genesis_json(genesis), encoding="utf-8")
    return path
