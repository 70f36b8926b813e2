"""The devnet's directory: genesis, chain homes, participant homes and keys.

ROOT/devnet.json      participants, consensus and base port: what the homes were laid out for
ROOT/keys.json        the developer's mnemonic and key, each participant's account key
ROOT/chain/valN/      chain node homes (one in solo mode, one per participant with CometBFT)
ROOT/participantN/    API node homes (apinode.toml, account and node keys, SQLite store)
ROOT/logs/            one log file per process
ROOT/env              shell exports, present only while the network is up and ready

A directory is laid out whole in a staging directory and then renamed into place, so a ROOT
that exists is complete and a later run resumes it: same keys, and the chain continues.
"""

import json
import os
import shlex
import shutil
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from cosmpy.aerial.wallet import LocalWallet
from cosmpy.mnemonic import generate_mnemonic

from apinode.config import ApiNodeConfig, write_home
from genesis.account_keys import AccountKey, generate_account_keys
from genesis.addresses import ACCOUNT_PREFIX
from genesis.app_config import add_metrics_port
from genesis.cli import DEFAULT_TEMPLATE
from genesis.homes import HOST, NodePorts
from genesis.localnet import PORTS_PER_NODE, layout_localnet, localnet_ports
from genesis.solo import layout_solo
from genesis.template import Template, load_template, parse_template

CHAIN_ID = "inferchain-local"
CONSENSUS = ("solo", "cometbft")
DEFAULTS = {"participants": 3, "consensus": "solo", "base_port": 8100}
DEVELOPER_FUNDS = "1000000000000000ninfer"  # 1,000,000 INFER
PARTICIPANT_FUNDS = "1000000000000ninfer"  # 1,000 INFER: gas for registration and finishes
# CPU generation is slow: an inference may take minutes to finish, and a TA may draw its
# executor from a block that is a while old by the time the start reaches the chain.
CPU_INFERENCE_PARAMS = {"expiration_blocks": 2000, "max_draw_age_blocks": 200}
# One-minute epochs at 500 ms blocks, so weights follow the participants' proof of compute
# (every participant the devnet starts is in genesis, with the genesis weight until then)
# within minutes; windows long enough for CPU validators with a backlog. Each opens with 10 s
# of proof of compute (the tiny transformer) and 10 s to check it.
CPU_EPOCHS_PARAMS = {"epoch_length_blocks": 120, "poc_window_blocks": 20,
                     "poc_validation_window_blocks": 20}
CPU_VALIDATION_PARAMS = {"validation_window_blocks": 120, "voting_period_blocks": 120,
                         "reveal_window_blocks": 300}
# Participant i owns the ports BASE+10*i .. BASE+10*i+9: its API node on +0, its ML node on
# +1, its chain node (genesis.localnet's layout shifted by 5) on +5 P2P, +6 CometBFT RPC,
# +7 ABCI, +8 Cosmos gRPC. A solo chain is participant 0's chain node. Each process serves
# its Prometheus metrics (docs/metrics.md) on a port of its own: the API node's on +2, the ML
# node's on +3, the chain node's on +4. The network explorer (python -m explorer) serves on
# participant 0's +9.
API_OFFSET, MLNODE_OFFSET, CHAIN_OFFSET = 0, 1, 5
METRICS_OFFSETS = {"api": 2, "mlnode": 3, "chain": 4}
EXPLORER_OFFSET = 9

SETTINGS_FILE = "devnet.json"
KEYS_FILE = "keys.json"


class DevnetError(Exception):
    """A devnet that cannot start as asked; the message says what to do instead."""


@dataclass(frozen=True)
class Settings:
    """What a devnet directory was laid out for; fixed for its lifetime (ports are in homes)."""

    participants: int
    consensus: str
    base_port: int

    @property
    def chain_nodes(self) -> int:
        return self.participants if self.consensus == "cometbft" else 1

    def api_port(self, participant: int) -> int:
        return self.base_port + PORTS_PER_NODE * participant + API_OFFSET

    def mlnode_port(self, participant: int) -> int:
        return self.base_port + PORTS_PER_NODE * participant + MLNODE_OFFSET

    @property
    def explorer_port(self) -> int:
        return self.base_port + EXPLORER_OFFSET

    def metrics_port(self, participant: int, process: str) -> int:
        """Where participant's ``process`` (a key of METRICS_OFFSETS) serves its metrics."""
        return self.base_port + PORTS_PER_NODE * participant + METRICS_OFFSETS[process]

    def metrics_urls(self, participant: int) -> dict[str, str]:
        """Each of the participant's processes' /metrics URL (its chain node's if it runs one)."""
        processes = [p for p in METRICS_OFFSETS if p != "chain" or participant < self.chain_nodes]
        return {p: f"http://{HOST}:{self.metrics_port(participant, p)}/metrics"
                for p in processes}

    def chain_ports(self, node: int) -> NodePorts:
        return localnet_ports(self.base_port + CHAIN_OFFSET, node)

    def chain_grpc(self, participant: int) -> str:
        """The chain node a participant's API node talks to: its own validator's, or the solo."""
        return f"{HOST}:{self.chain_ports(participant % self.chain_nodes).grpc}"

    def listening_ports(self) -> list[int]:
        """Every port the network listens on (a solo node serves only gRPC)."""
        ports = [p for i in range(self.participants)
                 for p in (self.api_port(i), self.mlnode_port(i), self.metrics_port(i, "api"),
                           self.metrics_port(i, "mlnode"))] + [self.explorer_port]
        for node in range(self.chain_nodes):
            ports.append(self.metrics_port(node, "chain"))
            chain = self.chain_ports(node)
            ports += ([chain.p2p, chain.rpc, chain.abci, chain.grpc]
                      if self.consensus == "cometbft" else [chain.grpc])
        return ports


def resolve_settings(root: Path, requested: dict[str, int | str | None], fresh: bool
                     ) -> Settings:
    """The settings to run with: ROOT's own when resuming, else the requested ones.

    A resumed ROOT keeps what it was laid out for; asking for something else is refused
    rather than ignored, since the chain's validators and every home's ports are fixed.
    """
    saved_file = root / SETTINGS_FILE
    if fresh or not saved_file.exists():
        return Settings(**{k: DEFAULTS[k] if v is None else v for k, v in requested.items()})
    saved = Settings(**json.loads(saved_file.read_text()))
    conflicts = [f"--{k.replace('_', '-')} {v}" for k, v in requested.items()
                 if v is not None and v != getattr(saved, k)]
    if conflicts:
        raise DevnetError(
            f"{root} was laid out for {saved.participants} participants, {saved.consensus} "
            f"consensus, base port {saved.base_port}; to run with {', '.join(conflicts)} "
            "add --fresh (a new chain and new keys) or choose another --root")
    return saved


def check_resumable(root: Path, fresh: bool) -> None:
    """Refuses a ROOT this devnet cannot resume, and a --fresh wipe of a foreign directory."""
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return
    if not (root / KEYS_FILE).exists():
        raise DevnetError(f"{root} exists and is not a devnet directory (no {KEYS_FILE}); "
                          "remove it or choose another --root")
    if not fresh and not (root / SETTINGS_FILE).exists():
        raise DevnetError(f"{root} was laid out by an older devnet; add --fresh to replace it")


@dataclass(frozen=True)
class Devnet:
    """A laid-out devnet directory and what it holds."""

    root: Path
    settings: Settings
    keys: dict

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    def chain_home(self, node: int) -> Path:
        return self.root / "chain" / f"val{node}"

    def participant_home(self, participant: int) -> Path:
        return self.root / f"participant{participant}"

    @property
    def developer(self) -> dict:
        return self.keys["developer"]

    def remember(self, name: str, value: str) -> None:
        """Adds a secret to keys.json, so a resumed devnet reuses it."""
        self.keys[name] = value
        _write_private(self.root / KEYS_FILE, json.dumps(self.keys, indent=2) + "\n")


def open_devnet(root: Path, settings: Settings, fresh: bool, *, params: dict | None = None,
                node_config: list[dict] | None = None) -> tuple[Devnet, bool]:
    """The devnet at ROOT, laid out now if needed; the flag says whether it was resumed.
    A new layout takes ``params`` (module name -> genesis params over the devnet's) and
    ``node_config[i]`` (apinode.toml settings over participant i's)."""
    if fresh and root.exists():
        shutil.rmtree(root)
    resumed = (root / SETTINGS_FILE).exists()
    if not resumed:
        staging = root.parent / f".{root.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        _lay_out(staging, settings, params or {}, node_config)
        root.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(root)  # replaces an empty ROOT, as rename(2) does
    keys = json.loads((root / KEYS_FILE).read_text())
    return Devnet(root, settings, keys), resumed


def _developer_keys() -> dict:
    """A fresh BIP-39 mnemonic and the Cosmos-path key it derives, as wallets import it."""
    mnemonic = generate_mnemonic()
    wallet = LocalWallet.from_mnemonic(mnemonic, prefix=ACCOUNT_PREFIX)
    return {"mnemonic": mnemonic, "address": str(wallet.address()),
            "private_key_hex": wallet.signer().private_key_hex}


def _template(developer: dict, participants: list[AccountKey], devnet: Devnet,
              params: dict) -> Template:
    """The chain's genesis. Its participants are the devnet's own, so they serve from the first
    block: a participant registering later has no weight until its proof of compute settles."""
    models = [dict(m) for m in load_template(DEFAULT_TEMPLATE).models]
    served = [{"model_id": models[0]["id"], "weights_sha256": models[0]["weights_sha256"]}]
    return parse_template({
        "chain_id": CHAIN_ID,
        "accounts": [{"address": developer["address"], "coins": DEVELOPER_FUNDS}]
        + [{"address": k.address, "coins": PARTICIPANT_FUNDS} for k in participants],
        "validators": [{"name": "val0", "power": 10}],
        "models": models,
        "participants": [{
            "address": k.address, "url": f"http://{HOST}:{devnet.settings.api_port(i)}",
            "node_pubkey": bytes(ApiNodeConfig.load(devnet.participant_home(i))
                                 .node_key().verify_key).hex(),
            "models": served} for i, k in enumerate(participants)],
        "params": {**params,
                   "inference": {**CPU_INFERENCE_PARAMS, **params.get("inference", {})},
                   "epochs": {**CPU_EPOCHS_PARAMS, **params.get("epochs", {})},
                   "validation": {**CPU_VALIDATION_PARAMS, **params.get("validation", {})}},
    })


def _lay_out(staging: Path, settings: Settings, params: dict,
            node_config: list[dict] | None) -> None:
    developer = _developer_keys()
    participants = generate_account_keys(settings.participants)
    keys = {"developer": developer,
            "participants": [{"address": k.address, "private_key_hex": k.private_key_hex}
                             for k in participants]}
    devnet = Devnet(staging, settings, keys)
    for i, key in enumerate(participants):
        listen = f"{HOST}:{settings.api_port(i)}"
        write_home(devnet.participant_home(i), {
            "chain_id": CHAIN_ID, "listen": listen, "public_url": f"http://{listen}",
            "chain_grpc": settings.chain_grpc(i), "mlnode": f"{HOST}:{settings.mlnode_port(i)}",
            "metrics_port": settings.metrics_port(i, "api"),
            **(node_config[i] if node_config else {}),
        }, key.private_key_hex)
    template = _template(developer, participants, devnet, params)
    if settings.consensus == "cometbft":
        layout_localnet(template, devnet.chain_home(0).parent, validators=settings.chain_nodes,
                        base_port=settings.base_port + CHAIN_OFFSET)
    else:
        layout_solo(template, devnet.chain_home(0), grpc_port=settings.chain_ports(0).grpc)
    for node in range(settings.chain_nodes):
        add_metrics_port(devnet.chain_home(node), settings.metrics_port(node, "chain"))
    _write_private(staging / KEYS_FILE, json.dumps(keys, indent=2) + "\n")
    (staging / SETTINGS_FILE).write_text(json.dumps(asdict(settings), indent=2) + "\n")


def ports_in_use(ports: list[int]) -> list[int]:
    """Ports something already listens on. SO_REUSEADDR lets a port in TIME_WAIT from the
    previous run count as free, as it is for the servers themselves."""
    busy = []
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError:
                busy.append(port)
    return busy


def write_env(path: Path, exports: dict[str, str]) -> None:
    """Writes the shell exports owner-only and atomically: a reader never sees half a file."""
    text = ("# Written by `python -m devnet` once the network is ready; removed when it stops.\n"
            "# There are no API keys yet: sign every request with\n"
            "#   apinode.openai_signing.signed_http_client(\n"
            "#       bytes.fromhex(INFERCHAIN_DEV_PRIVATE_KEY), INFERCHAIN_TA_ADDRESS,\n"
            "#       INFERCHAIN_CHAIN_ID)\n"
            + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in exports.items()))
    partial = path.with_name(f".{path.name}.partial")
    _write_private(partial, text)
    partial.rename(path)


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
