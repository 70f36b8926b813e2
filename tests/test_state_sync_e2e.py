"""State sync with real CometBFT: a 3-validator network commits transfers and takes snapshots; a
fourth node, its home made by ``inferchain init --state-sync-rpc`` as docs/operators.md writes
it, restores one while the network keeps committing, and then has the network's app hash at
every height. In the second variant one serving validator's snapshot chunks are corrupt on its
disk: the joiner refuses that peer's chunks, takes them from the other, and still ends with the
network's state. In the third one serving validator offers a forged snapshot, internally
consistent chunk by chunk but of a state with one balance changed: the joiner restores it,
finds it does not hash to the app hash its light client trusts, rejects that peer and keeps
nothing of it, and restores the other validator's genuine snapshot instead.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from chain_client import ledger
from chain_nodes import ROOT, ChainNode
from conftest import free_port_block
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.address import Address
from test_chain_cometbft import Localnet
from test_join_e2e import PASSPHRASE, comet_time_ns, doc_steps

from chain.bank.keeper import balance_key
from chain.snapshots.format import Metadata, chunk_hash, encode_entries
from chain.store import Store
from client.node_home import JoinPorts
from client.state_sync import TRUST_MARGIN
from genesis.comet_config import find_cometbft
from genesis.network_genesis import genesis_hash, read_genesis

pytestmark = pytest.mark.skipif(find_cometbft() is None,
                                reason="cometbft is not installed (make cometbft)")

# Small chunks, so the devnet's state makes several and each serving peer is asked for some;
# kept for 100 blocks, longer than a restore takes.
SNAPSHOT_SETTINGS = ("snapshot_interval = 10\nsnapshot_keep_recent = 10\n"
                     "snapshot_chunk_bytes = 1024\n")
RESTORED = re.compile(r"restored height (\d+) from a snapshot: (\d+) entries, (\d+) bytes of "
                      r"state from (\d+) chunk\(s\) of (\d+) bytes in all, app hash \w+, "
                      r"in ([\d.]+)s")


class Transfers:
    """Sends transfers from the first funded account, one after another, until stopped, so
    blocks keep carrying txs while a node joins."""

    def __init__(self, net: Localnet) -> None:
        self.client = ledger(net.infos[1].ports.grpc)
        self.sender = net.wallets[0]
        self.sent = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._sending = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._go.wait(timeout=0.2)
                with self._sending:
                    if self._go.is_set():
                        self._send()
        except BaseException as exc:
            self.failure = exc

    def _send(self) -> None:
        recipient = LocalWallet.generate(prefix="infer").address()
        done = self.client.send_tokens(recipient, 1_000 + self.sent, "ninfer",
                                       self.sender).wait_to_complete()
        assert done.response.code == 0, done.response.raw_log
        self.sent += 1

    def pause(self) -> None:
        """Returns once no transfer is in flight and none will start until ``resume``: one
        waiting on a halted network would time out."""
        self._go.clear()
        with self._sending:
            pass

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> int:
        self._stop.set()
        self._go.set()
        self._thread.join(timeout=60)
        if self.failure is not None:
            raise self.failure
        return self.sent


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    net = Localnet(tmp_path_factory.mktemp("statesync") / "net", validators=3)
    for info in net.infos:
        with (info.home / "config" / "app.toml").open("a") as app_toml:
            app_toml.write(SNAPSHOT_SETTINGS)
    with net.running():
        yield net


@pytest.fixture(scope="module", autouse=True)
def transfers(network):
    sending = Transfers(network)
    yield sending
    assert sending.stop() > 0


def snapshot_heights(net: Localnet, index: int) -> list[int]:
    root = net.infos[index].home / "data" / "snapshots"
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())


def joiner_home(net: Localnet, root: Path, serving: list[int]) -> tuple[Path, JoinPorts, int]:
    """A non-validator's home, empty of state, made by docs/operators.md's ``init-state-sync``
    step (``inferchain init --state-sync-rpc``, run with bash as written) to state-sync from
    the ``serving`` validators; its home, ports and the trust height init chose."""
    home = root / "joiner"
    first = net.infos[serving[0]]
    genesis = read_genesis(first.home / "config" / "genesis.json")
    env = {
        **os.environ, "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "NODE_HOME": str(home), "MONIKER": "joiner", "CHAIN_ID": genesis["chain_id"],
        "PEER_RPC": first.ports.rpc_url, "GENESIS_HASH": genesis_hash(genesis),
        "PEERS": ",".join(f"{net.infos[i].node_id}@127.0.0.1:{net.infos[i].ports.p2p}"
                          for i in serving),
        "BASE_PORT": str(free_port_block(6)), "PUBLIC_URL": "http://127.0.0.1:1",
        "STATE_SYNC_RPC": ",".join(net.infos[i].ports.rpc_url for i in serving),
    }
    latest = net.nodes[serving[0]].height()
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", doc_steps()["init-state-sync"]],
                          cwd=root, env=env, input=PASSPHRASE + "\n", text=True,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    statesync = tomllib.loads((home / "config" / "config.toml").read_text())["statesync"]
    assert statesync["enable"] is True
    assert statesync["rpc_servers"] == env["STATE_SYNC_RPC"]
    # Trusted: a block just below the first server's latest, whose hash every server confirms.
    trust_height = statesync["trust_height"]
    assert latest - TRUST_MARGIN <= trust_height <= net.nodes[serving[0]].height()
    assert f"trust_height: {trust_height}" in done.stdout, done.stdout
    for index in serving:
        assert statesync["trust_hash"] == \
            net.rpc(index, f"block?height={trust_height}")["block_id"]["hash"]
    return home, JoinPorts.from_base(int(env["BASE_PORT"])), trust_height


def rpc_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())["result"]


def wait_restored(joiner: ChainNode, timeout: float = 180) -> re.Match:
    """The joiner's log line saying which snapshot it restored, once written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        restored = RESTORED.search((joiner.home / "node.log").read_text())
        if restored:
            return restored
        if joiner.process is not None and joiner.process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"the joiner did not restore a snapshot:\n{joiner.log_tail()}")


def join_and_check(net: Localnet, root: Path, serving: list[int],
                   resume: Callable[[], None] | None = None,
                   probe: Callable[[int], object] | None = None) -> dict:
    """Starts a joiner, waits until it has caught up, and checks its app hash against every
    validator's at each height it holds; returns what it measured. ``resume``, if given, runs
    once the joiner has restored a snapshot (to let a halted network go on); ``probe`` is
    called with the joiner's gRPC port once it has caught up, its answer returned."""
    for index in serving:
        net.nodes[index].wait_height(22)  # a snapshot at 20, and the 2 heights above it
    home, ports, trust_height = joiner_home(net, root, serving)
    joiner = ChainNode(home, ports.grpc)
    started = time.monotonic()
    joiner.start()
    try:
        restored = wait_restored(joiner)
        if resume is not None:
            resume()
        joiner.wait_height(net.nodes[0].height(), timeout=180)
        caught_up = time.monotonic() - started
        snapshot_height = int(restored.group(1))
        assert snapshot_height >= 20
        rpc = f"http://127.0.0.1:{ports.rpc}"
        # The network goes on; the joiner follows it block by block.
        target = net.nodes[0].height() + 5
        joiner.wait_height(target)
        # It holds no block below the snapshot: it state-synced rather than replaying them.
        assert int(rpc_json(f"{rpc}/status")["sync_info"]["earliest_block_height"]) > \
            snapshot_height
        upto = min(joiner.height(), *(n.height() for n in net.nodes))
        # The app hash each node's own app returned from FinalizeBlock at every height.
        for height in range(snapshot_height + 1, upto + 1):
            mine = rpc_json(f"{rpc}/block_results?height={height}")["app_hash"]
            for index in range(3):
                theirs = net.rpc(index, f"block_results?height={height}")["app_hash"]
                assert mine == theirs, f"height {height}: joiner {mine}, val{index} {theirs}"
        # The state after the joiner's latest block is what the network's next header names.
        height, app_hash = joiner.app_hash_at_latest()
        net.nodes[0].wait_height(height + 1)
        assert net.rpc(0, f"block?height={height + 1}")["block"]["header"]["app_hash"] == \
            app_hash.hex().upper()
        entries, state_bytes, chunks, snapshot_bytes = map(int, restored.group(2, 3, 4, 5))
        return {"trust_height": trust_height, "snapshot_height": snapshot_height,
                "entries": entries, "state_bytes": state_bytes, "chunks": chunks,
                "snapshot_bytes": snapshot_bytes, "restore_s": float(restored.group(6)),
                "caught_up_s": caught_up, "checked": upto - snapshot_height,
                "probe": probe(ports.grpc) if probe else None,
                "log": (home / "node.log").read_text()}
    finally:
        joiner.close()


def test_a_node_from_an_empty_home_state_syncs_and_agrees_at_every_later_height(
        network, tmp_path):
    measured = join_and_check(network, tmp_path, serving=[0, 1])
    assert measured["checked"] >= 5
    print(f"\nstate sync: snapshot at height {measured['snapshot_height']} (trust height "
          f"{measured['trust_height']}): {measured['entries']} entries, "
          f"{measured['state_bytes']} bytes of state, {measured['snapshot_bytes']} bytes in "
          f"{measured['chunks']} chunks; restore {measured['restore_s']:.2f}s, caught up "
          f"{measured['caught_up_s']:.1f}s after start; app hash checked at "
          f"{measured['checked']} heights")


class Corrupter:
    """Flips a byte of every chunk of every snapshot a node writes, as a failing disk would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: set[Path] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:  # a folder may be pruned while it is listed
                chunks = list(self.root.glob("[0-9]*/chunk-*"))
            except FileNotFoundError:
                chunks = []
            for chunk in chunks:
                if chunk not in self.done:
                    try:
                        data = chunk.read_bytes()
                        chunk.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
                    except FileNotFoundError:  # pruned meanwhile
                        continue
                    self.done.add(chunk)
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_a_peer_serving_corrupt_chunks_is_refused_and_the_joiner_restores_from_another(
        network, tmp_path):
    """Each chunk goes to a peer the joiner picks at random, so a joiner may take every chunk
    from the sound validator and never see a corrupt one (1 in 2**chunks); each such join must
    still end with the network's state, and another joiner is started until one was sent a
    corrupt chunk."""
    corrupter = Corrupter(network.infos[0].home / "data" / "snapshots")
    val0 = network.infos[0].node_id
    refused = None
    try:
        for attempt in range(4):
            network.nodes[0].wait_height(network.nodes[0].height() + 12)  # a corrupt snapshot
            root = tmp_path / f"join{attempt}"
            root.mkdir()
            measured = join_and_check(network, root, serving=[0, 1])
            refused = re.search(rf"chunk \d+ of snapshot {measured['snapshot_height']} from "
                                rf"peer {val0} does not match its hash; refetching it from "
                                r"another peer", measured["log"])
            if refused:
                break
    finally:
        corrupter.stop()
    assert refused, measured["log"][-3000:]
    assert "does not match its hash on disk; no longer offering that snapshot" in \
        network.nodes[0].log_tail(2000)


def last_block(net: Localnet, index: int, height: int, app_hash: bytes) -> dict:
    """Block ``height`` as a snapshot's metadata summarises it, read from a validator's RPC."""
    block = net.rpc(index, f"block?height={height}")
    header = block["block"]["header"]
    return {"height": height, "time_ns": comet_time_ns(header["time"]),
            "hash": block["block_id"]["hash"].lower(),
            "proposer": header["proposer_address"].lower(), "app_hash": app_hash.hex()}


def forge_snapshot(net: Localnet, index: int, height: int, raw_address: bytes) -> Path:
    """Replaces every snapshot on the stopped validator's disk with one of ``height`` whose
    metadata claims the network's true app hash, but whose state gives ``raw_address`` a
    million ninfer more; chunks and metadata are written by the node's own encoder, so every
    chunk matches its hash and only the restored state's hash can tell."""
    info = net.infos[index]
    store = Store.open(info.home / "data" / "app.sqlite")
    try:
        entries = list(store.iterate_at(b"", height))
    finally:
        store.close()
    key = balance_key(raw_address, "ninfer")
    forged = [(k, str(int(v) + 1_000_000).encode() if k == key else v) for k, v in entries]
    assert forged != entries
    app_hash = bytes.fromhex(net.rpc(1, f"block?height={height + 1}")["block"]["header"]
                             ["app_hash"])
    root = info.home / "data" / "snapshots"
    for folder in root.iterdir():
        shutil.rmtree(folder)
    folder = root / str(height)
    folder.mkdir()
    hashes = []
    for part in encode_entries(forged, 1024):
        if isinstance(part, tuple):
            count, state_bytes = part
            break
        (folder / f"chunk-{len(hashes)}").write_bytes(part)
        hashes.append(chunk_hash(part))
    chain_id = read_genesis(info.home / "config" / "genesis.json")["chain_id"]
    (folder / "metadata").write_bytes(Metadata(
        height, app_hash, chain_id, tuple(hashes), count, state_bytes,
        last_block(net, 1, height, app_hash)).encode())
    assert len(hashes) > 1
    return folder


def test_a_peer_serving_a_forged_snapshot_is_refused_and_the_joiner_restores_the_true_state(
        network, transfers, tmp_path):
    """val2 is stopped so the network halts (two of three validators are not over 2/3) and
    no validator takes a snapshot while the joiner chooses one; val0's forged snapshot is then
    of a height no other peer offers and above val1's newest, so CometBFT offers it first,
    every time."""
    val0, val1, val2 = network.nodes
    # The joiner's checks want heights 20 to 22 committed, which a halted network would never
    # reach if this test ran first.
    val0.wait_height(22)
    target = val0.height() + 10 - val0.height() % 10 + 5
    val0.wait_height(target)
    transfers.pause()
    val2.stop()
    val0.stop()
    halted = Store.open(network.infos[0].home / "data" / "app.sqlite")
    try:
        top = halted.height
    finally:
        halted.close()
    forged_height = top - 3  # blocks forged_height + 1 and + 2 are committed, with commits
    assert max(snapshot_heights(network, 1)) < forged_height
    victim = bytes(Address(network.wallets[1].address()))
    forge_snapshot(network, 0, forged_height, victim)
    val0.start()
    val0.wait_height(top)
    val0_id = network.infos[0].node_id

    def resume() -> None:
        val2.start()
        val2.wait_height(top + 2)  # the network commits again
        transfers.resume()

    address = str(Address(victim, prefix="infer"))
    measured = join_and_check(
        network, tmp_path, serving=[0, 1], resume=resume,
        probe=lambda grpc: (ledger(grpc).query_bank_balance(address, "ninfer"),
                            ledger(network.infos[1].ports.grpc).query_bank_balance(
                                address, "ninfer")))
    assert re.search(rf"snapshot of height {forged_height} from peer\(s\) {val0_id} refused "
                     r"after its last chunk: the restored state hashes to [0-9a-f]{64}, not "
                     r"the trusted [0-9a-f]{64}; rejecting those peers as senders",
                     measured["log"]), measured["log"][-3000:]
    # It restored val1's genuine snapshot, of a lower height, and nothing of the forged one.
    assert measured["snapshot_height"] < forged_height
    assert measured["snapshot_height"] in snapshot_heights(network, 1)
    assert f"restored height {forged_height}" not in measured["log"]
    joiner_balance, val1_balance = measured["probe"]
    assert joiner_balance == val1_balance > 0
