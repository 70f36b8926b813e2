"""Genesis export: a chain built by real transactions and blocks (participants, PoC,
inferences, validation tasks and votes, settlement, a governance proposal, an epoch boundary)
exports a genesis from which a fresh node starts with the same app hash and the same keys and
values, and goes on exactly as the original would."""

import hashlib
import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
import urllib.request

import pytest
from chain_client import ledger
from chain_nodes import ROOT, ChainNode, funded_keys, template
from conftest import free_port, free_port_block
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.timestamp_pb2 import Timestamp
from inference_actors import (
    MODEL_ID,
    Actor,
    finish_msg,
    key_commitment,
    pass_notice,
    seal_of,
    validation_msg,
)
from inference_net import T0, Net
from proposals import VALIDATOR_SECRET, proposed_block
from test_epochs_module import DEFAULTS, SPEC, TARGET, name_consensus_key, nonces_found

from chain.app import Application, rfc3339
from chain.export import export_app_state, export_genesis
from chain.genesis_records import UnexportedState
from chain.modules import build
from chain.store import Store
from chain.validation.sampling import seed_hash
from genesis.comet_config import find_cometbft
from genesis.localnet import PORTS_PER_NODE, layout_localnet
from genesis.solo import layout_solo
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.epochs_pb2 import MsgPocValidation, MsgSubmitPoc
from inferchain_pb.inference.v1.gov_pb2 import (
    VOTE_OPTION_YES,
    MsgSubmitProposal,
    MsgVote,
    ParamChange,
)
from inferchain_pb.inference.v1.inference_pb2 import (
    KeyRequest,
    MsgCommitKeyRequests,
    MsgGrantAllowance,
    MsgStartInference,
)
from inferchain_pb.inference.v1.validation_pb2 import (
    IN_VOTE,
    OPEN,
    MsgClaimRewards,
    MsgCommitSeed,
)
from mlnode.poc import PocModel, poc_seed, verify

EPOCH, POC_WINDOW, POC_CHECKS = 20, 5, 4
PASS, FAIL = 1_000, 3_000_000
BASE = {"genesis_time": "2023-11-14T22:13:20.000000000Z", "chain_id": "inferchain-test",
        "consensus_params": {"block": {"max_bytes": "22020096", "max_gas": "-1"}},
        "validators": []}


def to_height(net: Net, height: int) -> None:
    while net.height < height:
        net.block([])


def ok(results: list) -> None:
    assert all(r.code == 0 for r in results), [r.log for r in results]


def seed(actor: Actor, epoch: int) -> bytes:
    return hashlib.sha256(f"{actor.address}/{epoch}".encode()).digest()


def epoch_info(net: Net):
    return net.query("Epoch", q.QueryEpochRequest()).current


def finish(net: Net, inference_id: str):
    agent, executor, start = net.start(inference_id, max_tokens=8)
    ok(net.block([agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))]))
    return executor, net.inference(inference_id)


def poc_round(net: Net, epoch: int) -> None:
    """Every participant submits real nonces and every other one checks them."""
    current = epoch_info(net)
    submissions = []
    for actor in net.parts:
        nonces = nonces_found(current.poc_block_hash, actor, 300)
        submissions += [actor.tx(MsgSubmitPoc(creator=actor.address, epoch=epoch, nonces=part))
                        for part in (nonces[:len(nonces) // 2], nonces[len(nonces) // 2:])]
    ok(net.block(submissions))
    to_height(net, current.poc_end_height + 1)
    current = epoch_info(net)
    checks = []
    for submission in net.query("PocSubmissions",
                                q.QueryPocSubmissionsRequest(epoch=epoch)).submissions:
        claimed = net.query("PocNonces", q.QueryPocNoncesRequest(
            epoch=epoch, participant=submission.participant)).nonces
        report = verify(PocModel(SPEC, poc_seed(current.poc_block_hash,
                                                submission.participant)),
                        claimed, TARGET, DEFAULTS.poc_sample_size, current.poc_sample_seed,
                        DEFAULTS.poc_tolerance_nano / 1e9)
        checks += [c.tx(MsgPocValidation(
            creator=c.address, epoch=epoch, participant=submission.participant,
            passed=report.passed, checked=len(report.checks), failed=report.failed))
            for c in net.parts if c.address != submission.participant]
    ok(net.block(checks))


def proposal(net: Net, proposer: Actor) -> int:
    change = AnyPb()
    change.Pack(ParamChange(module="inference", param="expiration_blocks",
                            value_json="60"), type_url_prefix="/")
    result = net.one(proposer.tx(MsgSubmitProposal(
        proposer=proposer.address, messages=[change], initial_deposit=1_000,
        title="longer expiry", summary="slow executors")))
    ok([result])
    event = next(e for e in result.events if e.type == "submit_proposal")
    return int(next(a.value for a in event.attributes if a.key == "proposal_id"))


@pytest.fixture(scope="module")
def net() -> Net:
    """Two epochs of activity, exported in the middle of the third, with open work of
    every kind: a PoC round settled, a task in vote, a task in its window holding a sealed
    report not opened yet, an unfinished start, a proposal in its voting period, an
    allowance, judged validators and a settled epoch; a request window short enough that the
    first requests' signatures are forgotten and the last ones' are not."""
    built = Net(4, expiration_blocks=50, inference_params={"request_time_window_s": 20},
                extra_state={
                    "epochs": {"params": {"epoch_length_blocks": EPOCH,
                                          "poc_window_blocks": POC_WINDOW,
                                          "poc_validation_window_blocks": POC_CHECKS}},
                    "validation": {"params": {"validation_window_blocks": 2,
                                              "voting_period_blocks": 6,
                                              "opening_blocks": 1,
                                              "reveal_window_blocks": 10,
                                              "canary_rate_ppm": 0}},
                    "gov": {"params": {"min_deposit": 1_000, "min_initial_deposit": 100,
                                       "deposit_period_blocks": 3,
                                       "voting_period_blocks": 30}}})
    name_consensus_key(built, built.parts[0])
    ok(built.block([a.tx(MsgCommitSeed(creator=a.address, epoch=1,
                                       seed_hash=seed_hash(seed(a, 1)))) for a in built.parts]))
    to_height(built, 1 + EPOCH)
    poc_round(built, 1)
    to_height(built, epoch_info(built).poc_validation_end_height + 1)
    # Three inferences finished together, checked by every other member: sealed, then
    # opened once the window's sealing ended.
    txs = []
    for i in range(3):
        agent, executor, start = built.start(f"done-{i}", max_tokens=8)
        txs += [agent.tx(start), executor.tx(finish_msg(executor, start, [7, 8, 9]))]
    ok(built.block(txs))
    done = [built.inference(f"done-{i}") for i in range(3)]
    ok(built.report([(c, validation_msg(c, inference, PASS)) for inference in done
                     for c in built.parts if c.address != inference.executor]))
    assert built.height < 1 + 2 * EPOCH, "the checks must fall in epoch 1"
    ok(built.block([a.tx(MsgCommitSeed(creator=a.address, epoch=2,
                                       seed_hash=seed_hash(seed(a, 2)))) for a in built.parts]))
    to_height(built, 1 + 2 * EPOCH)
    ok(built.block([a.tx(MsgClaimRewards(creator=a.address, epoch=1, seed=seed(a, 1)))
                    for a in built.parts]))
    to_height(built, 1 + 2 * EPOCH + 10)
    # The failing report is sealed first, so that its vote opens in the middle of the epoch;
    # the other work fills the blocks until the window's sealing ends.
    executor, cheat = finish(built, "cheat-1")
    first = next(p for p in built.parts if p is not executor)
    failing = [(first, validation_msg(first, cheat, FAIL))]
    agent, _, lone = built.start("lone-1", max_tokens=8)
    ok(built.block([first.tx(seal_of(failing[0][1])), agent.tx(lone),
                    built.developer.tx(MsgGrantAllowance(
                        creator=built.developer.address,
                        transfer_agent=built.parts[1].address, limit=5_000_000)),
                    # An API-key commitment still waiting for its start, its forfeit held,
                    # and a probe's, counted towards its agent's quota.
                    built.parts[1].tx(MsgCommitKeyRequests(
                        creator=built.parts[1].address, requests=[
                            *key_commitment(built.parts[1], ["ab" * 32], 40_000).requests,
                            KeyRequest(inference_id="ef" * 32, max_escrow=40_000,
                                       probe_model_id=MODEL_ID)]))]))
    pid = proposal(built, built.parts[2])
    ok(built.open_reports(failing))
    ok([built.one(built.parts[3].tx(MsgVote(voter=built.parts[3].address, proposal_id=pid,
                                            option=VOTE_OPTION_YES)))])
    executor, opened = finish(built, "open-1")
    sealer = next(p for p in built.parts if p is not executor)
    built.seal([(sealer, validation_msg(sealer, opened, PASS))])
    stranger = Actor.new(77, 0)
    # A transfer agent's notice that it passes a pick, still open to the pick's claim.
    passed = MsgStartInference(inference_id="cd" * 32, model_id=MODEL_ID,
                               draw_height=built.height)
    ok(built.block([built.developer.tx(MsgSend(
                        from_address=built.developer.address, to_address=stranger.address,
                        amount=[Coin(denom="ninfer", amount="1000000")])),
                    built.parts[1].tx(pass_notice(built.parts[1],
                                                  [(passed, 0, built.parts[2].address)]))]))
    assert built.height < 1 + 3 * EPOCH, "exported in the middle of the third epoch"
    tasks = {t: built.query("ValidationTask", q.QueryValidationTaskRequest(
        inference_id=built.ids[t])).task for t in ("cheat-1", "open-1")}
    assert tasks["cheat-1"].state == IN_VOTE
    assert tasks["open-1"].state == OPEN
    assert [s.validator for s in tasks["open-1"].seals] == [sealer.address]
    return built


def state_of(app: Application) -> dict[bytes, bytes]:
    return dict(app.store.begin_block().iterate(b""))


def init_from(genesis: dict) -> tuple[Application, abci.ResponseInitChain]:
    """A fresh node's InitChain from the document, read back from its JSON text."""
    genesis = json.loads(json.dumps(genesis))
    app = Application(Store.memory(), validator_secret=VALIDATOR_SECRET)
    response = app.init_chain(abci.RequestInitChain(
        chain_id=genesis["chain_id"], initial_height=int(genesis["initial_height"]),
        app_state_bytes=json.dumps(genesis["app_state"]).encode()))
    return app, response


def next_block(app: Application, height: int, txs: list[bytes]) -> list[abci.ExecTxResult]:
    """The results of ``txs`` in the block the app proposes at ``height`` (the validator's
    key came with the export) and commits."""
    result = app.finalize_block(proposed_block(app, height, Timestamp(seconds=T0 + height),
                                               txs, height.to_bytes(4, "big") * 8))
    app.commit(abci.RequestCommit())
    return list(result.tx_results[1:])


def test_the_exported_state_holds_records_of_every_common_kind(net):
    """So the round trips below check each kind's form, not an empty list."""
    app_state = export_app_state(net.app.modules, net.app.store.begin_block())
    for module, kinds in {
        "auth": ["accounts", "next_account_number"],
        "bank": ["balances", "supply"],
        "inference": ["participants", "models", "inferences", "status_index", "expiries",
                      "block_hashes", "draw_weights", "work", "escrows", "allowances",
                      "request_signatures", "request_signature_floor",
                      "key_request_commitments", "probes"],
        "epochs": ["consensus_validators", "beacon", "proposer_keys", "seed_hashes",
                   "sample_seeds", "poc_submissions", "settlements"],
        "validation": ["members", "seed_commitments", "tasks", "finished_index",
                       "window_queue", "vote_queue", "executor_stats", "validator_records"],
        "gov": ["next_proposal_id", "proposals", "status_index", "voting_queue", "deposits",
                "votes"],
    }.items():
        assert [k for k in kinds if not app_state[module].get(k)] == [], module
    assert any(task.get("seals") for task in app_state["validation"]["tasks"])


def test_a_fresh_node_starts_from_the_export_with_the_same_state(net):
    genesis = export_genesis(net.app.modules, net.app.store, BASE)
    assert genesis["initial_height"] == str(net.height + 1)
    assert genesis["chain_id"] == "inferchain-test"
    assert genesis["genesis_time"] == rfc3339((T0 + net.height) * 1_000_000_000)
    fresh, response = init_from(genesis)
    assert response.app_hash == net.app.store.app_hash
    # The next block, with a transaction, changes both chains alike, key for key.
    tx = net.developer.tx(MsgSend(from_address=net.developer.address,
                                  to_address=net.parts[0].address,
                                  amount=[Coin(denom="ninfer", amount="5")]))
    request_height = net.height + 1
    imported = next_block(fresh, request_height, [tx])
    original = net.block([tx])
    assert [r.code for r in imported] == [r.code for r in original] == [0]
    assert fresh.store.app_hash == net.app.store.app_hash
    assert state_of(fresh) == state_of(net.app)
    # Draws and queries read the same on the new chain.
    assert fresh.queries.call("/inference.v1.Query/Draw", q.QueryDrawRequest(
        inference_id="after", model_id=MODEL_ID)).order == \
        net.draw("after")


def test_an_export_at_an_earlier_height_starts_the_state_of_that_height(net):
    height = 1 + EPOCH + POC_WINDOW + 1  # PoC checked, nonces not yet pruned
    genesis = export_genesis(net.app.modules, net.app.store, BASE, height)
    assert genesis["initial_height"] == str(height + 1)
    assert genesis["genesis_time"] == BASE["genesis_time"]
    assert genesis["app_state"]["epochs"]["poc_batches"]
    assert genesis["app_state"]["epochs"]["poc_nonces"]
    fresh, response = init_from(genesis)
    expected = replay(net, height)
    assert response.app_hash == expected.store.app_hash
    for app in (fresh, expected):
        app.finalize_block(net.blocks[height])
        app.commit(abci.RequestCommit())
    assert fresh.store.app_hash == expected.store.app_hash
    assert state_of(fresh) == state_of(expected)


def replay(net: Net, height: int) -> Application:
    """A node that applied the net's genesis and its blocks up to ``height``."""
    app = Application(Store.memory())
    app.init_chain(net.init_request)
    for request in net.blocks[:height]:
        app.finalize_block(request)
        app.commit(abci.RequestCommit())
    return app


@pytest.mark.parametrize("module", [module.name for module in build().manager.modules])
def test_every_key_prefix_a_module_declares_is_exported(module):
    """A record kind added to a keeper without a genesis kind fails here, whether or not any
    test's state holds such a record."""
    genesis = importlib.import_module(f"chain.{module}.genesis")
    sources = [importlib.import_module(f"chain.{module}.{name}")
               for name in ("keeper", "params", "validator_set", "beacon")
               if importlib.util.find_spec(f"chain.{module}.{name}")]
    declared = {value for source in sources for value in vars(source).values()
                if isinstance(value, bytes) and value.startswith(f"{module}/".encode())}
    covered = {kind.prefix for kind in genesis.RECORDS} | set(genesis.STRUCTURED)
    assert declared and declared - covered == set()


def test_a_record_no_export_covers_stops_the_export(net):
    for stray in (b"inference/newkind/1", b"validation/members", b"nomodule/key"):
        state = net.app.store.begin_block()
        state.set(stray, b"x")
        with pytest.raises(UnexportedState):
            export_app_state(net.app.modules, state)


def test_a_record_that_would_not_come_back_byte_for_byte_stops_the_export(net):
    state = net.app.store.begin_block()
    key, value = next(state.iterate(b"gov/proposal/"))
    state.set(key, value + b"\x98\x01\x01")  # an unknown field 19 would be dropped
    with pytest.raises(UnexportedState, match="byte for byte"):
        export_app_state(net.app.modules, state)


def test_the_cli_exports_a_stopped_solo_node_and_a_new_chain_continues_it(tmp_path):
    keys = funded_keys(2)
    port = free_port()
    info = layout_solo(template(keys), tmp_path / "old", grpc_port=port, block_interval_ms=100)
    alice, bob = (LocalWallet(PrivateKey(bytes.fromhex(k.private_key_hex)), prefix="infer")
                  for k in keys)
    node = ChainNode(info.home, port).start()
    exported = tmp_path / "genesis.json"
    command = [sys.executable, "-m", "chain", "export", "--home", str(info.home),
               "--output", str(exported)]
    try:
        node.wait_height(2)
        client = ledger(port)
        assert client.send_tokens(bob.address(), 12_345, "ninfer", alice
                                  ).wait_to_complete().response.code == 0
        refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert refused.returncode != 0 and "stop it" in refused.stderr
        assert not exported.exists()
        balances = [client.query_bank_balance(w.address(), "ninfer") for w in (alice, bob)]
        node.stop()
    finally:
        node.close()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with Store.open(info.home / "data" / "app.sqlite") as old:
        height, app_hash = old.height, old.app_hash
    genesis = json.loads(exported.read_text())
    assert genesis["initial_height"] == str(height + 1)
    assert init_from(genesis)[1].app_hash == app_hash
    beyond = subprocess.run([*command, "--height", str(height + 1)], cwd=ROOT,
                            capture_output=True, text=True)
    assert beyond.returncode != 0 and "outside the readable" in beyond.stderr

    new_home = tmp_path / "new"
    shutil.copytree(info.home / "config", new_home / "config")
    shutil.copy(exported, new_home / "config" / "genesis.json")
    node = ChainNode(new_home, port).start()
    try:
        assert node.wait_height(height + 2) >= height + 2
        client = ledger(port)
        assert [client.query_bank_balance(w.address(), "ninfer")
                for w in (alice, bob)] == balances
        sent = client.send_tokens(alice.address(), 45, "ninfer", bob).wait_to_complete()
        assert sent.response.code == 0 and sent.response.height > height
        assert client.query_account(bob.address()).sequence == 1
    finally:
        node.close()


@pytest.mark.skipif(find_cometbft() is None, reason="cometbft is not installed (make cometbft)")
def test_cometbft_starts_a_new_chain_from_the_export_at_the_old_app_hash(tmp_path):
    keys = funded_keys(2)
    alice, bob = (LocalWallet(PrivateKey(bytes.fromhex(k.private_key_hex)), prefix="infer")
                  for k in keys)
    (info,) = layout_localnet(template(keys), tmp_path / "net", validators=1,
                              base_port=free_port_block(4 * PORTS_PER_NODE), timeout_commit="200ms")
    node = ChainNode(info.home, info.ports.grpc).start()
    try:
        node.wait_height(2)
        client = ledger(info.ports.grpc)
        assert client.send_tokens(bob.address(), 777, "ninfer", alice
                                  ).wait_to_complete().response.code == 0
    finally:
        node.close()
    exported = tmp_path / "genesis.json"
    done = subprocess.run([sys.executable, "-m", "chain", "export", "--home", str(info.home),
                           "--output", str(exported)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with Store.open(info.home / "data" / "app.sqlite") as old:
        height, app_hash = old.height, old.app_hash
    for stale in (info.home / "data").glob("app.sqlite*"):
        stale.unlink()
    subprocess.run([find_cometbft(), "unsafe-reset-all", "--home", str(info.home)], check=True,
                   capture_output=True)
    shutil.copy(exported, info.home / "config" / "genesis.json")
    node = ChainNode(info.home, info.ports.grpc).start()
    try:
        node.wait_height(height + 2)
        url = f"{info.ports.rpc_url}/block?height={height + 1}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            header = json.loads(reply.read())["result"]["block"]["header"]
        # A header carries the state before its block: here, InitChain's.
        assert header["app_hash"] == app_hash.hex().upper()
        client = ledger(info.ports.grpc)
        sent = client.send_tokens(alice.address(), 5, "ninfer", bob).wait_to_complete()
        assert sent.response.code == 0 and sent.response.height > height
    finally:
        node.close()
