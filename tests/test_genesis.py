"""The genesis package: template checks, the genesis document, key files checked against the real
cometbft binary, and laid-out homes that real CometBFT (with its built-in kvstore app) runs."""

import base64
import json
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import free_port_block
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey

from genesis.account_keys import generate_account_keys
from genesis.builder import CONSENSUS_PARAMS, build_app_state, build_genesis
from genesis.cli import DEFAULT_TEMPLATE, main
from genesis.coins import Coin, parse_coins
from genesis.comet_config import find_cometbft, patch_toml
from genesis.comet_keys import Ed25519Key, validator_address
from genesis.localnet import PORTS_PER_NODE, layout_localnet
from genesis.solo import layout_solo
from genesis.template import Template, TemplateError, load_template, parse_template
from genesis.timestamps import normalize_genesis_time, now_genesis_time

COMETBFT = find_cometbft()
needs_cometbft = pytest.mark.skipif(COMETBFT is None, reason="cometbft binary not installed")
KEYS = generate_account_keys(3)


def template_text(accounts: str = "", validators: str | None = None, extra: str = "",
                  tables: str = "") -> str:
    """Top-level keys (`extra`) first and [params.*] `tables` last, as TOML needs."""
    if validators is None:
        validators = '[[validators]]\nname = "val0"\npower = 10\n'
    return f'chain_id = "inferchain-test"\n{extra}\n{accounts}\n{validators}\n{tables}'


def account(address: str, coins: str = "1000ninfer") -> str:
    return f'[[accounts]]\naddress = "{address}"\ncoins = "{coins}"\n'


def parse(text: str) -> Template:
    return parse_template(tomllib.loads(text))


def problems(text: str) -> list[str]:
    with pytest.raises(TemplateError) as caught:
        parse(text)
    return caught.value.problems


# --- template ---------------------------------------------------------------------------------


def test_minimal_template_takes_defaults():
    t = parse(template_text(account(KEYS[0].address)))
    assert t.chain_id == "inferchain-test"
    assert t.initial_height == 1
    assert t.genesis_time is None
    assert t.params == {}
    assert t.accounts[0].coins == (Coin("ninfer", 1000),)
    assert t.validators[0].name == "val0" and t.validators[0].pub_key is None


def test_default_template_loads():
    t = load_template(DEFAULT_TEMPLATE)
    assert t.chain_id == "inferchain-local"
    assert [v.name for v in t.validators] == ["val0"]


def flip_last_char(address: str) -> str:
    return address[:-1] + ("q" if address[-1] != "q" else "p")


BAD_ACCOUNTS = [
    (account(flip_last_char(KEYS[0].address)), "not a valid bech32"),
    (account(str(Address(PrivateKey().public_key, prefix="cosmos"))), "use 'infer'"),
    (account("infer1"), "not a valid bech32"),
    ('[[accounts]]\ncoins = "5ninfer"\n', "accounts[0].address: required"),
    (account(KEYS[0].address, "1000"), "bad coin '1000'"),
    (account(KEYS[0].address, "ninfer"), "bad coin 'ninfer'"),
    (account(KEYS[0].address, "-5ninfer"), "bad coin"),
    (account(KEYS[0].address, "1.5ninfer"), "bad coin"),
    (account(KEYS[0].address, "10n"), "bad coin"),
    (account(KEYS[0].address, "0ninfer"), "amount must be positive"),
    (account(KEYS[0].address, "10ninfer,5ninfer"), "appears twice"),
    (account(KEYS[0].address, ""), "empty value"),
    (account(KEYS[0].address) + account(KEYS[0].address), "already funded by accounts[0]"),
    (account(KEYS[0].address) + account(KEYS[0].address.upper()), "already funded"),
    (account(KEYS[0].address) + "extra = 1\n", "accounts[0].extra: unknown key"),
]


# Named by position and message, not by the accounts: those hold fresh random keys, and
# parallel test workers must collect the same ids.
@pytest.mark.parametrize(("accounts", "expected"), BAD_ACCOUNTS,
                         ids=[f"{n}-{expected}" for n, (_, expected) in enumerate(BAD_ACCOUNTS)])
def test_bad_accounts_are_refused(accounts, expected):
    found = problems(template_text(accounts))
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(("validators", "expected"), [
    ("", "at least one [[validators]]"),
    ("validators = []\n", "at least one [[validators]]"),
    ('[[validators]]\nname = "v"\npower = 0\n', "power: must be a positive integer"),
    ('[[validators]]\nname = "v"\npower = -3\n', "power: must be a positive integer"),
    ('[[validators]]\nname = "v"\npower = true\n', "power: must be a positive integer"),
    ('[[validators]]\nname = "v"\npower = "10"\n', "power: must be a positive integer"),
    ('[[validators]]\nname = "v"\n', "power: must be a positive integer"),
    ('[[validators]]\nname = "../x"\npower = 1\n', "name: '../x'"),
    ('[[validators]]\nname = "v"\npower = 1\n' * 2, "'v' is used twice"),
    ('[[validators]]\nname = "v"\npower = 1\npub_key = "abc"\n', "32-byte ed25519"),
    ('[[validators]]\nname = "v"\npower = 1\npub_key = "' + base64.b64encode(b"k" * 32).decode()
     + '"\n[[validators]]\nname = "w"\npower = 1\npub_key = "'
     + base64.b64encode(b"k" * 32).decode() + '"\n', "same key is given to two"),
    ('[[validators]]\nname = "v"\npower = 1152921504606846975\n'
     '[[validators]]\nname = "w"\npower = 1\n', "exceeds CometBFT's maximum"),
])
def test_bad_validators_are_refused(validators, expected):
    found = problems(template_text(validators=validators))
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(("text", "expected"), [
    ('chain_id = ""\n[[validators]]\nname = "v"\npower = 1\n', "chain_id: required"),
    ('chain_id = "  "\n[[validators]]\nname = "v"\npower = 1\n', "chain_id: required"),
    ('[[validators]]\nname = "v"\npower = 1\n', "chain_id: required"),
    ('chain_id = "' + "x" * 51 + '"\n[[validators]]\nname = "v"\npower = 1\n', "limit of 50"),
    (template_text(extra="initial_height = 0"), "initial_height: must be an integer >= 1"),
    (template_text(extra='genesis_time = "yesterday"'), "genesis_time: 'yesterday' is not"),
    (template_text(extra='genesis_time = "2026-02-30T00:00:00Z"'), "not a real date"),
    (template_text(extra="genesis_time = 2026-01-01T00:00:00"), "needs a time zone"),
    (template_text(extra="colour = 1"), "colour: unknown key"),
    (template_text(tables="[params.Bank]\nx = 1"), "params.Bank: module names"),
    (template_text(tables="[params.auth]\nwhen = 2026-01-01"), "params.auth.when: a date"),
    (template_text(tables="[params.auth]\nx = inf"), "params.auth.x: inf has no JSON form"),
    (template_text(extra="params = 3"), "params: must be a table"),
])
def test_bad_top_level_is_refused(text, expected):
    found = problems(text)
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('chain_id = ""\n' + account("cosmos1xyz", "0ninfer")
                    + '[[validators]]\nname = "v"\npower = 0\n')
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    assert len(caught.value.problems) == 4, caught.value.problems
    assert str(path) in str(caught.value)


def test_invalid_toml_is_a_template_error(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("chain_id = \n")
    with pytest.raises(TemplateError, match="not valid TOML"):
        load_template(path)


def test_coins_are_sorted_by_denom_and_normalised():
    assert parse_coins("5uatom, 007ninfer,1 stake") == (
        Coin("ninfer", 7), Coin("stake", 1), Coin("uatom", 5))


@pytest.mark.parametrize(("given", "expected"), [
    ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ("2026-01-01T00:00:00.500000000Z", "2026-01-01T00:00:00.5Z"),
    ("2026-01-01T00:00:00.123456789Z", "2026-01-01T00:00:00.123456789Z"),
    ("2026-01-01T02:00:00+02:00", "2026-01-01T00:00:00Z"),
    (datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC), "2026-01-01T00:00:00.25Z"),
])
def test_genesis_time_is_written_as_cometbft_does(given, expected):
    assert normalize_genesis_time(given) == expected


def test_now_is_canonical():
    now = now_genesis_time()
    assert normalize_genesis_time(now) == now and now.endswith("Z")


# --- genesis document -------------------------------------------------------------------------


def full_template() -> Template:
    pub_key = base64.b64encode(Ed25519Key.generate().public_key).decode()
    return parse(
        'chain_id = "inferchain-test"\ninitial_height = 7\n'
        'genesis_time = "2026-01-01T00:00:00.100Z"\n'
        + account(KEYS[1].address, "5uatom,1000ninfer") + account(KEYS[0].address, "1ninfer")
        + '[[validators]]\nname = "val0"\npower = 10\n'
        + f'[[validators]]\nname = "ext"\npower = 3\npub_key = "{pub_key}"\n'
        + '[params.inference]\nprice = "2"\n[params.auth]\nmin_gas_price = "0.01"\n'
        + "[params.bank]\nsend_enabled = true\n"
    )


def test_genesis_document_shape():
    template = full_template()
    key = Ed25519Key.generate()
    genesis = build_genesis(template, {"val0": key.public_key})
    assert list(genesis) == ["genesis_time", "chain_id", "initial_height", "consensus_params",
                             "validators", "app_hash", "app_state"]
    assert genesis["genesis_time"] == "2026-01-01T00:00:00.1Z"
    assert genesis["initial_height"] == "7"
    assert genesis["app_hash"] == ""
    assert genesis["consensus_params"] == CONSENSUS_PARAMS
    val0, ext = genesis["validators"]
    assert val0 == {
        "address": validator_address(key.public_key),
        "pub_key": {"type": "tendermint/PubKeyEd25519",
                    "value": base64.b64encode(key.public_key).decode()},
        "power": "10",
        "name": "val0",
    }
    assert ext["power"] == "3" and ext["name"] == "ext"
    assert genesis["app_state"] == {
        "auth": {"params": {"min_gas_price": "0.01"}},
        "bank": {
            "balances": [
                {"address": KEYS[1].address, "coins": [{"denom": "ninfer", "amount": "1000"},
                                                       {"denom": "uatom", "amount": "5"}]},
                {"address": KEYS[0].address, "coins": [{"denom": "ninfer", "amount": "1"}]},
            ],
            "params": {"send_enabled": True},
        },
        "inference": {"params": {"price": "2"}, "models": []},
    }


def test_genesis_is_deterministic_for_fixed_inputs():
    template = full_template()
    pub = {"val0": Ed25519Key.generate().public_key}
    assert json.dumps(build_genesis(template, pub)) == json.dumps(build_genesis(template, pub))


def test_builder_refuses_missing_unknown_and_conflicting_keys():
    template = full_template()
    with pytest.raises(ValueError, match="'val0' has no public key"):
        build_genesis(template, {})
    with pytest.raises(ValueError, match="not in the template"):
        build_genesis(template, {"val0": b"a" * 32, "nobody": b"b" * 32})
    with pytest.raises(ValueError, match="has a pub_key in the template"):
        build_genesis(template, {"val0": b"a" * 32, "ext": b"b" * 32})


@needs_cometbft
def test_consensus_params_match_cometbft_init(tmp_path):
    subprocess.run([COMETBFT, "init", "--home", str(tmp_path)], check=True, capture_output=True)
    theirs = json.loads((tmp_path / "config" / "genesis.json").read_text())
    ours = build_genesis(parse(template_text()), {"val0": Ed25519Key.generate().public_key})
    assert ours["consensus_params"] == theirs["consensus_params"]
    assert set(ours) - {"app_state"} == set(theirs)
    assert set(ours["validators"][0]) == set(theirs["validators"][0])


# --- homes ------------------------------------------------------------------------------------


def test_localnet_lays_out_four_homes(tmp_path):
    template = parse(template_text(account(KEYS[0].address)))
    nodes = layout_localnet(template, tmp_path / "net", validators=4, base_port=26600,
                            timeout_commit="250ms", config_base="")
    assert [n.name for n in nodes] == ["val0", "val1", "val2", "val3"]
    all_ports = [p for n in nodes for p in (n.ports.p2p, n.ports.rpc, n.ports.abci, n.ports.grpc)]
    assert len(set(all_ports)) == 16
    assert nodes[1].ports.p2p == 26610 and nodes[1].ports.grpc == 26613

    genesis_texts = {(n.home / "config" / "genesis.json").read_text() for n in nodes}
    assert len(genesis_texts) == 1
    genesis = json.loads(genesis_texts.pop())
    assert [v["address"] for v in genesis["validators"]] == [n.validator_address for n in nodes]
    assert genesis["app_state"]["bank"]["balances"][0]["address"] == KEYS[0].address

    for node in nodes:
        config = tomllib.loads((node.home / "config" / "config.toml").read_text())
        assert config["moniker"] == node.name
        assert config["proxy_app"] == f"tcp://127.0.0.1:{node.ports.abci}"
        assert config["rpc"]["laddr"] == f"tcp://127.0.0.1:{node.ports.rpc}"
        assert config["rpc"]["pprof_laddr"] == ""
        assert config["p2p"]["laddr"] == f"tcp://127.0.0.1:{node.ports.p2p}"
        assert config["p2p"]["addr_book_strict"] is False
        assert config["p2p"]["allow_duplicate_ip"] is True
        assert config["consensus"]["timeout_commit"] == "250ms"
        assert config["consensus"]["create_empty_blocks"] is True
        assert config["instrumentation"]["prometheus"] is False
        peers = sorted(config["p2p"]["persistent_peers"].split(","))
        assert peers == sorted(f"{o.node_id}@127.0.0.1:{o.ports.p2p}" for o in nodes if o != node)
        assert (node.home / "config" / "app.toml").read_text() == (
            'mode = "cometbft"\n'
            f'abci_listen = "127.0.0.1:{node.ports.abci}"\n'
            f'grpc_listen = "127.0.0.1:{node.ports.grpc}"\n'
            f'comet_rpc = "http://127.0.0.1:{node.ports.rpc}"\n'
            "block_interval_ms = 500\n"
        )
        state = json.loads((node.home / "data" / "priv_validator_state.json").read_text())
        assert state == {"height": "0", "round": 0, "step": 0}
        assert (node.home / "config" / "priv_validator_key.json").stat().st_mode & 0o077 == 0


def test_localnet_refuses_a_used_directory_and_given_pub_keys(tmp_path):
    template = parse(template_text())
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "old").write_text("keys")
    with pytest.raises(FileExistsError):
        layout_localnet(template, tmp_path / "net", config_base="")
    with pytest.raises(ValueError, match="have a pub_key"):
        layout_localnet(full_template(), tmp_path / "other", config_base="")
    with pytest.raises(ValueError, match="Go duration"):
        layout_localnet(template, tmp_path / "third", timeout_commit="fast", config_base="")


def test_patch_toml_keeps_comments_and_adds_missing_keys():
    base = '# top\nmoniker = "x"\n\n[p2p]\n# the address\nladdr = "a"\n'
    patched = patch_toml(base, {"": {"moniker": "y", "proxy_app": "p"},
                                "p2p": {"laddr": "b", "pex": False}, "new": {"n": 1}})
    assert "# the address" in patched and "# top" in patched
    assert tomllib.loads(patched) == {"moniker": "y", "proxy_app": "p",
                                      "p2p": {"laddr": "b", "pex": False}, "new": {"n": 1}}


def test_solo_home(tmp_path):
    node = layout_solo(parse(template_text(account(KEYS[0].address))), tmp_path / "solo",
                       grpc_port=9191, block_interval_ms=200)
    files = sorted(str(p.relative_to(node.home)) for p in node.home.rglob("*") if p.is_file())
    assert files == ["config/app.toml", "config/genesis.json", "config/priv_validator_key.json"]
    app = tomllib.loads((node.home / "config" / "app.toml").read_text())
    assert app == {"mode": "solo", "abci_listen": "127.0.0.1:26658",
                   "grpc_listen": "127.0.0.1:9191", "comet_rpc": "http://127.0.0.1:26657",
                   "block_interval_ms": 200}
    genesis = json.loads((node.home / "config" / "genesis.json").read_text())
    key = json.loads((node.home / "config" / "priv_validator_key.json").read_text())
    assert genesis["validators"][0]["address"] == key["address"] == node.validator_address
    assert genesis["validators"][0]["pub_key"] == key["pub_key"]
    assert node.mode == "solo" and node.node_id is None
    with pytest.raises(ValueError, match="exactly one validator"):
        layout_solo(parse(template_text(validators='[[validators]]\nname = "a"\npower = 1\n'
                                        '[[validators]]\nname = "b"\npower = 1\n')),
                    tmp_path / "solo2")


# --- CLI --------------------------------------------------------------------------------------


def test_cli_keys_prints_addresses_of_the_keys(capsys):
    assert main(["keys", "--count", "2", "--json"]) == 0
    keys = json.loads(capsys.readouterr().out)
    assert len(keys) == 2
    for key in keys:
        derived = Address(PrivateKey(bytes.fromhex(key["private_key"])).public_key, prefix="infer")
        assert str(derived) == key["address"]


def test_cli_build_and_localnet(tmp_path, capsys):
    template = tmp_path / "t.toml"
    template.write_text(template_text(account(KEYS[2].address, "9ninfer")))
    assert main(["build", "--template", str(template), "--out", str(tmp_path / "g.json")]) == 2
    assert "--keys-dir" in capsys.readouterr().err
    assert main(["build", "--template", str(template), "--out", str(tmp_path / "g.json"),
                 "--keys-dir", str(tmp_path / "keys")]) == 0
    genesis = json.loads((tmp_path / "g.json").read_text())
    key_file = tmp_path / "keys" / "val0" / "config" / "priv_validator_key.json"
    key = json.loads(key_file.read_text())
    assert genesis["validators"][0]["pub_key"] == key["pub_key"]

    assert main(["localnet", "--validators", "2", "--out", str(tmp_path / "net"),
                 "--template", str(template), "--base-port", "30000"]) == 0
    out = capsys.readouterr().out
    assert "val1\tcometbft\t30010\t30011\t30012\t30013" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('chain_id = ""\n')
    assert main(["solo", "--out", str(tmp_path / "s"), "--template", str(bad)]) == 2
    assert "chain_id: required" in capsys.readouterr().err


# --- against the real cometbft binary ---------------------------------------------------------


@needs_cometbft
def test_key_files_agree_with_cometbft(tmp_path):
    (node,) = layout_localnet(parse(template_text()), tmp_path / "net", config_base="")
    home = str(node.home)
    shown_id = subprocess.run([COMETBFT, "show-node-id", "--home", home], check=True,
                              capture_output=True, text=True).stdout.strip()
    assert shown_id == node.node_id
    shown = json.loads(subprocess.run([COMETBFT, "show-validator", "--home", home], check=True,
                                      capture_output=True, text=True).stdout)
    genesis = json.loads((node.home / "config" / "genesis.json").read_text())
    assert shown == genesis["validators"][0]["pub_key"]


def rpc_height(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as response:
        return int(json.load(response)["result"]["sync_info"]["latest_block_height"])


def rpc_peers(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/net_info", timeout=1) as response:
        return int(json.load(response)["result"]["n_peers"])


@contextmanager
def running_kvstore(homes: list[Path]) -> Iterator[None]:
    """CometBFT with its built-in kvstore app on each home; our app_state is ignored by kvstore."""
    processes = []
    try:
        for home in homes:
            log = (home / "cometbft.log").open("w")
            processes.append(subprocess.Popen(
                [COMETBFT, "start", "--home", str(home), "--proxy_app=kvstore"],
                stdout=log, stderr=subprocess.STDOUT))
            log.close()
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(check, what: str, homes: list[Path], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    logs = "\n".join((h / "cometbft.log").read_text()[-2000:] for h in homes)
    raise AssertionError(f"{what} not reached in {timeout_s}s:\n{logs}")


@needs_cometbft
def test_four_node_localnet_makes_blocks_under_cometbft(tmp_path):
    """The binary's own default config.toml, patched: four validators peer and commit blocks."""
    nodes = layout_localnet(parse(template_text()), tmp_path / "net", validators=4,
                            base_port=free_port_block(4 * PORTS_PER_NODE), timeout_commit="200ms")
    homes = [n.home for n in nodes]
    with running_kvstore(homes):
        wait_for(lambda: all(rpc_height(n.ports.rpc) >= 2 for n in nodes), "height 2", homes)
        wait_for(lambda: rpc_peers(nodes[0].ports.rpc) == 3, "3 peers", homes)


@needs_cometbft
def test_minimal_config_without_binary_defaults_runs_under_cometbft(tmp_path):
    """The fallback config.toml (only our keys) is complete: CometBFT fills in its defaults."""
    (node,) = layout_localnet(parse(template_text(extra="initial_height = 5")), tmp_path / "net",
                              base_port=free_port_block(PORTS_PER_NODE), timeout_commit="200ms",
                              config_base="")
    with running_kvstore([node.home]):
        wait_for(lambda: rpc_height(node.ports.rpc) >= 6, "height 6", [node.home])


def test_models_land_in_the_inference_registry_and_bad_ones_are_refused():
    sha = "ab" * 32
    good = parse_template({"chain_id": "c", "validators": [{"name": "v", "power": 1}],
                           "models": [{"id": "m", "weights_sha256": sha, "top_k": 5}]})
    assert build_app_state(good)["inference"]["models"] == [
        {"id": "m", "weights_sha256": sha, "top_k": 5}]
    with pytest.raises(TemplateError) as err:
        parse_template({"chain_id": "c", "validators": [{"name": "v", "power": 1}],
                        "models": [{"id": "m", "weights_sha256": "xyz"},
                                   {"id": "m", "weights_sha256": sha, "top_k": -1}]})
    text = "\n".join(err.value.problems)
    assert "64 lower-case hex" in text and "listed twice" in text and "top_k" in text


@pytest.mark.parametrize("model", [{"top_k": 0}, {"top_k": 21}, {"price_per_token": 0},
                                   {"id": "two words"}, {"validation_threshold": "-1"}])
def test_template_models_are_held_to_the_rule_model_proposals_meet(model):
    with pytest.raises(TemplateError) as err:
        parse_template({"chain_id": "c", "validators": [{"name": "v", "power": 1}],
                        "models": [{"id": "m", "weights_sha256": "ab" * 32, **model}]})
    (field,) = model
    assert [p.split(":")[0] for p in err.value.problems] == [f"models[0].{field}"]


def test_genesis_participants_and_reputations_are_checked_and_reach_app_state():
    key, = generate_account_keys(1)
    good = (f'[[participants]]\naddress = "{key.address}"\nurl = "http://127.0.0.1:8100"\n'
            f'node_pubkey = "{"ab" * 32}"\nweight = 5\n'
            'models = [{model_id = "m", weights_sha256 = "' + "0" * 64 + '"}]\n'
            f'[[reputations]]\naddress = "{key.address}"\nreputation_ppm = 1000000\n')
    state = build_app_state(parse(template_text(tables=good)))
    assert state["inference"]["participants"][0]["weight"] == 5
    assert state["validation"]["reputations"] == [{"address": key.address,
                                                   "reputation_ppm": 1_000_000}]
    bad = ('[[participants]]\naddress = "infer1nope"\nurl = "ftp://x"\nnode_pubkey = "zz"\n'
           'models = []\n[[reputations]]\naddress = "infer1nope"\nreputation_ppm = 2000000\n')
    found = problems(template_text(tables=bad))
    for expected in ("participants[0].address", "participants[0].url",
                     "participants[0].node_pubkey", "participants[0].models",
                     "reputations[0].address", "reputations[0].reputation_ppm"):
        assert any(p.startswith(expected) for p in found), (expected, found)
