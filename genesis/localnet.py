"""Lays out a local CometBFT network: one home per validator under DIR/<name>, one shared genesis.

Ports: node i takes the block BASE+10*i .. BASE+10*i+9 on 127.0.0.1 and uses the first four:
P2P = +0, CometBFT RPC = +1, ABCI (our chain node listens, CometBFT connects) = +2, our Cosmos
gRPC = +3. So with the default base 26600, val0 is 26600-26603 and val1 is 26610-26613.
"""

import dataclasses
from pathlib import Path

from genesis.app_config import AppConfig, write_app_toml
from genesis.builder import build_genesis, write_genesis
from genesis.comet_config import check_go_duration, default_config_toml, node_config_toml
from genesis.comet_keys import (
    Ed25519Key,
    node_id,
    validator_address,
    write_node_key,
    write_priv_validator_key,
    write_priv_validator_state,
)
from genesis.homes import HOST, NodeInfo, NodePorts, require_empty_dir
from genesis.template import Template, ValidatorSpec

DEFAULT_BASE_PORT = 26600
PORTS_PER_NODE = 10
DEFAULT_POWER = 10


def localnet_ports(base_port: int, index: int) -> NodePorts:
    """The ports of node `index` (see the module docstring)."""
    start = base_port + PORTS_PER_NODE * index
    if base_port < 1024 or start + PORTS_PER_NODE - 1 > 65535:
        raise ValueError(f"ports {start}..{start + PORTS_PER_NODE - 1} are outside 1024..65535")
    return NodePorts(p2p=start, rpc=start + 1, abci=start + 2, grpc=start + 3)


def with_generated_validators(template: Template, count: int,
                              power: int = DEFAULT_POWER) -> Template:
    """The template with its validators replaced by `count` new ones, val0..val{count-1}."""
    if count < 1:
        raise ValueError(f"a network needs at least one validator, got {count}")
    validators = tuple(ValidatorSpec(name=f"val{i}", power=power) for i in range(count))
    return dataclasses.replace(template, validators=validators)


def layout_localnet(
    template: Template,
    out: str | Path,
    *,
    validators: int | None = None,
    base_port: int = DEFAULT_BASE_PORT,
    timeout_commit: str = "500ms",
    config_base: str | None = None,
) -> list[NodeInfo]:
    """Writes a home per validator under `out` and returns them in validator order.

    `validators`, when given, replaces the template's validators with that many generated ones
    (power 10 each). Every validator must be generated here: a template entry with a pub_key has
    its private key elsewhere, so no home can be laid out for it. `config_base` is the config.toml
    to patch; None runs the installed `cometbft init` for it (or starts from "" without a binary).
    """
    if validators is not None:
        template = with_generated_validators(template, validators)
    given = [v.name for v in template.validators if v.pub_key is not None]
    if given:
        raise ValueError(f"validators {given} have a pub_key in the template; localnet generates "
                         "every validator's key (drop pub_key, or use --validators N)")
    check_go_duration(timeout_commit)
    ports = [localnet_ports(base_port, i) for i in range(len(template.validators))]
    out = require_empty_dir(Path(out))
    if config_base is None:
        config_base = default_config_toml()

    validator_keys = {v.name: Ed25519Key.generate() for v in template.validators}
    node_keys = {v.name: Ed25519Key.generate() for v in template.validators}
    genesis = build_genesis(template, {name: k.public_key for name, k in validator_keys.items()})
    peers = {
        v.name: f"{node_id(node_keys[v.name].public_key)}@{HOST}:{p.p2p}"
        for v, p in zip(template.validators, ports, strict=True)
    }

    nodes = []
    for spec, node_ports in zip(template.validators, ports, strict=True):
        home = out / spec.name
        write_priv_validator_key(home, validator_keys[spec.name])
        write_priv_validator_state(home)
        write_node_key(home, node_keys[spec.name])
        write_genesis(genesis, home / "config" / "genesis.json")
        config_toml = node_config_toml(
            config_base,
            moniker=spec.name,
            p2p_port=node_ports.p2p,
            rpc_port=node_ports.rpc,
            abci_port=node_ports.abci,
            persistent_peers=[peer for name, peer in peers.items() if name != spec.name],
            timeout_commit=timeout_commit,
        )
        (home / "config" / "config.toml").write_text(config_toml, encoding="utf-8")
        write_app_toml(home, AppConfig(
            mode="cometbft",
            abci_listen=f"{HOST}:{node_ports.abci}",
            grpc_listen=f"{HOST}:{node_ports.grpc}",
            comet_rpc=node_ports.rpc_url,
        ))
        nodes.append(NodeInfo(
            name=spec.name,
            home=home,
            mode="cometbft",
            ports=node_ports,
            node_id=node_id(node_keys[spec.name].public_key),
            validator_address=validator_address(validator_keys[spec.name].public_key),
        ))
    return nodes
