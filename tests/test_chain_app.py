"""The application in-process: genesis checks, determinism, params, without any network."""

import json

import pytest
from chain_client import TxSpec, send_msg, signed_tx
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.auth.v1beta1.query_pb2 import QueryAccountRequest
from cosmpy.protos.cosmos.tx.signing.v1beta1.signing_pb2 import SignMode
from cosmpy.protos.cosmos.tx.v1beta1.service_pb2 import SimulateRequest, SimulateResponse
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.timestamp_pb2 import Timestamp

from chain.app import Application
from chain.auth.params import AuthParams
from chain.bank.params import BankParams
from chain.errors import ChainError
from chain.services.tx_service import SIMULATE_PATH, register_abci_simulate
from chain.store import Store

CHAIN_ID = "inferchain-test"


def wallet(seed: int) -> LocalWallet:
    return LocalWallet(PrivateKey(bytes([seed]) * 32), prefix="infer")


def genesis(*wallets: LocalWallet, **sections: dict) -> bytes:
    balances = [{"address": str(w.address()), "coins": [{"denom": "ninfer", "amount": "1000000"}]}
                for w in wallets]
    return json.dumps({"auth": {"params": {}}, "bank": {"balances": balances}, **sections}).encode()


def started(app_state: bytes) -> Application:
    app = Application(Store.memory())
    app.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1,
                                         app_state_bytes=app_state))
    return app


def run_block(app: Application, height: int, txs: list[bytes]) -> abci.ResponseFinalizeBlock:
    result = app.finalize_block(abci.RequestFinalizeBlock(
        txs=txs, height=height, time=Timestamp(seconds=1_700_000_000 + height),
        hash=height.to_bytes(32, "big")))
    app.commit(abci.RequestCommit())
    return result


def test_two_apps_applying_the_same_blocks_have_the_same_app_hash_every_height():
    alice, bob = wallet(1), wallet(2)
    apps = [started(genesis(alice, bob)), started(genesis(alice, bob))]
    blocks = [[signed_tx(alice, TxSpec([send_msg(str(alice.address()), str(bob.address()), n)],
                                       sequence=n - 1, account_number=0)).tx.SerializeToString()]
              for n in range(1, 4)]
    for height, txs in enumerate(blocks, start=1):
        results = [run_block(app, height, txs) for app in apps]
        assert results[0].app_hash == results[1].app_hash
        assert [r.code for r in results[0].tx_results] == [0]
    assert apps[0].store.app_hash != started(genesis(alice, bob)).store.app_hash


def test_a_failed_message_in_a_block_keeps_fee_and_sequence_but_moves_no_coins():
    alice, bob = wallet(1), wallet(2)
    app = started(genesis(alice, bob))
    too_much = signed_tx(alice, TxSpec([send_msg(str(alice.address()), str(bob.address()),
                                                 10**9)], sequence=0, account_number=0))
    result = run_block(app, 1, [too_much.tx.SerializeToString()])
    assert result.tx_results[0].code == 5
    state = app.store.begin_block()
    raw_alice = bytes(alice.address())
    assert app.modules.bank.balance(state, raw_alice, "ninfer") == 1_000_000 - 2_000
    assert app.modules.auth.get_account(state, raw_alice).sequence == 1
    assert app.modules.bank.balance(state, bytes(bob.address()), "ninfer") == 1_000_000


@pytest.mark.parametrize(("app_state", "message"), [
    (genesis(wallet(1), mint={}), "unknown modules"),
    (genesis(wallet(1), wallet(1)), "twice"),
    (json.dumps({"bank": {"balances": [{"address": "cosmos1abc", "coins": []}]}}).encode(),
     "invalid address"),
    (json.dumps({"auth": {"params": {"tx_sig_limit": -1}}}).encode(), "tx_sig_limit"),
    (json.dumps({"auth": {"params": {"min_gas_price": "cheap"}}}).encode(), "min_gas_price"),
])
def test_bad_genesis_is_refused_with_a_clear_message(app_state, message):
    with pytest.raises(ChainError, match=message):
        started(app_state)


def test_params_round_trip_and_refuse_unknown_or_ill_typed_fields():
    params = AuthParams.from_dict({"min_gas_price": "0.5", "tx_sig_limit": 3})
    assert AuthParams.from_dict(json.loads(params.to_bytes())) == params
    with pytest.raises(ChainError, match="unknown auth params"):
        AuthParams.from_dict({"gas": 1})
    with pytest.raises(ChainError, match=r"tx_sig_limit must be an integer in \[1, 128\]"):
        AuthParams.from_dict({"tx_sig_limit": True})
    with pytest.raises(ChainError, match="send_enabled"):
        BankParams.from_dict({"send_enabled": "yes"})


def test_a_simulation_without_a_fee_counts_the_fee_transfer_the_real_tx_makes():
    alice, bob = wallet(1), wallet(2)
    app = started(genesis(alice, bob))
    run_block(app, 1, [])
    message = [send_msg(str(alice.address()), str(bob.address()), 5)]
    simulated = app.simulate(signed_tx(alice, TxSpec(message, sequence=0, account_number=0,
                                                     fee=0)).tx.SerializeToString())
    assert simulated.ok, simulated.log
    real = run_block(app, 2, [signed_tx(alice, TxSpec(
        message, sequence=0, account_number=0, gas_limit=simulated.gas_used * 11 // 10,
        fee=simulated.gas_used)).tx.SerializeToString()])
    assert real.tx_results[0].code == 0, real.tx_results[0].log
    assert simulated.gas_used >= real.tx_results[0].gas_used - 200


def cosmjs_simulation_tx(wallet_: LocalWallet, message: list, sequence: int) -> bytes:
    """A tx as cosmjs's SigningStargateClient.simulate builds it: no fee, no gas limit, sign
    mode SIGN_MODE_UNSPECIFIED and one empty signature."""
    tx = signed_tx(wallet_, TxSpec(message, sequence=sequence, account_number=0)).tx
    tx.auth_info.fee.Clear()
    tx.auth_info.fee.SetInParent()
    tx.auth_info.signer_infos[0].mode_info.single.mode = SignMode.SIGN_MODE_UNSPECIFIED
    del tx.signatures[:]
    tx.signatures.append(b"")
    return tx.SerializeToString()


def test_abci_query_simulates_a_cosmjs_tx_which_consensus_still_refuses():
    alice, bob = wallet(1), wallet(2)
    app = started(genesis(alice, bob))
    register_abci_simulate(app.queries, app)
    run_block(app, 1, [])
    message = [send_msg(str(alice.address()), str(bob.address()), 5)]
    unsigned = cosmjs_simulation_tx(alice, message, sequence=0)
    reply = app.query(abci.RequestQuery(
        path=SIMULATE_PATH, data=SimulateRequest(tx_bytes=unsigned).SerializeToString()))
    assert (reply.code, reply.height) == (0, 1), reply.log
    estimate = SimulateResponse.FromString(reply.value).gas_info.gas_used
    real = run_block(app, 2, [signed_tx(alice, TxSpec(
        message, sequence=0, account_number=0, gas_limit=estimate,
        fee=estimate)).tx.SerializeToString()])
    assert real.tx_results[0].code == 0, real.tx_results[0].log
    assert real.tx_results[0].gas_used <= estimate
    checked = app.check_tx(abci.RequestCheckTx(tx=cosmjs_simulation_tx(alice, message, 1)))
    assert (checked.code, checked.log) == (
        18, "only SIGN_MODE_DIRECT single signatures are supported")
    broke = cosmjs_simulation_tx(alice, [send_msg(str(alice.address()), str(bob.address()),
                                                  10**9)], sequence=1)
    failed = app.query(abci.RequestQuery(
        path=SIMULATE_PATH, data=SimulateRequest(tx_bytes=broke).SerializeToString()))
    assert (failed.code, failed.codespace) == (18, "sdk")
    assert failed.log.startswith("rpc error: code = InvalidArgument desc = simulation failed "
                                 "(code 5, codespace sdk): spendable balance"), failed.log
    assert app.store.height == 2


def test_abci_query_errors_read_as_the_cosmos_sdk_writes_them():
    app = started(genesis(wallet(1)))
    run_block(app, 1, [])
    missing = str(wallet(9).address())
    reply = app.query(abci.RequestQuery(
        path="/cosmos.auth.v1beta1.Query/Account",
        data=QueryAccountRequest(address=missing).SerializeToString()))
    assert (reply.code, reply.log) == (
        38, f"rpc error: code = NotFound desc = account {missing} not found")
    reply = app.query(abci.RequestQuery(
        path="/cosmos.auth.v1beta1.Query/Account",
        data=QueryAccountRequest(address=missing.upper()).SerializeToString()))
    assert reply.code == 18
    assert reply.log.startswith("rpc error: code = InvalidArgument desc = address: "), reply.log
