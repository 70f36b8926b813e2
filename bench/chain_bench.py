"""Chain benchmark: how fast the app executes blocks, and how fast a network commits txs.

Two figures (docs/design.md §2, §12), both over real, successful bank sends signed with cosmpy:

- FinalizeBlock throughput in-process, on one core: an ``Application`` over a SQLite store
  executes blocks with no network in the way, so this is the state machine's ceiling. Blocks
  of 100 and 1,000 txs show whether the cost per tx stays flat as blocks grow; the time in
  signature verification and in the app hash is split out, since those are the two costs a
  block pays beyond reading and writing its keys.
- Committed txs/s end to end on a real 4-validator CometBFT localnet, against a solo node in
  the same run as the baseline. The same signed txs go through gRPC BroadcastTx, CheckTx,
  consensus and Commit on both, so the ratio is what CometBFT costs on top of the app:
  gossip and votes, and four apps each checking and executing every tx on shared cores. A
  second table splits each run's CPU time between the apps, CometBFT, the load generator
  and anything else, which also shows whether another process took cores during the run.

``--profile`` adds a cProfile of one FinalizeBlock, to show where the app's time goes.
Timed figures are quoted against a baseline measured in the same run. Progress goes to
stderr, the report (markdown) to stdout. Run ``python bench/chain_bench.py --help``.
"""

import functools
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import grpc
from cosmpy.aerial.tx import SigningCfg, Transaction, TxFee
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from cosmpy.protos.cosmos.base.tendermint.v1beta1.query_pb2_grpc import (
    ServiceStub as BlockServiceStub,
)
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from cosmpy.protos.cosmos.tx.v1beta1 import service_pb2 as tx_service
from cosmpy.protos.cosmos.tx.v1beta1.service_pb2_grpc import ServiceStub as TxServiceStub
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from cpu_time import machine_busy_s, process_cpu_s
from google.protobuf.timestamp_pb2 import Timestamp
from profiling import Profile, profile_finalize, profile_section
from report import bench_parser, environment, parse_bench_args, progress, publish, section, table

from chain.app import Application
from chain.bank.coins import NATIVE_DENOM
from chain.store import Store
from chain.tx import ante
from genesis.comet_config import find_cometbft
from genesis.localnet import PORTS_PER_NODE, layout_localnet
from genesis.solo import layout_solo
from genesis.template import Template, parse_template
from inferchain_pb.inference.v1 import query_pb2 as inference_query
from inferchain_pb.inference.v1.query_pb2_grpc import QueryStub

ROOT = Path(__file__).resolve().parent.parent
# The in-process blocks are proposed as CometBFT's proposer would (tests/proposals.py, which
# lives in tests/, not a package).
sys.path.insert(0, str(ROOT / "tests"))
from proposals import VALIDATOR_SECRET, genesis_validators, proposed_block  # noqa: E402

CHAIN_ID = "inferchain-bench"
FUNDS = 1_000_000_000_000
SEND_AMOUNT = 1
GAS_LIMIT = 200_000
FEE = 2_000  # GAS_LIMIT × the default minimum gas price of 0.01 ninfer
GENESIS_TIME_S = 1_767_225_600  # 2026-01-01T00:00:00Z; in-process block times count up from it

IN_PROCESS_ACCOUNTS = 1_000  # the largest block sends once from every account
BLOCK_SIZES = (100, 1_000)
VALIDATORS = 4
TIMEOUT_COMMIT = "300ms"
SOLO_BLOCK_INTERVAL_MS = 300  # the same pause between blocks as the localnet's timeout_commit
CONCURRENCY = 16  # broadcasts in flight at once, split evenly over the nodes of a network
POLL_S = 0.05  # how often the load generator asks whether the latest block has changed
STALL_S = 90  # no pending tx committed for this long: the network is stuck, not slow
START_DEADLINE_S = 120
PROFILE_TOP = 10

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """What one run measures; ``--quick`` shrinks only repetitions and tx counts."""

    repeats: int
    e2e_txs: int
    profile: bool


@dataclass(frozen=True)
class Account:
    """A funded genesis account; its account number is its index in the genesis balances."""

    wallet: LocalWallet
    address: str


@dataclass(frozen=True)
class BlockTiming:
    """One executed block: wall seconds of FinalizeBlock and Commit, and the parts split out.

    `finalize_cpu_s` is this process's CPU time in FinalizeBlock: well below `finalize_s`
    means another process took the core for part of the block.
    """

    txs: int
    finalize_s: float
    finalize_cpu_s: float
    commit_s: float
    verify_s: float
    app_hash_s: float


@dataclass(frozen=True)
class CpuSeconds:
    """CPU seconds used so far by the bench's own processes and by the whole machine.

    Differences over a run say where the cores went: the Python apps, CometBFT, this
    process (load generator and watcher), or anything else, other processes included.
    """

    apps: float
    cometbft: float
    load: float
    machine: float

    def __sub__(self, other: "CpuSeconds") -> "CpuSeconds":
        return CpuSeconds(self.apps - other.apps, self.cometbft - other.cometbft,
                          self.load - other.load, self.machine - other.machine)


@dataclass(frozen=True)
class NetworkRun:
    """One end-to-end load run: txs from first broadcast to the last one seen committed."""

    name: str
    txs: int
    seconds: float
    blocks: int
    cpu: CpuSeconds

    @property
    def rate(self) -> float:
        return self.txs / self.seconds


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, Path | None]:
    parser = bench_parser(__doc__)
    parser.add_argument("--profile", action="store_true",
                        help=f"also cProfile one extra {BLOCK_SIZES[-1]:,}-tx FinalizeBlock and "
                        f"list the top {PROFILE_TOP} chain/ functions by cumulative time")
    args = parse_bench_args(
        parser, "smoke run: 2 blocks per size in-process, 200 txs end to end", argv)
    settings = Settings(repeats=2 if args.quick else 5, e2e_txs=200 if args.quick else 2_000,
                        profile=args.profile)
    return settings, args.out


# --- accounts and signed txs -------------------------------------------------------------


def make_accounts(count: int) -> list[Account]:
    accounts = []
    for _ in range(count):
        wallet = LocalWallet(PrivateKey(), prefix="infer")
        accounts.append(Account(wallet, str(wallet.address())))
    return accounts


def signed_send(sender: Account, recipient: Account, sequence: int, number: int) -> bytes:
    """A TxRaw of one MsgSend, SIGN_MODE_DIRECT, carrying the sender's public key as cosmpy
    always does (the chain needs it on an account's first tx)."""
    tx = Transaction()
    tx.add_message(MsgSend(from_address=sender.address, to_address=recipient.address,
                           amount=[Coin(denom=NATIVE_DENOM, amount=str(SEND_AMOUNT))]))
    tx.seal(SigningCfg.direct(sender.wallet.public_key(), sequence),
            fee=TxFee(amount=f"{FEE}{NATIVE_DENOM}", gas_limit=GAS_LIMIT))
    tx.sign(sender.wallet.signer(), CHAIN_ID, number)
    return tx.complete().tx.SerializeToString()


def signed_blocks(accounts: Sequence[Account], sizes: Sequence[int]) -> list[list[bytes]]:
    """Blocks of sends in execution order, signed up front so signing is never timed.

    Senders go round robin over the accounts, so no sender appears twice in a block (sizes are
    at most the account count) and each tx's sequence is simply how often its sender has sent
    before. Account i pays account i+1, so the state keeps the same set of keys.
    """
    sequences = [0] * len(accounts)
    cursor = 0
    blocks = []
    for size in sizes:
        block = []
        for _ in range(size):
            i = cursor % len(accounts)
            cursor += 1
            block.append(signed_send(accounts[i], accounts[(i + 1) % len(accounts)],
                                     sequences[i], i))
            sequences[i] += 1
        blocks.append(block)
    return blocks


def tx_hash_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest().upper()


# --- part 1: FinalizeBlock in-process ----------------------------------------------------


class Stopwatch:
    """Adds up the time spent inside a wrapped function, so one block's share can be read."""

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> T:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start

        return timed


def app_state(accounts: Sequence[Account]) -> dict[str, Any]:
    """Genesis app_state in the builder's format (genesis/builder.py), default params."""
    return {"auth": {"params": {}},
            "bank": {"balances": [{"address": a.address,
                                   "coins": [{"denom": NATIVE_DENOM, "amount": str(FUNDS)}]}
                                  for a in accounts]}}


def finalize_request(app: Application, height: int, txs: list[bytes]
                     ) -> abci.RequestFinalizeBlock:
    """The block ``app`` proposes at ``height``: its beacon proof, then ``txs``."""
    return proposed_block(app, height, Timestamp(seconds=GENESIS_TIME_S + height), txs,
                          hashlib.sha256(height.to_bytes(8, "big")).digest())


def check_all_succeeded(response: abci.ResponseFinalizeBlock, height: int) -> None:
    """The figures must be of sends that went through, not of txs failing early in ante."""
    for index, result in enumerate(response.tx_results):
        if result.code != 0:
            raise RuntimeError(f"tx {index} of block {height} failed with code {result.code}: "
                               f"{result.log}")


class InProcessChain:
    """An Application over a fresh SQLite store, driven with FinalizeBlock and Commit as
    CometBFT would, with signature verification and the app hash timed separately."""

    def __init__(self, path: Path, accounts: Sequence[Account], stack: ExitStack) -> None:
        self.store = stack.enter_context(Store.open(path))
        self.app = Application(self.store, validator_secret=VALIDATOR_SECRET)
        self.app.init_chain(abci.RequestInitChain(
            time=Timestamp(seconds=GENESIS_TIME_S), chain_id=CHAIN_ID, initial_height=1,
            validators=genesis_validators(),
            app_state_bytes=json.dumps(app_state(accounts)).encode()))
        self.verify = Stopwatch()
        self.app_hash = Stopwatch()
        # The ante handler calls `verify` through its own module's name; the app calls the
        # store's method through the instance, so patching the instance covers it.
        stack.enter_context(mock.patch.object(ante, "verify", self.verify.wrap(ante.verify)))
        stack.enter_context(mock.patch.object(self.store, "app_hash_of",
                                              self.app_hash.wrap(self.store.app_hash_of)))

    def finalize(self, txs: list[bytes]) -> tuple[float, float]:
        """Runs FinalizeBlock on the next height and checks every tx result; returns its wall
        and CPU seconds."""
        height = self.store.height + 1
        request = finalize_request(self.app, height, txs)
        start, start_cpu = time.perf_counter(), time.process_time()
        response = self.app.finalize_block(request)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        check_all_succeeded(response, height)
        return wall, cpu

    def commit(self) -> float:
        start = time.perf_counter()
        self.app.commit(abci.RequestCommit())
        return time.perf_counter() - start

    def run_block(self, txs: list[bytes]) -> BlockTiming:
        self.verify.total = self.app_hash.total = 0.0
        finalize_s, finalize_cpu_s = self.finalize(txs)
        verify_s, app_hash_s = self.verify.total, self.app_hash.total
        return BlockTiming(len(txs), finalize_s, finalize_cpu_s, self.commit(), verify_s,
                           app_hash_s)

    def profile_block(self, txs: list[bytes]) -> Profile:
        """Where one FinalizeBlock's time goes among the chain/ functions; then commits it."""
        _, profile = profile_finalize(PROFILE_TOP, self.finalize, txs)
        self.commit()
        return profile


def finalize_bench(settings: Settings, accounts: Sequence[Account], workdir: Path
                   ) -> tuple[list[BlockTiming], Profile | None]:
    """Times blocks of each size, interleaved so that slow drift (the history table grows
    every block) falls on both sizes alike; a first block touching every account is left out
    of the figures, since it also writes each account's public key and warms SQLite's cache."""
    largest = max(BLOCK_SIZES)
    sizes = [largest, *BLOCK_SIZES * settings.repeats] + ([largest] if settings.profile else [])
    progress(f"in-process: signing {sum(sizes):,} txs from {len(accounts):,} accounts")
    blocks = signed_blocks(accounts, sizes)
    with ExitStack() as stack:
        chain = InProcessChain(workdir / "app.sqlite", accounts, stack)
        chain.finalize([])  # height 1 commits the genesis state
        chain.commit()
        progress(f"in-process: warm-up block of {largest:,} txs")
        chain.run_block(blocks[0])
        timed = blocks[1:1 + len(BLOCK_SIZES) * settings.repeats]
        timings = []
        for number, txs in enumerate(timed, start=1):
            progress(f"in-process: block {number}/{len(timed)} ({len(txs):,} txs)")
            timings.append(chain.run_block(txs))
        profile = None
        if settings.profile:
            progress(f"in-process: profiling one {largest:,}-tx FinalizeBlock")
            profile = chain.profile_block(blocks[-1])
    return timings, profile


# --- part 2: end to end over real nodes --------------------------------------------------


def cpu_now(nodes: Sequence["Node"]) -> CpuSeconds:
    own = os.times()
    apps = cometbft = 0.0
    for node in nodes:
        app, comet = node.cpu_s()
        apps += app
        cometbft += comet
    return CpuSeconds(apps, cometbft, own.user + own.system, machine_busy_s())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_base_port(nodes: int) -> int:
    """A base port whose localnet block (PORTS_PER_NODE per node) is free right now."""
    for base in range(31000, 60000, 100):
        try:
            for port in range(base, base + PORTS_PER_NODE * nodes):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range on 127.0.0.1")


def funded_template(accounts: Sequence[Account]) -> Template:
    return parse_template({
        "chain_id": CHAIN_ID,
        "accounts": [{"address": a.address, "coins": f"{FUNDS}{NATIVE_DENOM}"} for a in accounts],
        "validators": [{"name": "val0", "power": 10}],
    })


class Node:
    """One `python -m chain node start --home HOME` process and its gRPC endpoint.

    The node runs in its own process group: in cometbft mode it starts CometBFT itself, so if
    the node does not stop when asked, killing the group stops both and nothing is left behind.
    """

    def __init__(self, home: Path, grpc_port: int, comet_rpc: str | None = None) -> None:
        self.home = home
        self.comet_rpc = comet_rpc
        self.process: subprocess.Popen | None = None
        self.channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        self.txs = TxServiceStub(self.channel)
        self.blocks = BlockServiceStub(self.channel)
        self.queries = QueryStub(self.channel)

    def start(self, cometbft: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PATH": f"{Path(cometbft).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        with (self.home / "node.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chain", "node", "start", "--home", str(self.home)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds of the node process and of its children (the CometBFT it started)."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return process_cpu_s(pid), sum(process_cpu_s(int(c)) for c in children)

    def check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"node {self.home.name} exited ({self.process.returncode}):\n"
                               f"{self.log_tail()}")

    def height(self) -> int:
        reply = self.queries.Status(inference_query.QueryStatusRequest(), timeout=10)
        return reply.height

    def describe(self) -> str:
        """Where the node stands, for an error report: its height and, under CometBFT, how
        many txs wait in its mempool (txs stuck in one node's mempool point at gossip)."""
        try:
            text = f"{self.home.name} at height {self.height()}"
        except grpc.RpcError as exc:
            text = f"{self.home.name} not answering gRPC ({exc.code().name})"
        if self.comet_rpc is not None:
            try:
                with urllib.request.urlopen(f"{self.comet_rpc}/num_unconfirmed_txs",
                                            timeout=5) as reply:
                    waiting = json.loads(reply.read())["result"]["n_txs"]
                text += f", {waiting} txs in CometBFT's mempool"
            except OSError as exc:
                text += f", CometBFT RPC not answering ({exc})"
        return text

    def wait_height(self, target: int) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            self.check_running()
            try:
                if self.height() >= target:
                    return
            except grpc.RpcError:
                pass  # not listening yet
            time.sleep(0.2)
        raise TimeoutError(f"node {self.home.name} did not reach height {target}:\n"
                           f"{self.log_tail()}")

    def latest_block_txs(self) -> tuple[int, list[bytes]]:
        reply = self.blocks.GetLatestBlock(tm_query.GetLatestBlockRequest(), timeout=10)
        return reply.block.header.height, list(reply.block.data.txs)

    def committed(self, tx_hash: str) -> tuple[int, int, str] | None:
        """(height, code, log) of a committed tx; None while it is pending (NOT_FOUND)."""
        try:
            reply = self.txs.GetTx(tx_service.GetTxRequest(hash=tx_hash), timeout=10)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply.tx_response.height, reply.tx_response.code, reply.tx_response.raw_log

    def broadcast(self, raw: bytes) -> None:
        reply = self.txs.BroadcastTx(tx_service.BroadcastTxRequest(
            tx_bytes=raw, mode=tx_service.BROADCAST_MODE_SYNC), timeout=60)
        if reply.tx_response.code != 0:
            raise RuntimeError(f"CheckTx rejected tx {reply.tx_response.txhash} on "
                               f"{self.home.name}: code {reply.tx_response.code} "
                               f"{reply.tx_response.raw_log}")

    def stop(self) -> None:
        self.channel.close()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def log_tail(self, name: str = "node.log", lines: int = 30) -> str:
        """The last lines of a log in the home; CometBFT's INFO lines (one every few ms) are
        left out so that errors and panics are not buried."""
        path = self.home / name
        if not path.exists():
            return ""
        kept = [line for line in path.read_text(errors="replace").splitlines()
                if not line.startswith("I[")]
        return "\n".join(kept[-lines:])


@contextmanager
def running(nodes: list[Node], cometbft: str) -> Iterator[list[Node]]:
    """Starts the nodes, waits until each has committed a block, and stops them all on exit,
    also when starting or the run fails."""
    try:
        for node in nodes:
            node.start(cometbft)
        for node in nodes:
            node.wait_height(2)
        yield nodes
    except BaseException:
        for node in nodes:  # the logs go with the temp dir, so show them first
            for name in ("node.log", "cometbft.log"):
                tail = node.log_tail(name)
                if tail:
                    progress(f"{node.home.name}/{name}, last lines:\n{tail}")
        raise
    finally:
        for node in nodes:
            node.stop()


def wait_committed(watcher: Node, nodes: Sequence[Node], hashes: set[str],
                   lanes: Sequence[Future[None]], seen: int) -> float:
    """Blocks until every hash is committed on `watcher`; returns perf_counter at that moment.

    It reads each new latest block after height `seen` and strikes its txs off; `seen` must be
    read before the first broadcast, or a block committed meanwhile would be skipped with its
    txs. Reading GetTx for every pending hash on every poll would load the node under test far
    more than the load itself, so that is done only when a poll finds more than one new block,
    which could otherwise be missed. A failed broadcast lane or node ends the wait at once; a
    network that commits none of the pending txs for STALL_S ends it with where each node
    stands.
    """
    pending = set(hashes)
    progressed = time.monotonic()
    while pending:
        if time.monotonic() - progressed > STALL_S:
            raise TimeoutError(f"{len(pending)} txs not committed and none for {STALL_S}s: "
                               + "; ".join(node.describe() for node in nodes))
        for lane in lanes:
            if lane.done():
                lane.result()
        for node in nodes:
            node.check_running()
        time.sleep(POLL_S)
        if watcher.height() <= seen:
            continue
        height, txs = watcher.latest_block_txs()
        left = len(pending)
        pending.difference_update(tx_hash_hex(t) for t in txs)
        if height > seen + 1:
            pending = {h for h in pending if watcher.committed(h) is None}
        if len(pending) < left:
            progressed = time.monotonic()
        seen = height
    return time.perf_counter()


def drive(name: str, nodes: list[Node], phases: Sequence[Sequence[Sequence[bytes]]]
          ) -> NetworkRun:
    """Broadcasts each phase's lanes at once (lane i to node i mod len(nodes), each lane's txs
    one after another, in order) and waits until all of the phase is committed before the
    next phase starts; then checks each tx's result and counts the blocks they took. A lane
    keeps one account's txs in sequence order, and a phase waits for the one before it when
    its txs need the earlier ones executed (an inference's finish after its start)."""
    txs = [raw for phase in phases for lane in phase for raw in lane]
    hashes = [tx_hash_hex(t) for t in txs]
    watcher = nodes[0]
    stop = threading.Event()  # set when the wait fails, so the lanes quit instead of running on

    def send(lane: int, raws: Sequence[bytes]) -> None:
        node = nodes[lane % len(nodes)]
        for raw in raws:
            if stop.is_set():
                return
            node.broadcast(raw)

    progress(f"{name}: broadcasting {len(txs):,} txs in {len(phases)} phase(s) over "
             f"{len(nodes)} node(s)")
    workers = max(len(phase) for phase in phases)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        seen = watcher.height()
        cpu_start, start = cpu_now(nodes), time.perf_counter()
        try:
            for phase in phases:
                lanes = [pool.submit(send, lane, raws) for lane, raws in enumerate(phase)]
                end = wait_committed(watcher, nodes, {tx_hash_hex(t) for lane in phase
                                                      for t in lane}, lanes, seen)
                for lane in lanes:
                    lane.result()
                seen = watcher.height()
        finally:
            stop.set()
        cpu = cpu_now(nodes) - cpu_start
    progress(f"{name}: all committed after {end - start:.1f} s; checking results")
    heights = set()
    for tx_hash in hashes:
        found = watcher.committed(tx_hash)
        if found is None:
            raise RuntimeError(f"tx {tx_hash} was seen in a block but GetTx does not find it")
        height, code, log = found
        if code != 0:
            raise RuntimeError(f"tx {tx_hash} failed at height {height} with code {code}: {log}")
        heights.add(height)
    return NetworkRun(name, len(txs), end - start, len(heights), cpu)


def network_bench(accounts: Sequence[Account], workdir: Path, cometbft: str
                  ) -> list[NetworkRun]:
    """The solo baseline, then the localnet, one after the other so they never share cores.

    Both get the same genesis accounts and chain id, so the very same signed txs (one per
    account, sequence 0) are valid on both.
    """
    template = funded_template(accounts)
    progress(f"end to end: signing {len(accounts):,} txs")
    txs = [signed_send(a, accounts[(i + 1) % len(accounts)], 0, i)
           for i, a in enumerate(accounts)]
    phases = [[txs[lane::CONCURRENCY] for lane in range(CONCURRENCY)]]
    port = free_port()
    solo = layout_solo(template, workdir / "solo", grpc_port=port,
                       block_interval_ms=SOLO_BLOCK_INTERVAL_MS)
    progress("solo: starting the node")
    with running([Node(solo.home, port)], cometbft) as nodes:
        solo_run = drive("solo", nodes, phases)
    infos = layout_localnet(template, workdir / "localnet", validators=VALIDATORS,
                            base_port=free_base_port(VALIDATORS), timeout_commit=TIMEOUT_COMMIT)
    progress(f"localnet: starting {VALIDATORS} validators")
    with running([Node(i.home, i.ports.grpc, i.ports.rpc_url) for i in infos],
                 cometbft) as nodes:
        localnet_run = drive(f"localnet, {VALIDATORS} validators", nodes, phases)
    return [solo_run, localnet_run]


# --- report ------------------------------------------------------------------------------


def comet_environment(cometbft: str, load_before: float) -> list[str]:
    """The header, with the CometBFT binary's version beside Python's and SQLite's."""
    comet_version = subprocess.run([cometbft, "version"], capture_output=True, text=True,
                                   check=True, timeout=30).stdout.strip()
    return environment(load_before, ("cosmpy", "grpcio", "protobuf", "coincurve"),
                       (f"CometBFT {comet_version}",))


def finalize_table(timings: Sequence[BlockTiming], accounts: int) -> list[str]:
    """Medians per block size; the ratio is each size's throughput over the smallest size's."""
    rows = []
    baseline = None
    for size in BLOCK_SIZES:
        group = [t for t in timings if t.txs == size]
        finalize_s = statistics.median(t.finalize_s for t in group)
        rate = size / finalize_s
        baseline = baseline or rate
        verify = statistics.median(t.verify_s / t.finalize_s for t in group)
        app_hash = statistics.median(t.app_hash_s / t.finalize_s for t in group)
        on_cpu = statistics.median(t.finalize_cpu_s / t.finalize_s for t in group)
        commit_s = statistics.median(t.commit_s for t in group)
        rows.append([f"{size:,}", f"{len(group)}", f"{finalize_s * 1000:.1f} ms", f"{rate:,.0f}",
                     f"{rate / baseline:.2f}×", f"{commit_s * 1000:.1f} ms", f"{verify:.1%}",
                     f"{app_hash:.1%}", f"{on_cpu:.0%}"])
    return section(
        f"FinalizeBlock in-process, one core ({accounts:,} funded accounts, bank MsgSend, all "
        "txs code 0)",
        table(["txs/block", "blocks", "FinalizeBlock", "FinalizeBlock txs/s",
               f"vs {BLOCK_SIZES[0]}-tx", "Commit", "signature verify", "app hash", "on CPU"],
              rows, text_columns=0),
        "Medians over the blocks. Signature verify and app hash are shares of FinalizeBlock "
        "time (`chain.tx.ante.verify`, `Store.app_hash_of`); on CPU is this process's CPU time "
        "over FinalizeBlock's wall time.")


def network_table(runs: Sequence[NetworkRun]) -> list[str]:
    baseline = runs[0].rate
    rows = [[run.name, f"{run.txs:,}", f"{run.seconds:.2f} s", f"{run.rate:,.1f}",
             f"{run.rate / baseline:.2f}×", f"{run.blocks}", f"{run.txs / run.blocks:.1f}"]
            for run in runs]
    return section(
        f"Committed txs/s end to end (gRPC BroadcastTx sync, {CONCURRENCY} in flight)",
        table(["network", "txs", "first broadcast → last commit", "committed txs/s", "vs solo",
               "blocks with txs", "mean txs/block"], rows),
        f"Solo produces a block every {SOLO_BLOCK_INTERVAL_MS} ms; the localnet has "
        f"timeout_commit {TIMEOUT_COMMIT}. One tx per funded account; all txs code 0. Every "
        "process runs on the same machine.")


def cpu_table(runs: Sequence[NetworkRun]) -> list[str]:
    """Average cores busy over each run, split by who used them."""
    rows = []
    for run in runs:
        c, s = run.cpu, run.seconds
        # /proc counts in clock ticks, so an idle rest can come out a tick below zero.
        rest = max(0.0, c.machine - c.apps - c.cometbft - c.load)
        rows.append([run.name, f"{c.apps / s:.2f}", f"{c.cometbft / s:.2f}", f"{c.load / s:.2f}",
                     f"{rest / s:.2f}", f"{c.machine / s:.2f}"])
    return section(
        f"Where the {os.cpu_count()} cores went during each end-to-end run (average cores busy)",
        table(["network", "chain apps (Python)", "CometBFT", "load generator", "anything else",
               "machine busy"], rows),
        "From /proc: CPU seconds over the run's wall time. Anything else includes other "
        "processes, kernel threads and hypervisor steal.")


def exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM would end Python without unwinding; as SystemExit, the `finally` blocks still
    stop every node this bench started and remove its temp dirs."""
    sys.exit(128 + signum)


def network_bench_setup() -> str:
    """What a bench that starts nodes needs first: SIGTERM unwinding (so its nodes stop and
    its temp dirs go) and the CometBFT binary, or an exit that says how to install it."""
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    cometbft = find_cometbft()
    if cometbft is None:
        sys.exit("cometbft is not installed (make cometbft); the localnet figure needs it")
    return cometbft


def main(argv: Sequence[str] | None = None) -> None:
    settings, out = parse_args(argv)
    cometbft = network_bench_setup()
    load_before = os.getloadavg()[0]
    accounts = make_accounts(max(IN_PROCESS_ACCOUNTS, settings.e2e_txs))
    with tempfile.TemporaryDirectory(prefix="chain-bench-") as tmp:
        workdir = Path(tmp)
        timings, profile = finalize_bench(settings, accounts[:IN_PROCESS_ACCOUNTS], workdir)
        runs = network_bench(accounts[:settings.e2e_txs], workdir, cometbft)
    lines = [*comet_environment(cometbft, load_before), "",
             *finalize_table(timings, IN_PROCESS_ACCOUNTS), "", *network_table(runs), "",
             *cpu_table(runs)]
    if profile is not None:
        lines += ["", *profile_section(
            f"cProfile of one {max(BLOCK_SIZES):,}-tx FinalizeBlock: top {PROFILE_TOP} chain/ "
            "functions by cumulative time", profile, own_time=False)]
    publish(lines, out)


if __name__ == "__main__":
    main()
