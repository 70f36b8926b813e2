"""A solo chain node process, driven by cosmpy unmodified and by hand-made bad transactions."""

import hashlib
import threading

import pytest
from chain_client import TxSpec, broadcast_raw, ledger, send_msg, signed_tx
from chain_nodes import FUNDS, ChainNode, funded_keys, template
from conftest import free_port
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from cosmpy.protos.cosmos.tx.v1beta1 import service_pb2 as tx_service
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import TxRaw
from google.protobuf.any_pb2 import Any as AnyPb

from genesis.solo import layout_solo

ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def solo(tmp_path_factory):
    keys = funded_keys(3)
    port = free_port()
    info = layout_solo(template(keys), tmp_path_factory.mktemp("solo") / "home",
                       grpc_port=port, block_interval_ms=200)
    node = ChainNode(info.home, port).start()
    node.wait_height(2)
    wallets = [LocalWallet(PrivateKey(bytes.fromhex(k.private_key_hex)), prefix="infer")
               for k in keys]
    yield node, ledger(port), wallets
    node.close()


def test_cosmpy_funds_a_fresh_wallet_and_it_sends_on(solo):
    node, client, (alice, *_rest) = solo
    fresh = LocalWallet(PrivateKey(), prefix="infer")
    first = client.send_tokens(fresh.address(), 5_000_000, "ninfer", alice).wait_to_complete()
    assert first.response.code == 0 and first.response.height > 0
    assert client.query_bank_balance(fresh.address(), "ninfer") == 5_000_000
    back = client.send_tokens(alice.address(), 1_000, "ninfer", fresh).wait_to_complete()
    fee = int(back.response.gas_wanted * 0.01 + 0.999999)
    assert back.response.height >= first.response.height
    assert client.query_bank_balance(fresh.address(), "ninfer") == 5_000_000 - 1_000 - fee
    account = client.query_account(fresh.address())
    assert account.sequence == 1
    assert client.query_chain_id() == "inferchain-test"


def test_balances_add_up_across_many_sends(solo):
    node, client, (_, bob, carol) = solo
    before = {w: client.query_bank_balance(w.address(), "ninfer") for w in (bob, carol)}
    fees = 0
    for amount in (1, 22, 333):
        done = client.send_tokens(carol.address(), amount, "ninfer", bob).wait_to_complete()
        fees += int(done.response.gas_wanted * 0.01 + 0.999999)
    assert client.query_bank_balance(carol.address(), "ninfer") == before[carol] + 356
    assert client.query_bank_balance(bob.address(), "ninfer") == before[bob] - 356 - fees


def _state(client, wallets):
    return [(client.query_bank_balance(w.address(), "ninfer"),
             client.query_account(w.address()).sequence) for w in wallets]


def _spec(client, wallet, **change):
    account = client.query_account(wallet.address())
    base = {"messages": [send_msg(str(wallet.address()), str(wallet.address()), 10)],
            "sequence": account.sequence, "account_number": account.number}
    return TxSpec(**{**base, **change})


def _high_s(raw_tx):
    tx = raw_tx.tx
    sig = tx.signatures[0]
    s = int.from_bytes(sig[32:], "big")
    tx.signatures[0] = sig[:32] + (ORDER - s).to_bytes(32, "big")
    return tx.SerializeToString()


def _tampered(raw_tx):
    tx = raw_tx.tx
    sig = bytearray(tx.signatures[0])
    sig[5] ^= 0x01
    tx.signatures[0] = bytes(sig)
    return tx.SerializeToString()


def _unknown_message(wallet):
    bogus = AnyPb(type_url="/inference.v1.MsgBogus", value=b"\x0a\x03abc")
    return [bogus]


BAD = {
    "not a tx": (lambda c, w, o: b"\xff\xfe this is not a transaction", 2, "cannot decode"),
    "bad signature": (lambda c, w, o: _tampered(signed_tx(w, _spec(c, w))), 4,
                      "signature verification failed"),
    "high-S signature": (lambda c, w, o: _high_s(signed_tx(w, _spec(c, w))), 4, "low-S"),
    "wrong chain id": (lambda c, w, o: signed_tx(w, _spec(c, w, chain_id="other-chain"))
                       .tx.SerializeToString(), 4, "chain-id (inferchain-test)"),
    "wrong account number": (
        lambda c, w, o: signed_tx(w, _spec(c, w, account_number=c.query_account(
            w.address()).number + 7)).tx.SerializeToString(), 4, "account number"),
    "replayed sequence": (
        lambda c, w, o: signed_tx(w, _spec(c, w, sequence=c.query_account(
            w.address()).sequence - 1)).tx.SerializeToString(), 32, "sequence mismatch"),
    "insufficient funds": (
        lambda c, w, o: signed_tx(w, _spec(c, w, messages=[send_msg(
            str(w.address()), str(o.address()), 10 * FUNDS)])).tx.SerializeToString(), 5,
        "smaller than"),
    "insufficient fee": (lambda c, w, o: signed_tx(w, _spec(c, w, fee=1)).tx.SerializeToString(),
                         13, "insufficient fee"),
    "unknown message type": (
        lambda c, w, o: _unknown_raw(c, w), 6, "unrecognized message type"),
    "body bytes repeated, garbage first": (
        lambda c, w, o: b"\x0a\x02\xff\xff" + signed_tx(w, _spec(c, w)).tx.SerializeToString(),
        2, "not canonically encoded"),
    "gas limit beyond int64": (
        lambda c, w, o: signed_tx(w, _spec(c, w, gas_limit=(1 << 64) - 1)).tx.SerializeToString(),
        18, "invalid gas supplied"),
    "a superscript digit as the amount": (
        lambda c, w, o: signed_tx(w, _spec(c, w, messages=[MsgSend(
            from_address=str(w.address()), to_address=str(o.address()),
            amount=[Coin(denom="ninfer", amount="²")])])).tx.SerializeToString(), 10,
        "invalid amount"),
    "upper-case spelling of the sender": (
        lambda c, w, o: signed_tx(w, _spec(c, w, messages=[send_msg(
            str(w.address()).upper(), str(o.address()), 10)])).tx.SerializeToString(), 7,
        "not canonical"),
    "signer is not the tx signer": (
        lambda c, w, o: signed_tx(w, _spec(c, w, messages=[send_msg(
            str(o.address()), str(w.address()), 10)])).tx.SerializeToString(), 8,
        "public key"),
}


def _unknown_raw(client, wallet):
    good = signed_tx(wallet, _spec(client, wallet))
    body = good.tx.body
    del body.messages[:]
    body.messages.extend(_unknown_message(wallet))
    raw = TxRaw(body_bytes=body.SerializeToString(),
                auth_info_bytes=good.tx.auth_info.SerializeToString(),
                signatures=list(good.tx.signatures))
    return raw.SerializeToString()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_transactions_are_refused_and_leave_state_untouched(solo, case):
    node, client, (alice, bob, carol) = solo
    # One successful tx first, so "replayed sequence" has a used sequence to replay.
    client.send_tokens(carol.address(), 1, "ninfer", alice).wait_to_complete()
    build, code, message = BAD[case]
    before = _state(client, [alice, bob])
    raw = build(client, alice, bob)
    got_code, log, _ = broadcast_raw(client, raw)
    assert (got_code, message in log) == (code, True), log
    node.wait_height(node.height() + 2)
    assert _state(client, [alice, bob]) == before
    ok = client.send_tokens(bob.address(), 7, "ninfer", alice).wait_to_complete()
    assert ok.response.code == 0


def test_the_same_tx_twice_is_refused_the_second_time(solo):
    node, client, (alice, bob, _) = solo
    tx = signed_tx(alice, _spec(client, alice))
    raw = tx.tx.SerializeToString()
    code, log, tx_hash = broadcast_raw(client, raw)
    assert code == 0 and tx_hash == hashlib.sha256(raw).hexdigest().upper()
    again, log, _ = broadcast_raw(client, raw)
    assert again != 0
    node.wait_height(node.height() + 2)
    after, log, _ = broadcast_raw(client, raw)
    assert after == 32 and "sequence mismatch" in log


def test_blocks_keep_committing_while_clients_flood_simulate(solo):
    node, client, (alice, bob, _) = solo
    raw = signed_tx(alice, _spec(client, alice)).tx.SerializeToString()
    request = tx_service.SimulateRequest(tx_bytes=raw)
    start = node.height()
    target = start + 5
    done = []

    def flood() -> None:
        for _ in range(2_000):
            if node.height() >= target:
                return
            for _ in range(10):
                assert client.txs.Simulate(request).gas_info.gas_used > 0
                done.append(1)

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert node.height() >= target, f"only {node.height() - start} blocks under the flood"
    assert len(done) >= 80
