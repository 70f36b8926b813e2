"""The node's own settings, ``HOME/config/app.toml`` (genesis/ writes it for every home)."""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from chain.metrics import check_port
from chain.retention import Retention
from chain.snapshots.store import SnapshotSettings

MODES = ("solo", "cometbft")
# Each bounded setting's range: snapshot chunks stay under CometBFT's 16 MB p2p chunk message.
BOUNDS = (("snapshot_interval", 0, 1_000_000), ("snapshot_keep_recent", 1, 100),
          ("snapshot_chunk_bytes", 1 << 10, 8 << 20), ("history_keep_blocks", 0, 1 << 40),
          ("min_retain_blocks", 0, 1 << 40))


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    mode: str = "solo"
    abci_listen: str = "127.0.0.1:26658"
    grpc_listen: str = "127.0.0.1:9090"
    comet_rpc: str = "http://127.0.0.1:26657"
    block_interval_ms: int = 500
    cometbft_binary: str = "cometbft"
    # The gas one Simulate may use, whatever the tx's own limit: a bound on how long one
    # client's simulation holds the node.
    simulate_gas_limit: int = 50_000_000
    # Prometheus metrics at http://HOST:PORT/metrics, HOST being grpc_listen's (docs/metrics.md);
    # 0: none.
    metrics_port: int = 0
    # State-sync snapshots (docs/chain.md, "State sync"): one every snapshot_interval
    # committed blocks (0: none), the last snapshot_keep_recent kept, cut into chunks of
    # snapshot_chunk_bytes.
    snapshot_interval: int = 100
    snapshot_keep_recent: int = 2
    snapshot_chunk_bytes: int = 1 << 20
    # What the node keeps of the past (chain/retention.py): heights of state history (0: all)
    # and CometBFT blocks (0: all).
    history_keep_blocks: int = 10_000
    min_retain_blocks: int = 0

    @property
    def genesis_file(self) -> Path:
        return self.home / "config" / "genesis.json"

    @property
    def validator_key_file(self) -> Path:
        """CometBFT's validator key, which also proves the beacon of the blocks this node
        proposes (solo mode's single validator has one too)."""
        return self.home / "config" / "priv_validator_key.json"

    @property
    def database(self) -> Path:
        return self.home / "data" / "app.sqlite"

    @property
    def snapshot_dir(self) -> Path:
        return self.home / "data" / "snapshots"

    @property
    def retention(self) -> Retention:
        return Retention(self.history_keep_blocks, self.min_retain_blocks)

    @property
    def snapshots(self) -> SnapshotSettings:
        return SnapshotSettings(self.snapshot_interval, self.snapshot_keep_recent,
                                self.snapshot_chunk_bytes)

    @classmethod
    def load(cls, home: Path) -> "NodeConfig":
        path = home / "config" / "app.toml"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: lay out the home with "
                                    "`python -m genesis solo` or `python -m genesis localnet`")
        raw = tomllib.loads(path.read_text())
        known = set(cls.__dataclass_fields__) - {"home"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        config = cls(home=home, **raw)
        if config.mode not in MODES:
            raise ValueError(f"{path}: mode must be one of {MODES}, not {config.mode!r}")
        check_port(config.metrics_port, f"{path}: metrics_port")
        for name, low, high in BOUNDS:
            value = getattr(config, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{path}: {name} must be an integer in {low}..{high}, "
                                 f"not {value!r}")
        return config
