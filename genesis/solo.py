"""Lays out a solo home: the chain node produces blocks itself, no CometBFT and no Go needed.

The home holds config/genesis.json (one validator, its key generated here),
config/priv_validator_key.json and config/app.toml with mode = "solo". The validator key exists so
the genesis names a real validator, the same way a CometBFT network's does.
"""

from pathlib import Path

from genesis.app_config import AppConfig, write_app_toml
from genesis.builder import build_genesis, write_genesis
from genesis.comet_keys import Ed25519Key, validator_address, write_priv_validator_key
from genesis.homes import HOST, NodeInfo, NodePorts, require_empty_dir
from genesis.template import Template

# The usual single-node ports: CometBFT's defaults and Cosmos gRPC's 9090.
SOLO_PORTS = NodePorts(p2p=26656, rpc=26657, abci=26658, grpc=9090)


def layout_solo(
    template: Template,
    out: str | Path,
    *,
    grpc_port: int = SOLO_PORTS.grpc,
    block_interval_ms: int = 500,
) -> NodeInfo:
    """Writes a solo home at `out` (itself the home) for the template's single validator."""
    if len(template.validators) != 1:
        raise ValueError(f"solo mode runs exactly one validator; the template has "
                         f"{len(template.validators)}")
    spec = template.validators[0]
    if spec.pub_key is not None:
        raise ValueError(f"validator {spec.name!r} has a pub_key in the template; solo mode "
                         "generates its validator key (drop pub_key)")
    ports = NodePorts(p2p=SOLO_PORTS.p2p, rpc=SOLO_PORTS.rpc, abci=SOLO_PORTS.abci, grpc=grpc_port)
    app_config = AppConfig(
        mode="solo",
        abci_listen=f"{HOST}:{ports.abci}",
        grpc_listen=f"{HOST}:{ports.grpc}",
        comet_rpc=ports.rpc_url,
        block_interval_ms=block_interval_ms,
    )
    home = require_empty_dir(Path(out))
    key = Ed25519Key.generate()
    write_genesis(build_genesis(template, {spec.name: key.public_key}),
                  home / "config" / "genesis.json")
    write_priv_validator_key(home, key)
    write_app_toml(home, app_config)
    return NodeInfo(name=spec.name, home=home, mode="solo", ports=ports, node_id=None,
                    validator_address=validator_address(key.public_key))
