"""A local network of real processes for end-to-end tests.

A chain (solo, or a one-validator CometBFT localnet), participants that each run an ML node
(`python -m mlnode serve`) and an API node (`python -m apinode serve --home`), and funded
developers who call it with the official openai client and signed requests.

ML nodes are started once (`MlNodes`) and lent to one network after another: loading the
model is most of a network's start-up time, and an ML node keeps no chain state, so the
networks that differ only in consensus or storage reuse them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
import openai
import psycopg
from chain_nodes import CHAIN_ID, FUNDS, ROOT, ChainNode, funded_keys
from conftest import free_port, free_port_block, wait_healthy
from google.protobuf.message import Message
from inference_actors import genesis_models
from nacl.signing import SigningKey
from psycopg import sql
from settled_records import query_at, validation_task
from sqlalchemy import select
from sqlalchemy.engine import make_url

from apinode.config import write_home
from apinode.openai_signing import signed_http_client
from apinode.outbox import Entry, Outbox
from apinode.store import Database, OutboxRow, OutboxState
from genesis.account_keys import AccountKey
from genesis.app_config import add_metrics_port
from genesis.localnet import PORTS_PER_NODE, layout_localnet
from genesis.solo import layout_solo
from genesis.template import parse_template
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    FINISHED,
    INVALIDATED,
    VALIDATED,
    VOTING,
    Inference,
    Participant,
)
from inferchain_pb.inference.v1.validation_pb2 import ValidationTask
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc

MODEL = genesis_models()[0]["id"]
CHARGED = (FINISHED, VALIDATED, VOTING, INVALIDATED)
POOR_FUNDS = 1_000  # below any request's escrow: 10 tokens at the genesis price
T = TypeVar("T")
Reply = TypeVar("Reply", bound=Message)


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None
          ) -> subprocess.Popen:
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def poll(check: Callable[[], T | None], what: str, timeout: float,
         interval: float = 0.2) -> T:
    """``check()``'s first result that is not None, asked until ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(interval)
    raise TimeoutError(f"{what} within {timeout:g}s")


def wait_http(url: str, process: subprocess.Popen, log_path: Path,
              timeout: float = 120) -> dict:
    """The JSON at ``url`` once the process serving it answers; fails early if it exits."""
    def answer() -> dict | None:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return json.loads(reply.read())
        except OSError:
            return None
    return poll(answer, f"{url} did not answer:\n{log_path.read_text()[-3000:]}", timeout, 0.3)



class MlNodes:
    """``count`` ML node processes serving the default model's weights, started side by side;
    ``cheats[i]``, when given, starts node i with that ``--cheat`` variant; with ``metrics``,
    each serves its metrics on a port of ``metrics_ports``; all compute in ``dtype``, under
    the registry id ``model_id`` when given (a second registry entry for the same weights)."""

    def __init__(self, root: Path, count: int, cheats: list[str | None] | None = None,
                 metrics: bool = False, dtype: str = "float32",
                 model_id: str | None = None) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.metrics_ports = [free_port() if metrics else 0 for _ in range(count)]
        self.processes: list[subprocess.Popen] = []
        try:
            for i, port in enumerate(self.ports):
                cheat = cheats[i] if cheats else None
                self.processes.append(spawn(
                    ["-m", "mlnode", "serve", "--port", str(port), "--max-batch", "4",
                     "--dtype", dtype, *(["--model-id", model_id] if model_id else []),
                     "--metrics-port", str(self.metrics_ports[i]),
                     *(["--cheat", cheat] if cheat else [])], root / f"mlnode{i}.log",
                    # One torch thread each, as in the devnet: several ML nodes, each with
                    # a thread per core, oversubscribe a small machine and all slow down.
                    {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}))
            for i, (port, process) in enumerate(zip(self.ports, self.processes, strict=True)):
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    wait_healthy(ml_grpc.MLNodeStub(channel), process, root / f"mlnode{i}.log")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        stop_all(self.processes)


def stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ApiNode:
    """One participant's API node: its home, URL and account, and the process serving them.

    Its store is opened from the test as well, to see what the node owes the chain.
    """

    home: Path
    url: str
    key: AccountKey
    database_url: str
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    starts: int = 0
    _db: Database | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return self.key.address

    def start(self) -> None:
        """Starts the node; each start logs to a file of its own (apinode.log, apinode.2.log…)."""
        self.starts += 1
        self.log_path = self.home / ("apinode.log" if self.starts == 1
                                     else f"apinode.{self.starts}.log")
        self.process = spawn(["-m", "apinode", "serve", "--home", str(self.home)],
                             self.log_path)

    def wait_ready(self) -> None:
        assert self.process is not None and self.log_path is not None
        health = wait_http(f"{self.url}/health", self.process, self.log_path)
        assert health["address"] == self.address

    def kill(self) -> None:
        """SIGKILL, as a crash: the node gets no chance to send or save anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    @property
    def outbox(self) -> Outbox:
        if self._db is None:
            self._db = Database.open(self.database_url)
        return Outbox(self._db)

    def outbox_states(self) -> Counter[OutboxState]:
        """How many outbox entries are in each state."""
        with self.outbox.db.session() as session:
            return Counter(session.scalars(select(OutboxRow.state)))

    def failed_outbox(self) -> dict[str, str]:
        """The outbox entries given up on: key → the last error."""
        with self.outbox.db.session() as session:
            rows = session.execute(select(OutboxRow.key, OutboxRow.last_error)
                                   .where(OutboxRow.state == OutboxState.FAILED))
            return {key: error or "" for key, error in rows}

    def close(self) -> None:
        if self.process is not None:
            stop_all([self.process])
        if self._db is not None:
            self._db.close()


class LocalNetwork:
    """A chain and ``len(mlnode_ports)`` participants, each API node on its own ML node.

    ``consensus`` is "solo" (the chain node makes blocks itself) or "cometbft" (a one-validator
    localnet: `python -m chain node start` runs CometBFT too). ``databases`` gives each API node
    its store URL; None keeps the default SQLite file in its home.
    """

    def __init__(self, root: Path, mlnode_ports: list[int], consensus: str = "solo",
                 databases: list[str] | None = None, *, params: dict | None = None,
                 in_genesis: bool = True, reputations: dict[str, int] | None = None,
                 node_settings: list[dict] | None = None,
                 extra_accounts: list[AccountKey] | None = None,
                 extra_participants: list[dict] | None = None,
                 chain_metrics_port: int = 0, models: list[dict] | None = None,
                 serves: list[int] | None = None,
                 weights: list[int] | None = None) -> None:
        """``params`` overrides module params in genesis; ``in_genesis`` lists the participants
        in genesis, as the devnet does (with the genesis weight: they serve and validate from
        the first epoch); without it each API node registers on start and, like any newcomer,
        has no weight until its proof of compute settles;
        ``reputations`` maps an address to its starting reputation (ppm);
        ``node_settings`` adds apinode.toml settings per participant; ``extra_accounts`` are
        funded in genesis for a test to act with directly, ``extra_participants`` registered
        there (template [[participants]] entries); ``chain_metrics_port`` is the chain node's
        metrics_port (0: none); ``models`` replaces the registry (genesis_models());
        ``serves[i]`` is the index in it of the model participant i's ML node serves (the
        first by default); ``weights[i]`` is participant i's genesis weight (the genesis
        default when not given)."""
        self.chain_metrics_port = chain_metrics_port
        self.models = models or genesis_models()
        self.serves = serves or [0] * len(mlnode_ports)
        self.weights = weights
        self.extra_participants = extra_participants or []
        self.root = root
        self.developer, self.poor, *keys = funded_keys(2 + len(mlnode_ports))
        self.extra_accounts = extra_accounts or []
        self.funds = {self.developer.address: FUNDS, self.poor.address: POOR_FUNDS}
        self.keys = keys
        self.node_keys = [SigningKey.generate() for _ in keys]
        self.http_ports = [free_port() for _ in keys]
        self.chain = self._start_chain(consensus, keys, params or {}, in_genesis,
                                       reputations or {})
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.chain.grpc_port}")
        self.nodes: list[ApiNode] = []
        try:
            for i, (key, ml_port) in enumerate(zip(keys, mlnode_ports, strict=True)):
                self.nodes.append(self._lay_out_node(
                    i, key, ml_port, databases[i] if databases else None,
                    node_settings[i] if node_settings else {}))
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_ready()
        except BaseException:
            self.close()
            raise

    def _start_chain(self, consensus: str, participants: list[AccountKey], params: dict,
                     in_genesis: bool, reputations: dict[str, int]) -> ChainNode:
        genesis_participants = [
            {"address": k.address, "url": f"http://127.0.0.1:{port}",
             "node_pubkey": bytes(node_key.verify_key).hex(),
             "models": [{"model_id": model["id"], "weights_sha256": model["weights_sha256"]}],
             **({} if self.weights is None else {"weight": weight})}
            for k, node_key, port, model, weight in zip(
                participants, self.node_keys, self.http_ports,
                [self.models[i] for i in self.serves], self.weights or [0] * len(participants),
                strict=True)]
        template = parse_template({
            "chain_id": CHAIN_ID, "validators": [{"name": "val0", "power": 10}],
            "accounts": [{"address": address, "coins": f"{funds}ninfer"}
                         for address, funds in self.funds.items()]
                        + [{"address": k.address, "coins": f"{FUNDS}ninfer"}
                           for k in [*participants, *self.extra_accounts]],
            "models": self.models,
            # CPU generation is slow: let a lone half wait long enough for its partner.
            # Proof of compute only where a test asks for it: the others keep genesis weights.
            "params": {**params, "inference": {"expiration_blocks": 2000,
                                               "max_draw_age_blocks": 200,
                                               **params.get("inference", {})},
                       "epochs": {"poc_window_blocks": 0, **params.get("epochs", {})},
                       # The API nodes here send no probes unless a test turns them on.
                       "validation": {"probe_quota": 0, **params.get("validation", {})}},
            "participants": (genesis_participants if in_genesis else [])
            + self.extra_participants,
            "reputations": [{"address": address, "reputation_ppm": ppm}
                            for address, ppm in reputations.items()],
        })
        if consensus == "solo":
            grpc_port = free_port()
            home = layout_solo(template, self.root / "chain", grpc_port=grpc_port,
                               block_interval_ms=300).home
        elif consensus == "cometbft":
            info, = layout_localnet(template, self.root / "chain", validators=1,
                                    base_port=free_port_block(PORTS_PER_NODE),
                                    timeout_commit="300ms")
            home, grpc_port = info.home, info.ports.grpc
        else:
            raise ValueError(f"unknown consensus {consensus!r}")
        if self.chain_metrics_port:
            add_metrics_port(home, self.chain_metrics_port)
        chain = ChainNode(home, grpc_port).start()
        try:
            chain.wait_height(2)
        except BaseException:
            chain.close()
            raise
        return chain

    def _lay_out_node(self, index: int, key: AccountKey, ml_port: int,
                      database: str | None, settings: dict) -> ApiNode:
        home = self.root / f"participant{index}"
        http_port = self.http_ports[index]
        url = f"http://127.0.0.1:{http_port}"
        # No probes unless a test asks: the tests count draws, checks and balances exactly.
        config = {"chain_id": CHAIN_ID, "listen": f"127.0.0.1:{http_port}", "public_url": url,
                  "chain_grpc": f"127.0.0.1:{self.chain.grpc_port}",
                  "mlnode": f"127.0.0.1:{ml_port}", "probes_per_epoch": 0, **settings}
        if database is not None:
            config["database"] = database
        write_home(home, config, key.private_key_hex)
        # The key genesis may already name for this participant.
        (home / "node.key").write_text(bytes(self.node_keys[index]).hex() + "\n")
        return ApiNode(home, url, key, database or f"sqlite:///{home / 'apinode.sqlite'}")

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self._channel.close()
        self.chain.close()

    # The developer's side.

    def client(self, node: ApiNode, developer: AccountKey | None = None) -> openai.OpenAI:
        """The official client, every request signed by ``developer`` for ``node`` as TA."""
        key = bytes.fromhex((developer or self.developer).private_key_hex)
        return openai.OpenAI(base_url=f"{node.url}/v1", api_key="unused", max_retries=0,
                             http_client=signed_http_client(key, node.address, CHAIN_ID))

    # The chain's side: inference.v1.Query.

    def query(self, name: str, request: Message, reply_type: type[Reply],
              height: int = 0) -> Reply:
        return query_at(self._channel, name, request, reply_type, height)

    def task(self, inference_id: str) -> ValidationTask:
        return validation_task(self.query, inference_id)

    def inference(self, inference_id: str) -> Inference | None:
        try:
            return self.query("Inference", q.QueryInferenceRequest(id=inference_id),
                              q.QueryInferenceResponse).inference
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def finished(self, inference_id: str, timeout: float = 120) -> Inference:
        """The inference once the chain has charged it (FINISHED, or already on to its
        validation: VALIDATED, VOTING, INVALIDATED)."""
        def charged() -> Inference | None:
            found = self.inference(inference_id)
            return found if found is not None and found.status in CHARGED else None
        return poll(charged, f"inference {inference_id} not charged on chain", timeout, 0.3)

    def height(self) -> int:
        """The latest committed height, which every query reads."""
        return self.query("Status", q.QueryStatusRequest(), q.QueryStatusResponse).height

    def inferences(self, status: int) -> list[Inference]:
        return list(self.query("Inferences", q.QueryInferencesRequest(status=status),
                               q.QueryInferencesResponse).inferences)

    def account(self, address: str) -> q.QueryAccountResponse:
        return self.query("Account", q.QueryAccountRequest(address=address),
                          q.QueryAccountResponse)

    def participant(self, address: str) -> Participant:
        return self.query("Participant", q.QueryParticipantRequest(address=address),
                          q.QueryParticipantResponse).participant

    def draw(self, inference_id: str, draw_height: int) -> list[str]:
        return list(self.query("Draw", q.QueryDrawRequest(
            inference_id=inference_id, model_id=MODEL, draw_height=draw_height),
            q.QueryDrawResponse).order)

    def request_draw(self, inference_id: str, timestamp: int) -> tuple[list[str], int]:
        """The draw order and height of a request stamped ``timestamp``, once the chain has
        its draw block (the first at or after the timestamp)."""
        def found() -> tuple[list[str], int] | None:
            try:
                reply = self.query("Draw", q.QueryDrawRequest(
                    inference_id=inference_id, model_id=MODEL, request_timestamp=timestamp),
                    q.QueryDrawResponse)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            return list(reply.order), reply.draw_height
        return poll(found, f"the draw block of timestamp {timestamp}", 30)

    # The API nodes' side.

    def executor_of(self, inference_id: str, timeout: float = 10) -> tuple[ApiNode, Entry]:
        """The node that ran an inference, found by the finish its outbox owes the chain
        (an executor queues it once the transfer agent's delivery signature, sent beside the
        answer's last line, reaches it)."""
        key = f"finish_inference:{inference_id}"

        def owing() -> tuple[ApiNode, Entry] | None:
            return next(((node, entry) for node in self.nodes
                         if (entry := node.outbox.get(key)) is not None), None)
        return poll(owing, f"no API node recorded a finish for {inference_id}", timeout, 0.05)


def kill_while_owing(node: ApiNode, key: str, timeout: float = 30) -> bool:
    """SIGKILLs ``node`` while its outbox entry ``key`` is not yet committed; False when the
    entry was committed before that could happen.

    The kill lands while the entry is unclaimed or already in a broadcast tx, never while the
    outbox worker holds its lease mid-broadcast: a lease outlives the process (that is what
    keeps two workers off one entry) and would hold the entry back for the lease's length
    after restart.
    """
    def state() -> OutboxState | None:
        entry = node.outbox.get(key)
        assert entry is not None, key
        if entry.state == OutboxState.PENDING and entry.attempts:
            return None  # leased, or waiting to retry: look again once it is sent
        return entry.state

    found = poll(state, f"{key} neither unclaimed nor sent", timeout, 0.01)
    if found == OutboxState.COMMITTED:
        return False
    node.kill()
    return True


@contextmanager
def postgres_databases(server_url: str, names: list[str]) -> Iterator[list[str]]:
    """Fresh PostgreSQL databases ``names`` on the server of ``server_url`` (a SQLAlchemy
    ``postgresql+psycopg://`` URL), yielded as URLs of the same form and dropped afterwards."""
    server = make_url(server_url)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            for name in names:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                                   .format(sql.Identifier(name)))

    drop()
    with psycopg.connect(admin, autocommit=True) as connection:
        for name in names:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield [server.set(database=name).render_as_string(hide_password=False)
               for name in names]
    finally:
        drop()
