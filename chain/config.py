"""The node's own settings, ``HOME/config/app.toml`` (genesis/ writes it for every home)."""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from chain.metrics import check_port

MODES = ("solo", "cometbft")


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

    @property
    def genesis_file(self) -> Path:
        return self.home / "config" / "genesis.json"

    @property
    def database(self) -> Path:
        return self.home / "data" / "app.sqlite"

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
        return config
