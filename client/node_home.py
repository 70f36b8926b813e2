"""The home of a node that joins a running network (``inferchain init``), laid out with the
builders the network's own homes use (genesis/): CometBFT's keys and config.toml, the chain
node's app.toml, the network's genesis.json; beside them the API node's home and the ML
node's settings, all pointing at this node's own chain node.

    HOME/config/     config.toml, genesis.json, node_key.json, priv_validator_key.json,
                     app.toml (chain node), client.toml (the inferchain client),
                     mlnode.toml (`inferchain-mlnode serve --config`)
    HOME/data/       priv_validator_state.json; the chain's and CometBFT's databases
    HOME/apinode/    apinode.toml, account.key, node.key (`python -m apinode serve --home`)
    HOME/keyring-*/  the account key, for `inferchain tx … --home HOME`

Ports: BASE+0 P2P, +1 CometBFT RPC, +2 ABCI, +3 the chain node's gRPC, +4 the API node,
+5 the ML node's gRPC. Only P2P and the API node listen on ``listen_host``; the rest stay on
loopback, where only this machine's own parts reach them.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apinode.config import write_home
from client.state_sync import StateSyncTrust
from genesis.app_config import AppConfig, write_app_toml
from genesis.builder import write_genesis
from genesis.comet_config import default_config_toml, node_config_toml, patch_toml
from genesis.comet_keys import (
    Ed25519Key,
    node_id,
    validator_address,
    write_node_key,
    write_priv_validator_key,
    write_priv_validator_state,
)
from genesis.homes import HOST

DEFAULT_BASE_PORT = 26656
PORTS_USED = 6
APINODE_DIR = "apinode"
MLNODE_CONFIG = Path("config") / "mlnode.toml"
# A CometBFT peer address: 40 hex digits of node id, @, host, :, port.
PEER = re.compile(r"[0-9a-f]{40}@[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}")


@dataclass(frozen=True)
class JoinPorts:
    p2p: int
    rpc: int
    abci: int
    grpc: int
    api: int
    mlnode: int

    @classmethod
    def from_base(cls, base: int) -> "JoinPorts":
        if not 1024 <= base <= 65535 - PORTS_USED + 1:
            raise ValueError(f"--base-port {base}: ports {base}..{base + PORTS_USED - 1} must "
                             f"lie within 1024..65535")
        return cls(*range(base, base + PORTS_USED))


@dataclass(frozen=True)
class JoinedHome:
    """What ``layout_joining_node`` made: the node's identities and where it listens."""

    node_id: str
    validator_address: str
    consensus_pubkey: bytes
    ports: JoinPorts


def check_peers(text: str, flag: str) -> list[str]:
    """A comma-separated list of ID@HOST:PORT peers, each checked."""
    peers = [p.strip() for p in text.split(",") if p.strip()]
    for peer in peers:
        if PEER.fullmatch(peer) is None or not 0 < int(peer.rpartition(":")[2]) < 65536:
            raise ValueError(f"{flag}: {peer!r} is not a peer address NODE_ID@HOST:PORT "
                             f"(NODE_ID: 40 hex digits, `cometbft show-node-id`)")
    return peers


def layout_joining_node(home: Path, *, moniker: str, genesis: dict[str, Any],
                        persistent_peers: list[str], seeds: list[str], ports: JoinPorts,
                        listen_host: str, public_url: str, external_address: str,
                        account_key_hex: str,
                        state_sync: StateSyncTrust | None = None) -> JoinedHome:
    """Writes every file of the module docstring's layout into ``home``, an empty directory
    (the caller stages it, so that a failure leaves no half-made home behind)."""
    validator_key, p2p_key = Ed25519Key.generate(), Ed25519Key.generate()
    write_priv_validator_key(home, validator_key)
    write_priv_validator_state(home)
    write_node_key(home, p2p_key)
    write_genesis(genesis, home / "config" / "genesis.json")
    config_toml = node_config_toml(
        default_config_toml(), moniker=moniker, p2p_port=ports.p2p, rpc_port=ports.rpc,
        abci_port=ports.abci, persistent_peers=persistent_peers)
    sections: dict[str, dict[str, Any]] = {
        "p2p": {"laddr": f"tcp://{listen_host}:{ports.p2p}", "seeds": ",".join(seeds),
                "external_address": external_address,
                # A network of public peers keeps CometBFT's guard against private and
                # loopback addresses; peers on one machine (a local network) need it off.
                "addr_book_strict": not any(_local(p) for p in persistent_peers + seeds)},
    }
    if state_sync is not None:
        sections["statesync"] = state_sync.config_section()
    (home / "config" / "config.toml").write_text(patch_toml(config_toml, sections),
                                                 encoding="utf-8")
    write_app_toml(home, AppConfig(mode="cometbft", abci_listen=f"{HOST}:{ports.abci}",
                                   grpc_listen=f"{HOST}:{ports.grpc}",
                                   comet_rpc=f"http://{HOST}:{ports.rpc}"))
    (home / MLNODE_CONFIG).write_text(
        f'engine = "torch"\ndevice = "cpu"\nhost = "{HOST}"\nport = {ports.mlnode}\n',
        encoding="utf-8")
    write_home(home / APINODE_DIR, {
        "chain_id": genesis["chain_id"], "listen": f"{listen_host}:{ports.api}",
        "public_url": public_url, "chain_grpc": f"{HOST}:{ports.grpc}",
        "mlnode": f"{HOST}:{ports.mlnode}",
        "consensus_key_file": "../config/priv_validator_key.json",
    }, account_key_hex)
    return JoinedHome(node_id=node_id(p2p_key.public_key),
                      validator_address=validator_address(validator_key.public_key),
                      consensus_pubkey=validator_key.public_key, ports=ports)


def _local(peer: str) -> bool:
    host = peer.partition("@")[2].rpartition(":")[0]
    return host in ("localhost", "[::1]") or host.startswith("127.")
