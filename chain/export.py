"""Genesis export: the committed state as a genesis document a new chain starts from.

This is how a Cosmos chain upgrades: stop the nodes, export, start a new chain from the
export. Each module writes its own section (its ``export_genesis``, the inverse of its
``init_genesis``), so InitChain on a fresh store rebuilds the same keys and values, hence the
same app hash. What lives outside the modules goes to the document's top level: the chain id,
``initial_height`` one above the exported height (CometBFT's rule for a chain that continues
another), the time of the exported block as ``genesis_time``, and the consensus params and
validators. The consensus params are not in the app's state, so they come from the genesis
the chain started from; so do the validators when the chain never set any (solo mode).

A key that belongs to no module, or a module without an export, stops the export: a new
chain must not silently lose state.
"""

import base64
import hashlib
import json
import socket
from pathlib import Path
from typing import Any

from chain.app import CHAIN_ID_META, LAST_BLOCK_META, rfc3339
from chain.config import NodeConfig
from chain.genesis_records import UnexportedState
from chain.modules import Modules, build
from chain.store import KVReader, StateAt, Store

ED25519_KEY_TYPE = "tendermint/PubKeyEd25519"


class NodeRunning(RuntimeError):
    """A node still serves the home: its state may move while it is read."""


def export_app_state(modules: Modules, state: KVReader) -> dict[str, Any]:
    """Every module's genesis section; raises UnexportedState if some state has none."""
    names = {module.name for module in modules.manager.modules}
    for key, _ in state.iterate(b""):
        if key.split(b"/", 1)[0].decode(errors="replace") not in names:
            raise UnexportedState(f"key {key!r} belongs to no module")
    return modules.manager.export_genesis(state)


def export_genesis(modules: Modules, store: Store, base: dict[str, Any],
                   height: int | None = None) -> dict[str, Any]:
    """The genesis document of a chain that continues ``store``'s at ``height`` (the latest
    by default); ``base`` is the genesis document the chain started from."""
    height = store.height if height is None else height
    if height < 1:
        raise ValueError("nothing to export: no block is committed")
    app_state = export_app_state(modules, StateAt(store, height))
    last_block = json.loads(store.get_meta(LAST_BLOCK_META) or b"{}")
    # Only the latest block's time is kept; an older height keeps the original time.
    genesis_time = rfc3339(last_block["time_ns"]) if height == store.height and \
        last_block.get("time_ns") else base["genesis_time"]
    chain_id = (store.get_meta(CHAIN_ID_META) or b"").decode() or base["chain_id"]
    validators = app_state["epochs"].get("consensus_validators", {}).get("validators", [])
    return {
        "genesis_time": genesis_time,
        "chain_id": chain_id,
        "initial_height": str(height + 1),
        "consensus_params": base["consensus_params"],
        "validators": _comet_validators(validators, base.get("validators", [])),
        "app_hash": "",
        "app_state": app_state,
    }


def _comet_validators(exported: list[dict], base: list[dict]) -> list[dict]:
    """The validator set as CometBFT's genesis writes it: the set the chain last gave
    CometBFT, else the starting genesis's (a solo chain never gives one)."""
    if not exported:
        return base
    names = {v["pub_key"]["value"]: v.get("name", "") for v in base}
    found = []
    for validator in exported:
        pubkey = base64.b64decode(validator["pubkey"])
        value = base64.b64encode(pubkey).decode()
        found.append({"address": hashlib.sha256(pubkey).digest()[:20].hex().upper(),
                      "pub_key": {"type": ED25519_KEY_TYPE, "value": value},
                      "power": validator["power"],
                      "name": names.get(value, validator.get("participant", ""))})
    return found


def export_home(home: Path, height: int | None = None) -> dict[str, Any]:
    """The export of a stopped node's home; refuses while a node serves it."""
    config = NodeConfig.load(home)
    host, _, port = config.grpc_listen.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            raise NodeRunning(f"a node serves {home} (its gRPC {config.grpc_listen} answers): "
                              f"stop it before exporting")
    except OSError:
        pass
    if not config.database.is_file():
        raise FileNotFoundError(f"{config.database} is missing: this home has no chain state")
    base = json.loads(config.genesis_file.read_text())
    with Store.open(config.database) as store:
        return export_genesis(build(), store, base, height)
