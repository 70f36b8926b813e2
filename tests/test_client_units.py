"""The client's pieces in process: the keyring's sealing, settings precedence, argument checks
and text output. tests/test_cli.py runs the whole command line against a real node."""

import argparse
import json
from decimal import Decimal
from pathlib import Path

import pytest
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.mnemonic import generate_mnemonic

from client import arguments, output, settings
from client.errors import CliError
from client.keyring import Keyring, key_from_mnemonic
from client.signing import expected_sequence


def test_file_keyring_seals_the_key_and_opens_it_only_with_the_passphrase(tmp_path: Path):
    keyring = Keyring(tmp_path, "file")
    key = PrivateKey()
    info = keyring.add("k", key, "a long passphrase")
    record = (tmp_path / "keyring-file" / "k.json").read_text()
    assert key.private_key_hex not in record
    assert keyring.private_key("k", "a long passphrase").private_key_bytes == \
        key.private_key_bytes
    with pytest.raises(CliError, match="wrong keyring passphrase"):
        keyring.private_key("k", "another passphrase")
    with pytest.raises(CliError, match="wrong keyring passphrase"):
        keyring.add("k2", PrivateKey(), "another passphrase")
    with pytest.raises(CliError, match="at least 8"):
        keyring.add("k3", PrivateKey(), "short")
    assert [k.name for k in keyring.entries()] == ["k"]
    assert keyring.find(info.address).name == "k"


def test_test_keyring_is_plain_and_apart_from_the_file_one(tmp_path: Path):
    key = PrivateKey()
    Keyring(tmp_path, "test").add("k", key, None)
    assert json.loads((tmp_path / "keyring-test" / "k.json").read_text())["secret"] == {
        "private_key_hex": key.private_key_hex}
    assert Keyring(tmp_path, "file").entries() == []


def test_a_mnemonic_derives_the_wallets_key():
    mnemonic = generate_mnemonic()
    assert key_from_mnemonic(mnemonic).private_key_bytes == \
        LocalWallet.from_mnemonic(mnemonic).signer().private_key_bytes
    with pytest.raises(CliError, match="invalid mnemonic"):
        key_from_mnemonic("one two three")


def test_flags_win_over_the_config_file_which_wins_over_defaults(tmp_path: Path):
    settings.write_config(tmp_path, {"node": "10.0.0.1:9090", "output": "json"})
    args = argparse.Namespace(home=tmp_path, node=None, chain_id=None, output="text",
                              keyring_backend=None)
    resolved = settings.resolve(args)
    assert (resolved.node, resolved.output, resolved.keyring_backend, resolved.chain_id) == \
        ("10.0.0.1:9090", "text", "file", "")
    (tmp_path / settings.CONFIG_FILE).write_text('output = "yaml"\n')
    with pytest.raises(CliError, match="config output"):
        settings.resolve(args)


@pytest.mark.parametrize("text", ["", "12", "1.5ninfer", "0ninfer", "5ninfer,5ninfer", "x1"])
def test_bad_amounts_are_refused(text: str):
    with pytest.raises(CliError, match="amount"):
        arguments.parse_amount(text, "amount")


def test_argument_checks():
    assert arguments.parse_amount("7other,5ninfer", "amount") == "5ninfer,7other"
    assert arguments.parse_gas_price("0.025ninfer") == Decimal("0.025")
    assert arguments.parse_gas_adjustment("1.5") == Decimal("1.5")
    for bad in ("nan", "0.9", "x", "11"):
        with pytest.raises(CliError):
            arguments.parse_gas_adjustment(bad)
    for bad in ("0", "-1", "1e6", "٣", str(1 << 63)):
        with pytest.raises(CliError):
            arguments.parse_gas(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        arguments.count("-1")
    with pytest.raises(CliError, match="not canonical"):
        arguments.parse_address(str(LocalWallet(PrivateKey(), prefix="infer").address()
                                    ).upper())


def test_text_output_nests_like_yaml(capsys: pytest.CaptureFixture[str]):
    output.show({"a": 1, "b": {"c": True, "d": []}, "e": [{"f": "g", "h": "i"}, "j"]}, "text")
    assert capsys.readouterr().out.splitlines() == [
        "a: 1", "b:", "  c: true", "  d: []", "e:", "  - f: g", "    h: i", "  - j"]


def test_a_stale_sequence_refusal_names_the_sequence_to_sign_again_with():
    """The chain's words for a stale sequence (chain/tx/ante.py) when the operator's API node
    has a tx of the same key in the mempool; anything else is not retried."""
    refusal = "simulation failed (code 32, codespace sdk): account sequence mismatch, " \
              "expected 28, got 27"
    assert expected_sequence(refusal, 27) == 28
    assert expected_sequence(refusal, 28) is None  # not the sequence this client sent
    assert expected_sequence("account sequence mismatch, expected 27, got 27", 27) is None
    assert expected_sequence("insufficient funds: 5ninfer < 9ninfer", 27) is None
