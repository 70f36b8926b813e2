"""What a layout returns about each node home it wrote (so callers and tests can find its ports),
and the guard that keeps a layout from writing over an existing home and its keys."""

from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"  # every service of a laid-out node listens on loopback


@dataclass(frozen=True)
class NodePorts:
    """The loopback ports one node uses. In solo mode only `grpc` is served; the others are what
    app.toml names (abci, rpc) or unused (p2p)."""

    p2p: int
    rpc: int
    abci: int
    grpc: int

    @property
    def rpc_url(self) -> str:
        """CometBFT's RPC endpoint, as app.toml's comet_rpc names it."""
        return f"http://{HOST}:{self.rpc}"


@dataclass(frozen=True)
class NodeInfo:
    """One laid-out home. `node_id` is None for a solo home, which has no P2P key."""

    name: str
    home: Path
    mode: str  # "cometbft" or "solo", as in app.toml
    ports: NodePorts
    node_id: str | None
    validator_address: str  # upper-case hex, as in genesis.json


def require_empty_dir(path: Path) -> Path:
    """Creates `path`, or accepts it if empty; refuses a non-empty one so no key is overwritten."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not an empty directory; "
                              "choose a new --out or remove it first")
    path.mkdir(parents=True, exist_ok=True)
    return path
