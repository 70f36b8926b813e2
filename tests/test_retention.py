"""What a node keeps of the past (app.toml's history_keep_blocks and min_retain_blocks):
pruning its state history changes no app hash and leaves the kept heights readable, and
CometBFT drops the blocks below the retain height the app returns, never past the oldest
snapshot the node offers. In process for the state, a real CometBFT node for the blocks."""

import json
import urllib.error
import urllib.request

import pytest
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from inference_net import Net
from test_chain_cometbft import one_validator
from test_genesis_export import BASE

from chain.app import Application
from chain.export import export_genesis
from chain.retention import PRUNE_EVERY_MAX, Retention
from chain.store import HeightUnavailable, Store
from chain.tx.decode import tx_hash
from genesis.comet_config import find_cometbft


def test_history_is_pruned_in_batches_and_never_past_a_snapshot_being_written():
    keep = Retention(history_keep_blocks=1_000)
    assert keep.prune_every == PRUNE_EVERY_MAX
    assert keep.history_keep(1_050, None) is None
    assert keep.history_keep(1_100, None) == 1_000
    assert keep.history_keep(5_000, writing_snapshot=3_000) == 2_001
    assert Retention(history_keep_blocks=4).prune_every == 2
    assert Retention().history_keep(100, None) is None  # 0 keeps everything


def test_the_retain_height_keeps_the_blocks_asked_for_and_the_oldest_snapshot():
    assert Retention().retain_height(500, None) == 0
    assert Retention(min_retain_blocks=100).retain_height(500, None) == 401
    assert Retention(min_retain_blocks=100).retain_height(500, oldest_snapshot=300) == 300
    assert Retention(min_retain_blocks=100).retain_height(50, None) == 0


def test_a_pruning_node_agrees_on_every_app_hash_and_reads_only_the_heights_it_keeps():
    net = Net(3)
    sent = []  # (height, tx hash)
    for label in ("a", "b", "c", "d"):
        agent, _, start = net.start(label)
        raw = agent.tx(start)
        assert net.one(raw).code == 0
        sent.append((net.height, tx_hash(raw).hex()))
        for _ in range(3):
            net.block([])
    pruning = Application(Store.memory(), retention=Retention(history_keep_blocks=4))
    pruning.init_chain(net.init_request)
    for request, height in zip(net.blocks, range(1, net.height + 1), strict=True):
        pruning.finalize_block(request)
        pruning.commit(abci.RequestCommit())
        assert pruning.store.height == height
    assert pruning.store.app_hash == net.app.store.app_hash
    earliest = pruning.store.earliest_height
    assert net.height - 4 - 2 < earliest <= net.height - 3
    kept = export_genesis(pruning.modules, pruning.store, BASE, earliest)
    assert kept == export_genesis(net.app.modules, net.app.store, BASE, earliest)
    with pytest.raises(HeightUnavailable):
        export_genesis(pruning.modules, pruning.store, BASE, earliest - 1)
    # GetTx answers for the txs of the kept heights; older results went with their history.
    assert [pruning.committed_tx(h) is not None for _, h in sent] == \
        [height >= earliest for height, _ in sent]
    assert all(net.app.committed_tx(h) is not None for _, h in sent)
    assert sent[0][0] < earliest <= sent[-1][0]


def rpc(url: str, path: str) -> dict:
    with urllib.request.urlopen(f"{url}/{path}", timeout=5) as reply:
        return json.loads(reply.read())["result"]


@pytest.mark.skipif(find_cometbft() is None, reason="cometbft is not installed (make cometbft)")
def test_cometbft_drops_old_blocks_but_keeps_the_oldest_offered_snapshots_block(tmp_path):
    settings = ("min_retain_blocks = 5\nhistory_keep_blocks = 4\nsnapshot_interval = 10\n"
                "snapshot_keep_recent = 1\n")
    with one_validator(tmp_path, settings) as (node, ports):
        node.wait_height(26)
        earliest = int(rpc(ports.rpc_url, "status")["sync_info"]["earliest_block_height"])
        height = node.height()
        oldest_snapshot = height // 10 * 10
        assert 1 < earliest <= min(oldest_snapshot, height - 4)
        with pytest.raises(urllib.error.HTTPError) as gone:
            rpc(ports.rpc_url, "block?height=1")
        assert "lowest height is" in gone.value.read().decode()
        assert rpc(ports.rpc_url, f"block?height={earliest}")["block"]["header"]["height"] == \
            str(earliest)
        log = (node.home / "node.log").read_text()
        assert "state history pruned to heights" in log
