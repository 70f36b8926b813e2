"""``inferchain init``, the installed console script, on a genesis file: the home it lays out
(keys, every part's config pointing at its own chain node), and every refusal leaving the
home as it was. tests/test_join_e2e.py runs it against a running network's RPC."""

import base64
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import free_port
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey
from nacl.signing import SigningKey
from test_chain_cometbft import Localnet

from genesis.account_keys import generate_account_keys
from genesis.builder import build_genesis, write_genesis
from genesis.comet_config import find_cometbft
from genesis.comet_keys import Ed25519Key, node_id, read_priv_validator_key
from genesis.network_genesis import (
    GenesisRefused,
    check_genesis,
    genesis_hash,
    read_genesis,
)
from genesis.template import parse_template

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PEER = f"{'ab' * 20}@127.0.0.1:26656"


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "inferchain"), *args], input=stdin, text=True,
                          capture_output=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def genesis(tmp_path: Path) -> tuple[Path, str]:
    key, = generate_account_keys(1)
    template = parse_template({"chain_id": "inferchain-net",
                               "validators": [{"name": "val0", "power": 10}],
                               "accounts": [{"address": key.address, "coins": "5ninfer"}]})
    path = write_genesis(build_genesis(template, {"val0": Ed25519Key.generate().public_key}),
                         tmp_path / "published" / "genesis.json")
    hashed = subprocess.run([sys.executable, "-m", "genesis", "hash", str(path)], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.strip()
    return path, hashed


def init(home: Path, genesis: Path, hashed: str, *extra: str) -> subprocess.CompletedProcess:
    return run("init", "--home", str(home), "--moniker", "box-1", "--chain-id",
               "inferchain-net", "--genesis", str(genesis), "--genesis-hash", hashed,
               "--persistent-peers", PEER, "--base-port", "31000", "--keyring-backend", "test",
               "-o", "json", *extra)


def files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def test_the_home_holds_fresh_keys_and_every_part_points_at_its_own_chain_node(tmp_path,
                                                                               genesis):
    path, hashed = genesis
    home = tmp_path / "node"
    done = init(home, path, hashed)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["ports"]["grpc"], summary["ports"]["mlnode"]) == (31003, 31005)

    config = home / "config"
    assert json.loads((config / "genesis.json").read_text()) == json.loads(path.read_text())
    comet = tomllib.loads((config / "config.toml").read_text())
    assert comet["moniker"] == "box-1" and comet["proxy_app"] == "tcp://127.0.0.1:31002"
    assert comet["p2p"]["persistent_peers"] == PEER
    assert comet["p2p"]["laddr"] == "tcp://0.0.0.0:31000"
    assert comet["rpc"]["laddr"] == "tcp://127.0.0.1:31001"
    node_key = json.loads((config / "node_key.json").read_text())
    assert node_id(base64.b64decode(node_key["priv_key"]["value"])[32:]) == summary["node_id"]
    consensus = read_priv_validator_key(config / "priv_validator_key.json")
    assert bytes(consensus.verify_key).hex() == summary["consensus_pubkey"]

    app = tomllib.loads((config / "app.toml").read_text())
    assert app == {"mode": "cometbft", "abci_listen": "127.0.0.1:31002",
                   "grpc_listen": "127.0.0.1:31003", "comet_rpc": "http://127.0.0.1:31001",
                   "block_interval_ms": 500}
    assert tomllib.loads((config / "client.toml").read_text()) == {
        "node": "127.0.0.1:31003", "chain-id": "inferchain-net", "keyring-backend": "test"}
    assert tomllib.loads((config / "mlnode.toml").read_text())["port"] == 31005
    api = tomllib.loads((home / "apinode" / "apinode.toml").read_text())
    assert (api["chain_grpc"], api["mlnode"], api["chain_id"]) == (
        "127.0.0.1:31003", "127.0.0.1:31005", "inferchain-net")
    assert (home / "apinode" / api["consensus_key_file"]).resolve() == \
        (config / "priv_validator_key.json").resolve()
    SigningKey(bytes.fromhex((home / "apinode" / "node.key").read_text().strip()))
    account = PrivateKey(bytes.fromhex((home / "apinode" / "account.key").read_text().strip()))
    assert str(Address(account.public_key, prefix="infer")) == summary["account"]
    assert len(summary["mnemonic"].split()) == 24
    shown = run("keys", "show", "box-1", "-a", "--home", str(home))
    assert shown.returncode == 0 and shown.stdout.strip() == summary["account"], shown.stderr
    for secret in ("priv_validator_key.json", "node_key.json"):
        assert (config / secret).stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("change, expected", [
    ({"--chain-id": "inferchain-other"},
     "the genesis is for chain 'inferchain-net', not 'inferchain-other'"),
    ({"--genesis-hash": "0" * 64}, "not the expected " + "0" * 64),
    ({"--genesis-hash": "xyz"}, "is not a sha256 in hex"),
    ({"--genesis": "missing.json"}, "does not exist"),
    ({"--persistent-peers": "somewhere:26656"}, "is not a peer address NODE_ID@HOST:PORT"),
    ({"--persistent-peers": ""}, "give --persistent-peers or --seeds"),
    ({"--base-port": "65534"}, "must lie within 1024..65535"),
    ({"--moniker": "two words"}, "--moniker 'two words'"),
    ({"--trust-height": "5"}, "--trust-height and --trust-hash go with --state-sync-rpc"),
    ({"--state-sync-rpc": "http://127.0.0.1:9", "--trust-hash": "AB" * 32},
     "--trust-hash needs --trust-height"),
    ({"--state-sync-rpc": "http://127.0.0.1:9", "--trust-height": "5", "--trust-hash": "xyz"},
     "--trust-hash 'xyz' is not a block hash"),
    ({"--state-sync-rpc": "peer:26657"}, "--state-sync-rpc 'peer:26657' is not an http(s) URL"),
    ({"--state-sync-rpc": "CLOSED"}, "cannot reach the peer's RPC at http://127.0.0.1:"),
])
def test_a_bad_input_is_refused_in_words_and_no_home_is_made(tmp_path, genesis, change,
                                                             expected):
    path, hashed = genesis
    args = {"--home": str(tmp_path / "node"), "--moniker": "box-1",
            "--chain-id": "inferchain-net", "--genesis": str(path), "--genesis-hash": hashed,
            "--persistent-peers": PEER, "--keyring-backend": "test"}
    args.update(change)
    if args.get("--state-sync-rpc") == "CLOSED":
        args["--state-sync-rpc"] = f"http://127.0.0.1:{free_port()}"
    done = run("init", *[x for pair in args.items() for x in pair])
    assert done.returncode == 1 and expected in done.stderr, done.stderr
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "node").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["published"], "a staging dir was left"


def test_an_existing_home_is_kept_unless_overwrite_replaces_it_whole(tmp_path, genesis):
    path, hashed = genesis
    home = tmp_path / "node"
    assert init(home, path, hashed).returncode == 0
    before = files(home)
    again = init(home, path, hashed)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert files(home) == before
    wrong = init(home, path, "0" * 64, "--overwrite")
    assert wrong.returncode == 1 and files(home) == before, "a refused overwrite changed it"
    replaced = init(home, path, hashed, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    after = files(home)
    assert set(after) == set(before)
    assert after["config/priv_validator_key.json"] != before["config/priv_validator_key.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node", "published"]


def test_the_genesis_hash_is_the_contents_not_the_spelling(genesis):
    path, hashed = genesis
    document = json.loads(path.read_text())
    # A peer's /genesis re-encodes the document (Go's encoder: compact, its own key order).
    respelled = json.loads(json.dumps(dict(reversed(list(document.items()))),
                                      separators=(",", ":")))
    assert genesis_hash(respelled) == hashed
    check_genesis(respelled, "inferchain-net", hashed.upper())
    document["app_state"]["bank"]["balances"][0]["coins"][0]["amount"] = "6"
    with pytest.raises(GenesisRefused, match="it is not the network's genesis"):
        check_genesis(document, "inferchain-net", hashed)


def serve_with(config: Path, text: str) -> subprocess.CompletedProcess:
    config.write_text(text)
    return subprocess.run([str(BIN / "inferchain-mlnode"), "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_ml_node_refuses_a_settings_file_it_cannot_take_before_loading_a_model(tmp_path):
    config = tmp_path / "mlnode.toml"
    for text, expected in (
            ('engine = "torch"\nmax_batch = "x"\n', "max_batch = 'x' is not a valid value"),
            ('engine = "torch"\nbatch = 4\n', "unknown setting 'batch'"),
            ('engine = "tensorflow"\n', "engine = 'tensorflow' is not one of"),
            ("engine = \n", "--config"),
    ):
        done = serve_with(config, text)
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_register_refuses_a_consensus_key_file_that_is_no_validator_key(tmp_path):
    home = tmp_path / "client"
    key, = generate_account_keys(1)
    assert run("keys", "import-hex", "k", key.private_key_hex, "--home", str(home),
               "--keyring-backend", "test").returncode == 0
    bad = tmp_path / "priv_validator_key.json"
    bad.write_text(json.dumps({"pub_key": {"value": base64.b64encode(b"1" * 32).decode()},
                               "priv_key": {"value": base64.b64encode(b"2" * 64).decode()}}))
    done = run("tx", "inference", "register", "--from", "k", "--url", "http://x", "--home",
               str(home), "--keyring-backend", "test", "--node-pubkey", "11" * 32, "--model",
               "m", "--consensus-key", str(bad), "--node", "127.0.0.1:1", "-y")
    assert done.returncode == 1 and "not a CometBFT priv_validator_key.json" in done.stderr, \
        done.stderr


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """One CometBFT validator, for init to take a trusted block from."""
    if find_cometbft() is None:
        pytest.skip("cometbft is not installed (make cometbft)")
    with Localnet(tmp_path_factory.mktemp("trust") / "net", validators=1).running(5) as net:
        yield net


def state_sync_init(net: Localnet, home: Path, *extra: str) -> subprocess.CompletedProcess:
    genesis = read_genesis(net.infos[0].home / "config" / "genesis.json")
    rpc = net.infos[0].ports.rpc_url
    return run("init", "--home", str(home), "--moniker", "box-1", "--chain-id",
               genesis["chain_id"], "--genesis-from", rpc, "--genesis-hash",
               genesis_hash(genesis), "--persistent-peers", PEER, "--keyring-backend",
               "test", "-o", "json", "--state-sync-rpc", rpc, *extra)


def test_state_sync_trusts_a_block_the_server_confirms(tmp_path, running):
    home = tmp_path / "node"
    latest = running.nodes[0].height()
    done = state_sync_init(running, home)
    assert done.returncode == 0, done.stderr
    trust = json.loads(done.stdout)["state_sync"]
    assert latest - 2 <= trust["trust_height"] <= running.nodes[0].height() - 2
    assert trust["trust_hash"] == \
        running.rpc(0, f"block?height={trust['trust_height']}")["block_id"]["hash"]
    statesync = tomllib.loads((home / "config" / "config.toml").read_text())["statesync"]
    rpc = running.infos[0].ports.rpc_url
    assert statesync == {**statesync, "enable": True, "rpc_servers": f"{rpc},{rpc}",
                         "trust_height": trust["trust_height"],
                         "trust_hash": trust["trust_hash"], "trust_period": "168h0m0s"}

    named = running.rpc(0, "block?height=3")["block_id"]["hash"]
    again = state_sync_init(running, tmp_path / "named", "--trust-height", "3",
                            "--trust-hash", named.lower())
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["state_sync"]["trust_hash"] == named


def test_state_sync_refuses_a_block_the_server_does_not_confirm_and_keeps_the_home(
        tmp_path, running):
    home = tmp_path / "node"
    assert state_sync_init(running, home).returncode == 0
    before = files(home)
    wrong = "AB" * 32
    real = running.rpc(0, "block?height=3")["block_id"]["hash"]
    beyond = str(running.nodes[0].height() + 1000)
    for extra, expected in (
            (("--trust-height", "3", "--trust-hash", wrong),
             f"has block 3 with hash {real}, not {wrong}"),
            (("--trust-height", beyond), f"below the trusted height {beyond}"),
            (("--state-sync-rpc", f"{running.infos[0].ports.rpc_url},"
                                  f"http://127.0.0.1:{free_port()}"),
             "cannot reach the peer's RPC at http://127.0.0.1:"),
    ):
        done = state_sync_init(running, home, "--overwrite", *extra)
        assert done.returncode == 1 and expected in done.stderr, done.stderr
        assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1
        assert files(home) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["node"], "a staging dir was left"
