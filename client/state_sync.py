"""The ``[statesync]`` settings of a joining node's home (``inferchain init --state-sync-rpc``):
the CometBFT RPC servers its light client asks, and the block it trusts first, a height and
that block's hash. Every named server must be reachable, run the chain the node joins, and
confirm that height's hash, so a typo, a stale hash or a server of another network is refused
before a home is written instead of failing at the node's first start.
"""

import re
from dataclasses import dataclass
from typing import Any

from genesis.network_genesis import GenesisRefused, query_peer_rpc

# The trusted block is this far below the server's latest: the latest block's commit is
# only the server's own view until the next block carries it, and a margin keeps the trusted
# header one every server already holds with its final commit.
TRUST_MARGIN = 2
# How long a trusted header stays usable (CometBFT's default; within the unbonding period).
TRUST_PERIOD = "168h0m0s"
BLOCK_HASH = re.compile(r"[0-9A-Fa-f]{64}")


@dataclass(frozen=True)
class StateSyncTrust:
    rpc_servers: tuple[str, ...]
    trust_height: int
    trust_hash: str

    def config_section(self) -> dict[str, Any]:
        """config.toml's ``[statesync]``. CometBFT wants two servers (a primary and a
        witness); one named server is written twice, as CometBFT's docs allow."""
        servers = self.rpc_servers if len(self.rpc_servers) > 1 else self.rpc_servers * 2
        return {"enable": True, "rpc_servers": ",".join(servers),
                "trust_height": self.trust_height, "trust_hash": self.trust_hash,
                "trust_period": TRUST_PERIOD}


def confirmed_trust(rpc_servers: str, chain_id: str, trust_height: int | None,
                    trust_hash: str | None) -> StateSyncTrust:
    """The trusted block every server confirms: ``trust_height`` (default: the first
    server's latest height less TRUST_MARGIN) and its hash, which must equal ``trust_hash``
    when one is given."""
    servers = tuple(url.strip().rstrip("/") for url in rpc_servers.split(",") if url.strip())
    if not servers:
        raise GenesisRefused("--state-sync-rpc names no server: give one or more CometBFT "
                             "RPC URLs, comma-separated")
    if trust_hash is not None and trust_height is None:
        raise GenesisRefused("--trust-hash needs --trust-height: the height of the block it "
                             "is the hash of")
    if trust_hash is not None and BLOCK_HASH.fullmatch(trust_hash) is None:
        raise GenesisRefused(f"--trust-hash {trust_hash!r} is not a block hash (64 hex "
                             f"digits, a block's block_id.hash)")
    if trust_height is not None and trust_height < 1:
        raise GenesisRefused(f"--trust-height {trust_height}: heights start at 1")
    latest = {url: _latest_height(url, chain_id) for url in servers}
    if trust_height is None:
        trust_height = latest[servers[0]] - TRUST_MARGIN
        if trust_height < 1:
            raise GenesisRefused(f"the network at {servers[0]} is at height "
                                 f"{latest[servers[0]]}, too young to state sync from; join "
                                 f"without --state-sync-rpc (block sync)")
    for url in servers:
        if latest[url] < trust_height:
            raise GenesisRefused(f"the server at {url} is at height {latest[url]}, below the "
                                 f"trusted height {trust_height}")
    expected = (trust_hash.upper() if trust_hash is not None
                else _block_hash(servers[0], trust_height))
    for url in servers:
        found = _block_hash(url, trust_height)
        if found != expected:
            raise GenesisRefused(f"the server at {url} has block {trust_height} with hash "
                                 f"{found or '(none)'}, not {expected}: wrong --trust-hash or "
                                 f"--trust-height, or a server of another network")
    return StateSyncTrust(servers, trust_height, expected)


def _block_hash(url: str, height: int) -> str:
    block = query_peer_rpc(url, f"block?height={height}", "--state-sync-rpc")
    return str(block.get("block_id", {}).get("hash", "")).upper()


def _latest_height(url: str, chain_id: str) -> int:
    status = query_peer_rpc(url, "status", "--state-sync-rpc")
    network = status.get("node_info", {}).get("network")
    if network != chain_id:
        raise GenesisRefused(f"the server at {url} runs chain {network!r}, not {chain_id!r}")
    return int(status.get("sync_info", {}).get("latest_block_height", 0))
