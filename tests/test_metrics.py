"""Metrics in-process: each node's registry is its own, and blocks, CheckTx verdicts and the
outbox show in them as the docs say (docs/metrics.md). The processes serving them over HTTP
are in test_metrics_e2e.py."""

from chain_client import TxSpec, send_msg, signed_tx
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from prometheus_client import generate_latest
from test_chain_app import genesis, run_block, started, wallet

from apinode.metrics import ApiMetrics
from apinode.outbox import Outbox
from apinode.store import Database
from chain.app import Application
from inferchain_pb.inference.v1.inference_pb2 import MsgStartInference


def value(app: Application, name: str, **labels: str) -> float | None:
    return app.metrics.registry.get_sample_value(name, labels)


def send(sender, recipient, sequence: int, amount: int = 5) -> bytes:
    return signed_tx(sender, TxSpec([send_msg(str(sender.address()), str(recipient.address()),
                                              amount)], sequence=sequence, account_number=0)
                     ).tx.SerializeToString()


def test_blocks_and_mempool_verdicts_show_in_the_apps_own_registry():
    alice, bob = wallet(1), wallet(2)
    app, other = started(genesis(alice, bob)), started(genesis(alice, bob))
    good, stale = send(alice, bob, 0), send(alice, bob, 5)
    assert app.check_tx(abci.RequestCheckTx(tx=good, type=abci.NEW)).code == 0
    assert app.check_tx(abci.RequestCheckTx(tx=stale, type=abci.NEW)).code == 32
    assert value(app, "inferchain_chain_checktx_total", kind="new", codespace="",
                 code="0") == 1
    assert value(app, "inferchain_chain_checktx_total", kind="new", codespace="sdk",
                 code="32") == 1  # wrong sequence, refused at the door
    assert value(app, "inferchain_chain_mempool_txs") == 1

    run_block(app, 1, [good, stale])  # a proposer may include a tx that fails
    run_block(app, 2, [])
    assert value(app, "inferchain_chain_height") == 2
    assert value(app, "inferchain_chain_mempool_txs") == 0  # the block carried it
    assert value(app, "inferchain_chain_txs_total", codespace="", code="0") == 1
    assert value(app, "inferchain_chain_txs_total", codespace="sdk", code="32") == 1
    assert value(app, "inferchain_chain_block_txs_sum") == 2
    assert value(app, "inferchain_chain_block_txs_count") == 2
    assert value(app, "inferchain_chain_finalize_block_seconds_count") == 2
    assert value(app, "inferchain_chain_commit_seconds_count") == 2
    # run_block's blocks are one second apart; the first has no block before it.
    assert value(app, "inferchain_chain_block_interval_seconds_count") == 1
    assert value(app, "inferchain_chain_block_interval_seconds_sum") == 1.0

    # The other app, in the same process, saw none of it.
    assert value(other, "inferchain_chain_height") == 0
    assert value(other, "inferchain_chain_checktx_total", kind="new", codespace="",
                 code="0") is None
    assert value(other, "inferchain_chain_block_txs_count") == 0


def test_a_tx_a_recheck_refuses_leaves_the_mempool_count():
    alice, bob = wallet(1), wallet(2)
    app = started(genesis(alice, bob))
    pending, rival = send(alice, bob, 0), send(alice, bob, 0, amount=6)
    app.check_tx(abci.RequestCheckTx(tx=pending, type=abci.NEW))
    run_block(app, 1, [rival])  # another node's tx with the same sequence won the block
    assert value(app, "inferchain_chain_mempool_txs") == 1
    assert app.check_tx(abci.RequestCheckTx(tx=pending, type=abci.RECHECK)).code == 32
    assert value(app, "inferchain_chain_mempool_txs") == 0
    assert value(app, "inferchain_chain_checktx_total", kind="recheck", codespace="sdk",
                 code="32") == 1


def test_the_outbox_depth_and_oldest_owed_age_are_read_at_scrape_time(tmp_path):
    db = Database.open(f"sqlite:///{tmp_path / 'apinode.sqlite'}")
    outbox = Outbox(db)
    metrics = ApiMetrics()
    metrics.watch_outbox(outbox)
    registry = metrics.registry
    assert registry.get_sample_value("inferchain_api_outbox_oldest_age_seconds") == 0
    for n in range(3):
        outbox.enqueue(f"start_inference:{n}", MsgStartInference(inference_id=str(n)))
    claimed = outbox.claim_batch(2)
    outbox.mark_sent([claimed[0].id], "AB" * 32)
    outbox.mark_committed([claimed[1].id])
    depth = {state: registry.get_sample_value("inferchain_api_outbox_entries", {"state": state})
             for state in ("pending", "sent", "committed", "failed")}
    assert depth == {"pending": 1, "sent": 1, "committed": 1, "failed": 0}
    assert registry.get_sample_value("inferchain_api_outbox_oldest_age_seconds") > 0
    outbox.mark_committed([e.id for e in outbox.with_prefix("start_inference:")])
    assert registry.get_sample_value("inferchain_api_outbox_oldest_age_seconds") == 0
    assert registry.get_sample_value("inferchain_api_outbox_entries", {"state": "committed"}) == 3
    db.close()


def test_every_fallback_reason_is_exposed_before_any_fallback():
    text = generate_latest(ApiMetrics().registry).decode()
    for reason in ("refused", "failed", "timeout", "draw_expired"):
        assert f'inferchain_api_executor_fallbacks_total{{reason="{reason}"}} 0.0' in text
