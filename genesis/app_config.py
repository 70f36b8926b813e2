"""Our chain node's own config, HOME/config/app.toml, in the exact five-key format it reads:

    mode = "cometbft"            # or "solo"
    abci_listen = "127.0.0.1:26658"
    grpc_listen = "127.0.0.1:9090"
    comet_rpc = "http://127.0.0.1:26657"
    block_interval_ms = 500     # used in solo mode only

and, where a caller turns metrics on (``add_metrics_port``), ``metrics_port = 26660``.
"""

from dataclasses import dataclass
from pathlib import Path

MODES = ("cometbft", "solo")


@dataclass(frozen=True)
class AppConfig:
    """What the chain node needs to know that CometBFT's config.toml does not say."""

    mode: str
    abci_listen: str
    grpc_listen: str
    comet_rpc: str
    block_interval_ms: int = 500

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if isinstance(self.block_interval_ms, bool) or self.block_interval_ms <= 0:
            raise ValueError(f"block_interval_ms must be positive, got {self.block_interval_ms}")

    def to_toml(self) -> str:
        """The file's text, keys in the documented order."""
        return (
            f'mode = "{self.mode}"\n'
            f'abci_listen = "{self.abci_listen}"\n'
            f'grpc_listen = "{self.grpc_listen}"\n'
            f'comet_rpc = "{self.comet_rpc}"\n'
            f"block_interval_ms = {int(self.block_interval_ms)}\n"
        )


def write_app_toml(home: Path, config: AppConfig) -> Path:
    """Writes HOME/config/app.toml and returns its path."""
    path = home / "config" / "app.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_toml(), encoding="utf-8")
    return path


def add_metrics_port(home: Path, port: int) -> None:
    """Turns on the node's Prometheus metrics (docs/metrics.md) at ``port`` in a laid-out
    home's app.toml, which has no metrics_port of its own."""
    with (home / "config" / "app.toml").open("a", encoding="utf-8") as app_toml:
        app_toml.write(f"metrics_port = {port}\n")
