"""The ``inferchain`` console script as a client: keys, config, status, queries of every module
and signed transactions, run as subprocesses against a real solo chain node (and one CometBFT
node), each with bad inputs that must fail in one line and change nothing."""

import base64
import json
import math
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from chain_nodes import CHAIN_ID, FUNDS, ChainNode, funded_keys
from conftest import free_port, free_port_block
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.mnemonic import generate_mnemonic
from inference_actors import MODEL_ID, WEIGHTS, genesis_models
from nacl.signing import SigningKey

from genesis.comet_config import find_cometbft
from genesis.localnet import PORTS_PER_NODE, layout_localnet
from genesis.solo import layout_solo
from genesis.template import parse_template

ROOT = Path(__file__).resolve().parent.parent
# The console script pip installed beside this interpreter: what an operator runs.
INFERCHAIN = Path(sys.executable).parent / "inferchain"
# Not the default 0.01: the client must read the price the chain asks for.
GAS_PRICE = Decimal("0.025")
GOV = {"min_deposit": 2_000, "min_initial_deposit": 1_000, "voting_period_blocks": 100_000,
       "balance_votes": True}


class Chain:
    """A solo node whose genesis funds a mnemonic account (alice) and a hex-key one (bob)."""

    def __init__(self, root: Path, consensus: str = "solo") -> None:
        self.mnemonic = generate_mnemonic()
        self.alice = str(LocalWallet.from_mnemonic(self.mnemonic, prefix="infer").address())
        self.bob_key, = funded_keys(1)
        self.bob = self.bob_key.address
        data = {"chain_id": CHAIN_ID, "validators": [{"name": "val0", "power": 10}],
                "accounts": [{"address": a, "coins": f"{FUNDS}ninfer"}
                             for a in (self.alice, self.bob)],
                "models": genesis_models(),
                "params": {"gov": GOV, "auth": {"min_gas_price": str(GAS_PRICE)}}}
        if consensus == "solo":
            port = free_port()
            home = layout_solo(parse_template(data), root / "node", grpc_port=port,
                               block_interval_ms=200).home
        else:
            info, = layout_localnet(parse_template(data), root / "node", validators=1,
                                    base_port=free_port_block(PORTS_PER_NODE),
                                    timeout_commit="200ms")
            home, port = info.home, info.ports.grpc
        self.node = ChainNode(home, port).start()
        self.node.wait_height(2)
        self.address = f"127.0.0.1:{port}"
        self.home = root / "client"

    def run(self, *args: str, stdin: str = "", home: Path | None = None,
            node: str | None = None) -> subprocess.CompletedProcess:
        """The console script with ``args``, this chain's node and client home."""
        flags = ["--home", str(home or self.home)]
        if node != "":
            flags += ["--node", node or self.address]
        return subprocess.run([str(INFERCHAIN), *args, *flags], input=stdin,
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)

    def ok(self, *args: str, stdin: str = "", **kw: object) -> dict | list | str:
        """A command that must succeed; its JSON output."""
        done = self.run(*args, "-o", "json", stdin=stdin, **kw)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def fails(self, *args: str, stdin: str = "", **kw: object) -> str:
        """A command that must fail the client's way: exit 1, one ``Error:`` line (after the
        question it asked, if any), no traceback."""
        done = self.run(*args, stdin=stdin, **kw)
        assert done.returncode == 1, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("Error: "), done.stderr
        assert [line for line in lines if line.startswith("Error")] == lines[-1:], done.stderr
        assert "Traceback" not in done.stderr
        return lines[-1]

    def balance(self, address: str) -> int:
        reply = self.ok("query", "bank", "balances", address, "--denom", "ninfer")
        return int(reply["balance"]["amount"])

    def sequence(self, address: str) -> int:
        return int(self.ok("query", "auth", "account", address)["sequence"])

    def send(self, *args: str, stdin: str = "") -> dict:
        return self.ok("tx", *args, "--yes", "-b", "block", stdin=stdin)

    def close(self) -> None:
        self.node.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    assert INFERCHAIN.exists(), f"{INFERCHAIN} is not installed (pip install -e .)"
    net = Chain(tmp_path_factory.mktemp("cli"))
    net.ok("config", "set", "keyring-backend", "test")
    net.ok("keys", "add", "alice", "--recover", stdin=net.mnemonic + "\n")
    net.ok("keys", "import-hex", "bob", net.bob_key.private_key_hex)
    yield net
    net.close()


def test_keys_add_recover_show_list_delete(chain: Chain, tmp_path: Path):
    home, test_keys = tmp_path / "home", ("--keyring-backend", "test")
    made = chain.ok("keys", "add", "carol", *test_keys, home=home)
    assert made["address"].startswith("infer1") and len(made["mnemonic"].split()) == 24
    assert "already in the keyring as 'carol'" in chain.fails(
        "keys", "add", "carol2", "--recover", *test_keys, stdin=made["mnemonic"] + "\n",
        home=home)
    assert "cancelled" in chain.fails("keys", "delete", "carol", *test_keys, stdin="n\n",
                                      home=home)
    assert [k["name"] for k in chain.ok("keys", "list", *test_keys, home=home)] == ["carol"]
    deleted = chain.run("keys", "delete", "carol", "--yes", *test_keys, home=home)
    assert deleted.returncode == 0, deleted.stderr
    assert chain.ok("keys", "list", *test_keys, home=home) == []
    again = chain.ok("keys", "add", "carol2", "--recover", *test_keys,
                     stdin=made["mnemonic"] + "\n", home=home)
    assert again["address"] == made["address"] and "mnemonic" not in again

    assert chain.ok("keys", "show", "alice")["address"] == chain.alice
    shown = chain.run("keys", "show", "alice", "--address")
    assert shown.stdout.strip() == chain.alice
    assert [k["name"] for k in chain.ok("keys", "list")] == ["alice", "bob"]
    assert chain.ok("keys", "show", chain.bob)["name"] == "bob"

    assert "already exists" in chain.fails("keys", "add", "alice", "--recover",
                                           stdin=chain.mnemonic + "\n")
    assert "already in the keyring as 'bob'" in chain.fails(
        "keys", "import-hex", "bob2", chain.bob_key.private_key_hex)
    assert "not a hex secp256k1 private key" in chain.fails("keys", "import-hex", "x", "zz")
    assert "no key named 'nobody'" in chain.fails("keys", "show", "nobody")
    assert "no key named 'nobody'" in chain.fails("keys", "delete", "nobody", "--yes")
    assert "invalid key name" in chain.fails("keys", "add", "../x")
    assert "invalid mnemonic" in chain.fails("keys", "add", "dave", "--recover",
                                             stdin="not a mnemonic\n")
    assert [k["name"] for k in chain.ok("keys", "list")] == ["alice", "bob"]


def test_file_keyring_encrypts_and_signs_only_with_its_passphrase(chain: Chain, tmp_path: Path):
    home = tmp_path / "home"
    file_keys = ("--keyring-backend", "file")
    assert "at least 8 characters" in chain.fails("keys", "import-hex", "bob",
                                                  chain.bob_key.private_key_hex, *file_keys,
                                                  stdin="short\n", home=home)
    assert chain.ok("keys", "list", *file_keys, home=home) == []
    added = chain.ok("keys", "import-hex", "bob", chain.bob_key.private_key_hex, *file_keys,
                     stdin="correct horse\n", home=home)
    assert added["address"] == chain.bob
    stored = (home / "keyring-file" / "bob.json").read_text()
    assert chain.bob_key.private_key_hex not in stored
    assert json.loads(stored)["secret"]["kdf"] == "argon2id"
    assert "wrong keyring passphrase" in chain.fails(
        "keys", "add", "other", *file_keys, stdin="wrong horse\n", home=home)
    assert oct((home / "keyring-file" / "bob.json").stat().st_mode & 0o777) == "0o600"

    before = chain.balance(chain.alice), chain.sequence(chain.bob)
    assert "wrong keyring passphrase" in chain.fails(
        "tx", "bank", "send", "bob", chain.alice, "10ninfer", "--yes", *file_keys,
        stdin="wrong horse\n", home=home)
    assert (chain.balance(chain.alice), chain.sequence(chain.bob)) == before
    sent = chain.ok("tx", "bank", "send", "bob", chain.alice, "10ninfer", "--yes", "-b",
                    "block", *file_keys, stdin="correct horse\n", home=home)
    assert sent["code"] == 0
    assert chain.balance(chain.alice) == before[0] + 10


def test_config_is_read_back_and_flags_override_it(chain: Chain, tmp_path: Path):
    home = tmp_path / "home"
    dead = f"127.0.0.1:{free_port()}"
    assert chain.ok("config", "set", "node", dead, home=home, node="")["node"] == dead
    got = chain.run("config", "get", "node", home=home, node="")
    assert got.stdout.strip() == dead
    assert f"cannot reach the node at {dead}" in chain.fails("status", home=home, node="")
    assert chain.ok("status", home=home)["node_info"]["network"] == CHAIN_ID
    chain.ok("config", "set", "output", "json", home=home, node="")
    plain = chain.run("config", "show", home=home, node="")
    assert json.loads(plain.stdout)["node"] == dead
    text = chain.run("config", "show", "--output", "text", home=home, node="")
    assert f"node: {dead}" in text.stdout.splitlines()

    assert "unknown config key 'nodes'" in chain.fails("config", "set", "nodes", "x",
                                                       home=home, node="")
    assert "not a gRPC address" in chain.fails("config", "set", "node", "localhost",
                                               home=home, node="")
    assert "not one of file, test" in chain.fails("config", "set", "keyring-backend", "os",
                                                  home=home, node="")
    assert chain.run("config", "get", "node", home=home, node="").stdout.strip() == dead
    (home / "config" / "client.toml").write_text("node = [")
    assert "cannot read the config file" in chain.fails("status", home=home, node="")


def test_status_reports_the_chain_and_refuses_a_wrong_chain_id(chain: Chain):
    status = chain.ok("status")
    assert status["node_info"]["network"] == CHAIN_ID
    assert int(status["sync_info"]["latest_block_height"]) >= 2
    assert status["sync_info"]["latest_block_time"].endswith("Z")
    assert "bank" in status["modules"]
    text = chain.run("status").stdout
    assert f"network: {CHAIN_ID}" in text
    assert "runs chain 'inferchain-test', not 'other-chain'" in chain.fails(
        "status", "--chain-id", "other-chain")
    assert "not a gRPC address" in chain.fails("status", node="nowhere")


def test_queries_of_every_module(chain: Chain):
    balances = chain.ok("query", "bank", "balances", chain.alice)["balances"]
    assert [b["denom"] for b in balances] == ["ninfer"] and int(balances[0]["amount"]) > 0
    assert int(chain.ok("query", "bank", "supply", "ninfer")["amount"]["amount"]) >= 2 * FUNDS
    assert chain.ok("query", "auth", "account", chain.alice)["address"] == chain.alice
    assert chain.ok("query", "auth", "params")["min_gas_price"] == str(GAS_PRICE)
    assert chain.ok("query", "bank", "params") is not None
    models = chain.ok("query", "inference", "models")["models"]
    assert [(m["id"], m["weights_sha256"]) for m in models] == [(MODEL_ID, WEIGHTS)]
    assert chain.ok("query", "inference", "model", MODEL_ID)["id"] == MODEL_ID
    assert "expiration_blocks" in chain.ok("query", "inference", "params")
    account = chain.ok("query", "inference", "account", chain.alice)
    assert int(account["balance"]) == chain.balance(chain.alice) and account["escrow"] == "0"
    assert chain.ok("query", "inference", "inferences", "--status", "STARTED") == {
        "inferences": []}
    assert chain.ok("query", "inference", "allowance", chain.alice, chain.bob) == {
        "remaining": "0"}
    assert "members" in chain.ok("query", "epochs", "epoch")
    assert "epoch_length_blocks" in json.dumps(chain.ok("query", "epochs", "params"))
    assert chain.ok("query", "epochs", "consensus-validators") is not None
    assert chain.ok("query", "validation", "tasks") == {"tasks": []}
    assert chain.ok("query", "validation", "pending-votes", chain.alice) == {"tasks": []}
    assert chain.ok("query", "validation", "params") != {}
    assert chain.ok("query", "gov", "params")["balance_votes"] is True
    assert chain.ok("query", "gov", "upgrade-plan") is not None

    upper = chain.alice.upper()
    assert "not canonical" in chain.fails("query", "bank", "balances", upper)
    assert "prefix is 'cosmos'" in chain.fails(
        "query", "bank", "balances", "cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu")
    assert "not bech32" in chain.fails("query", "auth", "account", "infer1nothing")
    assert "denom '1x' is not a denom" in chain.fails("query", "bank", "balances",
                                                      chain.alice, "--denom", "1x")
    assert "not found" in chain.fails("query", "inference", "participant", chain.alice)
    assert "not found" in chain.fails("query", "inference", "model", "no/such-model")
    assert "not found" in chain.fails("query", "gov", "proposal", "999")
    assert "no committed tx" in chain.fails("query", "tx", "AB" * 32)
    assert "not 64 hex digits" in chain.fails("query", "tx", "xyz")
    assert "cannot reach the node" in chain.fails("query", "inference", "models",
                                                  node=f"127.0.0.1:{free_port()}")
    usage = chain.run("query", "epochs", "settlement", "-1")
    assert usage.returncode == 2 and "whole number" in usage.stderr


def test_bank_send_moves_exactly_the_amount_and_pays_the_chains_fee(chain: Chain):
    recipient = str(LocalWallet(PrivateKey(), prefix="infer").address())
    before = chain.balance(chain.alice)
    planned = chain.ok("tx", "bank", "send", "alice", recipient, "12345ninfer", "--dry-run")
    assert planned["gas_limit"] == math.ceil(planned["gas_estimate"] * Decimal("1.3"))
    assert planned["fee"] == f"{math.ceil(planned['gas_limit'] * GAS_PRICE)}ninfer"

    sent = chain.send("bank", "send", "alice", recipient, "12345ninfer")
    assert sent["code"] == 0 and len(sent["txhash"]) == 64 and int(sent["height"]) > 0
    gas_limit, gas_used = int(sent["gas_wanted"]), int(sent["gas_used"])
    fee = math.ceil(gas_limit * GAS_PRICE)
    assert sent["fee"] == f"{fee}ninfer"
    assert gas_limit == planned["gas_limit"]
    assert planned["gas_estimate"] * 0.9 <= gas_used <= planned["gas_estimate"] <= gas_limit
    assert chain.balance(recipient) == 12345
    assert chain.balance(chain.alice) == before - 12345 - fee
    found = chain.ok("query", "tx", sent["txhash"])
    assert found["code"] == 0 and found["height"] == sent["height"]

    fixed = chain.send("bank", "send", chain.alice, recipient, "5ninfer", "--gas", "150000",
                       "--fees", "7000ninfer")
    assert fixed["gas_wanted"] == "150000"
    assert chain.balance(recipient) == 12350
    assert chain.balance(chain.alice) == before - 12345 - fee - 5 - 7000

    synced = chain.ok("tx", "bank", "send", "alice", recipient, "1ninfer", "--yes")
    assert synced["code"] == 0 and synced["height"] == "0"


def test_refused_sends_say_why_and_change_nothing(chain: Chain):
    recipient = str(LocalWallet(PrivateKey(), prefix="infer").address())
    state = chain.balance(chain.alice), chain.sequence(chain.alice)
    send = ("tx", "bank", "send", "alice")

    assert "(code 5, codespace sdk)" in chain.fails(*send, recipient, f"{FUNDS * 2}ninfer", "--yes")
    assert "(code 5, codespace sdk)" in chain.fails(*send, recipient, "10uatom", "--yes")
    refused = chain.fails(*send, recipient, "10ninfer", "--gas", "100000", "--fees", "1ninfer",
                          "--yes")
    assert "the chain refused tx" in refused and "insufficient fee" in refused
    assert "code 13" in refused
    assert "bad coin '1.5ninfer'" in chain.fails(*send, recipient, "1.5ninfer", "--yes")
    assert "amount must be positive" in chain.fails(*send, recipient, "0ninfer", "--yes")
    assert "bad coin 'ninfer5'" in chain.fails(*send, recipient, "ninfer5", "--yes")
    assert "recipient: invalid address" in chain.fails(*send, "infer1bad", "1ninfer", "--yes")
    assert "no key named 'mallory'" in chain.fails("tx", "bank", "send", "mallory", recipient,
                                                   "1ninfer", "--yes")
    assert "no key with address" in chain.fails("tx", "bank", "send", recipient, chain.alice,
                                                "1ninfer", "--yes")
    assert "runs chain 'inferchain-test', not 'inferchain-main'" in chain.fails(
        *send, recipient, "1ninfer", "--yes", "--chain-id", "inferchain-main")
    assert "--gas 'lots'" in chain.fails(*send, recipient, "1ninfer", "--gas", "lots")
    assert "--gas-adjustment" in chain.fails(*send, recipient, "1ninfer",
                                             "--gas-adjustment", "0.5")
    assert "--gas-prices" in chain.fails(*send, recipient, "1ninfer", "--gas-prices", "cheap")
    assert "cancelled" in chain.fails(*send, recipient, "1ninfer", stdin="no\n")
    assert "cannot reach the node" in chain.fails(*send, recipient, "1ninfer", "--yes",
                                                  node=f"127.0.0.1:{free_port()}")
    assert (chain.balance(chain.alice), chain.sequence(chain.alice)) == state
    assert chain.balance(recipient) == 0


def test_inference_register_update_allowance_withdraw(chain: Chain, tmp_path: Path):
    node_key = SigningKey.generate()
    key_file = tmp_path / "node.key"
    key_file.write_text(bytes(node_key).hex())
    register = ("inference", "register", "--from", "bob", "--url", "http://127.0.0.1:1")
    assert "not in the chain's registry" in chain.fails(
        "tx", *register, "--node-key", str(key_file), "--model", "no/such-model", "--yes")
    assert "not a 32-byte ed25519 public key" in chain.fails(
        "tx", *register, "--node-pubkey", "abcd", "--model", MODEL_ID, "--yes")
    assert "is not a participant" in chain.fails(
        "tx", "inference", "update", "--from", "bob", "--url", "http://x.example", "--yes")
    assert "not found" in chain.fails("query", "inference", "participant", chain.bob)

    done = chain.send(*register, "--node-key", str(key_file), "--model", MODEL_ID)
    assert done["code"] == 0
    participant = chain.ok("query", "inference", "participant", chain.bob)
    assert participant["url"] == "http://127.0.0.1:1" and participant["active"] is True
    assert participant["models"] == [{"model_id": MODEL_ID, "weights_sha256": WEIGHTS,
                                      "dtype": "float32"}]
    assert participant["node_pubkey"] == base64.b64encode(bytes(node_key.verify_key)).decode()
    listed = chain.ok("query", "inference", "participants")["participants"]
    assert [p["address"] for p in listed] == [chain.bob]

    refused = chain.fails("tx", *register, "--node-key", str(key_file), "--model", MODEL_ID,
                          "--yes")
    assert "already registered" in refused
    assert "nothing to update" in chain.fails("tx", "inference", "update", "--from", "bob",
                                              "--yes")
    chain.send("inference", "update", "--from", "bob", "--url",
               "https://bob.example")
    updated = chain.ok("query", "inference", "participant", chain.bob)
    assert updated["url"] == "https://bob.example"
    assert updated["models"] == participant["models"]
    assert updated["node_pubkey"] == participant["node_pubkey"]

    chain.send("inference", "grant-allowance", chain.bob, "5000", "--from", "alice")
    assert chain.ok("query", "inference", "allowance", chain.alice, chain.bob) == {
        "remaining": "5000"}
    assert "transfer agent: invalid address" in chain.fails(
        "tx", "inference", "grant-allowance", "infer1zzz", "5", "--from", "alice", "--yes")

    chain.send("inference", "withdraw", "--from", "bob")
    assert chain.ok("query", "inference", "participant", chain.bob)["active"] is False


def test_gov_submit_deposit_vote(chain: Chain, tmp_path: Path):
    proposal = tmp_path / "proposal.json"
    proposal.write_text(json.dumps({
        "title": "Cheaper memos", "summary": "shorter memo limit", "deposit": 1_000,
        "messages": [{"@type": "/inference.v1.ParamChange", "module": "auth",
                      "param": "max_memo_characters", "value": 128}]}))
    before = chain.balance(chain.alice)
    submitted = chain.send("gov", "submit-proposal", str(proposal), "--from", "alice")
    pid = next(e["attributes"]["proposal_id"] for e in submitted["events"]
               if e["type"] == "submit_proposal")
    fee = int(submitted["fee"].removesuffix("ninfer"))
    assert chain.balance(chain.alice) == before - 1_000 - fee
    listed = chain.ok("query", "gov", "proposals", "--status", "deposit_period")
    assert [p["id"] for p in listed] == [pid]

    chain.send("gov", "deposit", pid, "1000", "--from", "bob")
    assert chain.ok("query", "gov", "proposal", pid)["proposal"]["status"] == \
        "PROPOSAL_STATUS_VOTING_PERIOD"
    deposits = chain.ok("query", "gov", "deposits", pid)["deposits"]
    assert sorted(d["depositor"] for d in deposits) == sorted([chain.alice, chain.bob])
    chain.send("gov", "vote", pid, "yes", "--from", "alice")
    shown = chain.ok("query", "gov", "proposal", pid)
    assert shown["votes"] == [{"proposal_id": pid, "voter": chain.alice,
                               "option": "VOTE_OPTION_YES"}]
    assert int(chain.ok("query", "gov", "tally", pid)["yes"]) > 0

    state = chain.balance(chain.alice), chain.sequence(chain.alice)
    assert "proposal 999 does not exist" in chain.fails("tx", "gov", "vote", "999", "yes",
                                                        "--from", "alice", "--yes")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"title": "t", "deposit": 1_000, "messages": [
        {"@type": "/inference.v1.ParamChange", "module": "auth", "key": "x"}]}))
    assert f"proposal file {bad}" in chain.fails("tx", "gov", "submit-proposal", str(bad),
                                                 "--from", "alice", "--yes")
    assert "No such file" in chain.fails("tx", "gov", "submit-proposal",
                                         str(tmp_path / "none.json"), "--from", "alice",
                                         "--yes")
    assert (chain.balance(chain.alice), chain.sequence(chain.alice)) == state
    # The gov command line this client shares its gov pieces with still works.
    old = subprocess.run([str(INFERCHAIN), "gov", "--grpc", chain.address, "proposal", pid],
                         capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert old.returncode == 0, old.stderr
    assert json.loads(old.stdout)["votes"] == shown["votes"]


def test_cometbft_node_answers_status_and_takes_a_send(tmp_path: Path):
    assert find_cometbft() is not None, "cometbft is not installed (make cometbft)"
    net = Chain(tmp_path, consensus="cometbft")
    try:
        net.ok("keys", "add", "alice", "--recover", "--keyring-backend", "test",
               stdin=net.mnemonic + "\n")
        assert net.ok("status")["node_info"]["network"] == CHAIN_ID
        before = net.balance(net.alice)
        sent = net.ok("tx", "bank", "send", "alice", net.bob, "777ninfer", "--yes", "-b",
                      "block", "--keyring-backend", "test")
        fee = math.ceil(int(sent["gas_wanted"]) * GAS_PRICE)
        assert net.balance(net.bob) == FUNDS + 777
        assert net.balance(net.alice) == before - 777 - fee
        assert "(code 5, codespace sdk)" in net.fails("tx", "bank", "send", "alice", net.bob,
                                                 f"{FUNDS * 2}ninfer", "--yes",
                                                 "--keyring-backend", "test")
        assert net.balance(net.bob) == FUNDS + 777
    finally:
        net.close()
