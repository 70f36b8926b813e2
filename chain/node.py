"""Runs one chain node: the app, its gRPC services, and consensus (solo or CometBFT).

In cometbft mode the node also starts CometBFT itself (``cometbft start --home HOME``),
pointed at the app's ABCI socket, so one command runs a participant's chain node. If the node
process dies, however it dies, CometBFT is killed with it (on Linux, by the kernel's parent-
death signal): a CometBFT left behind still holds its ports and its peers' connections, and
the restarted node's CometBFT could not join. The other way round, a CometBFT that exits on
its own (a failed write on a full disk, a store it cannot open) stops the node with an error:
a node left answering queries without consensus looks alive to its supervisor while it falls
behind for good. Restarting the node restarts both, and CometBFT's handshake replays any
block the app had not committed. CometBFT runs in a process group of its own, so a Ctrl-C
at the terminal reaches only the node, which stops CometBFT first.
"""

import asyncio
import ctypes
import ctypes.util
import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from chain.abci.server import AbciServer
from chain.app import Application
from chain.config import NodeConfig
from chain.metrics import ChainMetrics, serve_metrics
from chain.services import node_query
from chain.services.broadcast import CometBroadcaster
from chain.services.grpc_server import start_grpc
from chain.services.tx_service import TxService, register_abci_simulate
from chain.snapshots.store import SnapshotStore
from chain.solo import SoloChain
from chain.store import Store
from genesis.comet_keys import read_priv_validator_key

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
COMET_STOP_TIMEOUT_S = 30


class NodeFailed(Exception):
    """The node stopped on its own, not by a signal: its supervisor should restart it."""


def cometbft_binary(configured: str) -> str:
    found = shutil.which(configured) or shutil.which(str(Path.home() / "go" / "bin" / configured))
    if found is None:
        raise FileNotFoundError(f"{configured} not found; install it with `make cometbft`")
    return found


def _die_with_parent() -> None:
    """Runs in the CometBFT child before exec: SIGKILL it when this node process dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host, int(port)


def _validator_secret(path: Path) -> bytes | None:
    """The seed of the node's CometBFT validator key, which proves the beacon of the blocks it
    proposes; None for a node without the file, which validates nothing."""
    return bytes(read_priv_validator_key(path)) if path.is_file() else None


async def run_node(home: Path) -> None:
    config = NodeConfig.load(home)
    config.database.parent.mkdir(parents=True, exist_ok=True)
    store = Store.open(config.database)
    metrics = ChainMetrics()
    metrics_server = serve_metrics(metrics.registry, _split(config.grpc_listen)[0],
                                   config.metrics_port, f"{home}/config/app.toml: metrics_port")
    snapshots = SnapshotStore(config.snapshot_dir, config.snapshots)
    genesis_chain_id = json.loads(config.genesis_file.read_text())["chain_id"]
    app = Application(store, simulate_gas_limit=config.simulate_gas_limit, metrics=metrics,
                      snapshots=snapshots, network_chain_id=genesis_chain_id,
                      retention=config.retention,
                      validator_secret=_validator_secret(config.validator_key_file))
    node_query.register(app.queries, app, moniker=home.name)
    register_abci_simulate(app.queries, app)
    log.info("node %s starting in %s mode at height %d", home.name, config.mode, store.height)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    background: list[asyncio.Task] = []
    comet: subprocess.Popen | None = None
    abci: AbciServer | None = None
    if config.mode == "solo":
        solo = SoloChain(app, config.genesis_file, config.block_interval_ms / 1000)
        solo.init_chain()
        broadcaster = solo
        background.append(asyncio.create_task(solo.run()))
    else:
        abci = AbciServer(app)
        await abci.start(*_split(config.abci_listen))
        broadcaster = CometBroadcaster(config.comet_rpc)
        comet_log = (home / "cometbft.log").open("ab")
        comet = subprocess.Popen([cometbft_binary(config.cometbft_binary), "start", "--home",
                                  str(home)], stdout=comet_log, stderr=subprocess.STDOUT,
                                 preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                                 process_group=0)
        log.info("CometBFT started (pid %d), log in %s", comet.pid, comet_log.name)
    grpc_server = await start_grpc(config.grpc_listen, app.queries, TxService(app, broadcaster))
    waiter = asyncio.create_task(stop.wait())
    comet_exit = asyncio.create_task(asyncio.to_thread(comet.wait)) if comet else None
    watched = [waiter, *background, *([comet_exit] if comet_exit else [])]
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    failure = None
    for task in background:
        if task.done() and task.exception():
            failure = f"block production failed: {task.exception()!r}"
        task.cancel()
    if comet_exit is not None and comet_exit.done() and not stop.is_set():
        failure = (f"CometBFT exited on its own with code {comet_exit.result()}; why is in "
                   f"{home / 'cometbft.log'}")
    if failure:
        log.error("%s; the node stops", failure)
    log.info("shutting down")
    if comet is not None and comet_exit is not None:
        comet.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(comet_exit), COMET_STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("CometBFT did not stop within %ds; killing it", COMET_STOP_TIMEOUT_S)
            comet.kill()
            await comet_exit
    await grpc_server.stop(grace=1)
    if abci is not None:
        await abci.close()
    if isinstance(broadcaster, CometBroadcaster):
        await broadcaster.close()
    if metrics_server is not None:
        metrics_server.close()
    snapshots.wait()
    store.close()
    if failure:
        raise NodeFailed(failure)
