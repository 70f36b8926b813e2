"""A participant's API node settings, ``HOME/apinode.toml``, and its two keys.

The account key (secp256k1, hex) signs the participant's transactions; the node key
(ed25519 seed, hex) signs inference payloads and is registered on chain. Both live in files
beside the config, readable by the operator only.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

from chain.metrics import check_port
from genesis.comet_keys import read_priv_validator_key


@dataclass(frozen=True)
class ApiNodeConfig:
    home: Path
    chain_id: str
    listen: str = "127.0.0.1:8080"
    public_url: str = "http://127.0.0.1:8080"
    chain_grpc: str = "127.0.0.1:9090"
    mlnode: str = "127.0.0.1:50051"
    database: str = "apinode.sqlite"
    gas_price: float = 0.01
    signature_window_s: int = 300
    account_key_file: str = "account.key"
    # The validator worker: commits seeds, checks the inferences they assign, votes.
    # Off, the participant still serves but does none of its checks (the chain may withhold
    # its epoch rewards for that).
    validator: bool = True
    validator_interval_s: float = 2.0
    # Checks run at once on the ML node, beside serving.
    validator_concurrency: int = 2
    # Fault injection for tests of the protocol only: "skip-checks" commits and reveals seeds
    # but checks nothing, "always-pass" reports every check as clean without scoring, "lie"
    # scores and then reports the opposite verdict. Empty: an honest validator.
    validator_fault: str = ""
    # Seconds a transfer agent waits for an executor's first token before trying the next
    # pick (it gives up sooner when the draw would become too old for the chain to start).
    first_token_timeout_s: float = 120.0
    # Seconds a transfer agent waits for each next token once the first came; past it the
    # answer is broken off as the executor's failure (the developer gets the error, the
    # executor is paid for the tokens passed on). Keep it above delivery_wait_s: an executor
    # may wait that long for a delivery signature before its next token.
    token_gap_timeout_s: float = 60.0
    # Fault injection for tests of the protocol only: "refuse-all" refuses every forward, so
    # the chain counts a miss against this participant each time a transfer agent skips it;
    # "refuse-and-relay" refuses unsigned and relays the forwarded start without a delivery,
    # which the chain refuses. Empty: an honest executor.
    executor_fault: str = ""
    # Seconds an executor holds back the start it relays (MsgRelayStart) after its first
    # token, so the transfer agent's own start normally lands first; the relay must still
    # land within the draw window (inference param max_draw_age_blocks).
    start_relay_delay_s: float = 1.0
    # Fault injection for tests of the protocol only: "withhold-start" never sends a
    # MsgStartInference, so the developer's answers go out unstarted and only the executors'
    # relays get them paid; "withhold-delivery" signs delivery of the first
    # delivery_interval_tokens tokens only. Empty: an honest transfer agent.
    transfer_agent_fault: str = ""
    # K: a transfer agent signs delivery of the output so far every K tokens it passes on, and
    # an executor takes the next token only while fewer than K it passed on lack a signature,
    # so a transfer agent can take at most K tokens unpaid. Keep the network's default: an
    # executor with a smaller K than its transfer agent stalls until delivery_wait_s.
    delivery_interval_tokens: int = 16
    # Seconds an executor waits for the next delivery signature (mid-stream, and for the
    # signature of the whole output after it) before it stops and finishes what is signed.
    delivery_wait_s: float = 30.0
    # Proof of compute (apinode.poc): prove in each epoch's PoC window on the ML node and check
    # the other members' proofs after it, whenever the chain runs PoC (epochs param
    # poc_window_blocks > 0). Off, the participant gets no weight from the next epoch on and
    # skips its PoC checks (the chain withholds a member's rewards for that).
    poc: bool = True
    # Nonces computed per epoch (nonces 0 … poc_max_nonces − 1); 0: until the window closes.
    poc_max_nonces: int = 0
    # What the ML node proves in: "float32" (what the chain's default tolerance is for) or
    # "bfloat16" (only where the chain's poc_tolerance_nano allows for it).
    poc_dtype: str = "float32"
    # How often the worker looks at the chain, and how many blocks before the PoC window's
    # last height it stops computing and submits what it found.
    poc_interval_s: float = 1.0
    poc_submit_margin_blocks: int = 3
    # Fault injection for tests of the protocol only: "fabricate" submits made-up nonces
    # (random, with distances just under the target) without computing any. Empty: honest.
    poc_fault: str = ""
    # Probes (apinode/probe_worker.py): requests this participant pays for from its account, as
    # a developer, to every model the chain draws for, at random heights of each epoch, so that
    # every member serving a model is drawn and must serve it even when developers send none.
    # 0: none (this participant then leaves the members of idle models unprobed).
    probes_per_epoch: int = 4
    probe_max_tokens: int = 8
    node_key_file: str = "node.key"
    # The participant's CometBFT priv_validator_key.json, if it runs a validator: its public
    # key is registered on chain, and the validator's voting power follows the epoch weight.
    consensus_key_file: str = ""
    # Prometheus metrics at http://HOST:PORT/metrics, HOST being listen's (docs/metrics.md);
    # 0: none.
    metrics_port: int = 0

    @classmethod
    def load(cls, home: Path) -> "ApiNodeConfig":
        path = home / "apinode.toml"
        raw = tomllib.loads(path.read_text())
        unknown = set(raw) - (set(cls.__dataclass_fields__) - {"home"})
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        config = cls(home=home, **raw)
        check_port(config.metrics_port, f"{path}: metrics_port")
        for name, least in (("probes_per_epoch", 0), ("probe_max_tokens", 1)):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{path}: {name} must be a whole number, {least} or more")
        for name in ("first_token_timeout_s", "token_gap_timeout_s", "delivery_wait_s"):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{path}: {name} must be a positive number of seconds")
        return config

    @property
    def database_url(self) -> str:
        if "://" in self.database:
            return self.database
        return f"sqlite:///{self.home / self.database}"

    def account_key(self) -> str:
        return (self.home / self.account_key_file).read_text().strip()

    def node_key(self) -> SigningKey:
        return SigningKey(bytes.fromhex((self.home / self.node_key_file).read_text().strip()))

    def consensus_key(self) -> SigningKey | None:
        """The CometBFT validator key of ``consensus_key_file`` (None when none is set): the
        node signs its registration with it, proving the validator is this participant's."""
        if not self.consensus_key_file:
            return None
        return read_priv_validator_key(self.home / self.consensus_key_file)

    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


def write_home(home: Path, config: dict, account_key_hex: str) -> None:
    """Lays out an API node home: config and keys (a fresh node key), owner-only."""
    home.mkdir(parents=True, exist_ok=True)
    lines = [f"{k} = {_toml(v)}" for k, v in config.items()]
    (home / "apinode.toml").write_text("\n".join(lines).replace("'", '"') + "\n")
    for name, secret in (("account.key", account_key_hex),
                         ("node.key", bytes(SigningKey.generate()).hex())):
        path = home / name
        path.write_text(secret + "\n")
        path.chmod(0o600)


def _toml(value: object) -> str:
    """A scalar setting as TOML writes it (true/false, not Python's True/False)."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)
