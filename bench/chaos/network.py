"""The soak's network: the devnet's layout and launcher (``devnet``) for participants that
each run a CometBFT validator, an ML node and an API node, with every API node's store in a
PostgreSQL database of the soak's private instance, and one validator's home on a small
filesystem of its own. The processes run under the devnet's supervisor, which restarts a
killed one as it was first started.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from bench.chaos.postgres import PrivatePostgres
from chain.query import HEIGHT_HEADER
from devnet.__main__ import api_health, chain_height, mlnode_serving, start_network
from devnet.api_key import grant_allowance, issue_key
from devnet.layout import CHAIN_ID, Devnet, Settings, open_devnet, ports_in_use
from devnet.supervisor import Supervisor
from genesis.cli import DEFAULT_TEMPLATE
from genesis.homes import HOST
from genesis.localnet import PORTS_PER_NODE
from genesis.template import load_template
from inferchain_pb.inference.v1 import query_pb2 as q

MODEL = load_template(DEFAULT_TEMPLATE).models[0]["id"]
READY_TIMEOUT_S = 600
RESTART_PAUSE_MAX_S = 30
ENGINE = "torch"  # every participant's ML node: the default engine, on the CPU
SMALL_FS_NODE = 3  # the validator whose home is on a filesystem of its own
Reply = TypeVar("Reply", bound=Message)


def chaos_params(expiration_blocks: int) -> dict:
    """Genesis params: the devnet's CPU params with a shorter life for a lone half, so that
    an inference whose executor died mid-stream expires (and refunds) within the run; no
    probes owed, as its API nodes send none (below)."""
    return {"inference": {"expiration_blocks": expiration_blocks,
                          "max_draw_age_blocks": 60},
            "validation": {"probe_quota": 0}}


def free_base_port(participants: int) -> int:
    """A base port whose whole devnet block (10 ports per participant) is free now."""
    for base in range(30000, 60000, 1000):
        if not ports_in_use(list(range(base, base + PORTS_PER_NODE * participants + 10))):
            return base
    raise RuntimeError("no free block of loopback ports")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class SmallFilesystem:
    """A tmpfs of ``size_mb`` mounted over one folder; filling it makes every write there
    fail with ENOSPC, as a full disk does, without touching the machine's own disk."""

    path: Path
    size_mb: int
    filler: Path = field(init=False)

    def __post_init__(self) -> None:
        self.filler = self.path / "chaos-filler"

    def mount_over(self) -> None:
        """Moves the folder's files onto a fresh tmpfs mounted at the same path."""
        saved = self.path.with_name(self.path.name + ".disk")
        self.path.rename(saved)
        self.path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs",
                        str(self.path)], check=True)
        shutil.copytree(saved, self.path, dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(saved)

    def fill(self) -> int:
        """Writes until the filesystem refuses; the bytes written. Unbuffered, so the refusal
        comes from a write here, not from a flush at close."""
        written = 0
        descriptor = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for chunk in (b"\0" * (1 << 20), b"\0" * (1 << 12), b"\0"):
                try:
                    while True:
                        written += os.write(descriptor, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(descriptor)
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self, keep_logs_in: Path) -> None:
        """Unmounts the tmpfs, and everything on it with it, but its ``*.log`` files (a
        CometBFT that did not come back after the disk was freed says why only there), which
        are copied to ``keep_logs_in`` as ``<folder>-<name>``."""
        for log_file in self.path.rglob("*.log"):
            with contextlib.suppress(OSError):
                shutil.copyfile(log_file, keep_logs_in / f"{self.path.name}-{log_file.name}")
        subprocess.run(["umount", "-l", str(self.path)], check=False)


class ChaosNetwork:
    """The laid-out and running network, and the handles the fault schedule needs."""

    def __init__(self, root: Path, participants: int, first_token_timeout_s: float,
                 expiration_blocks: int, small_fs_mb: int, say, base_port: int = 0) -> None:
        self.root = root
        self.say = say
        self.participants = participants
        self.first_token_timeout_s = first_token_timeout_s
        self.postgres = PrivatePostgres(Path(tempfile.mkdtemp(prefix="chaos-pg-")),
                                        free_port())
        self.small_fs: SmallFilesystem | None = None
        self.small_fs_refusal = ""
        self.supervisor = Supervisor(say)
        self.api_keys: list[str] = []
        self.exited: list[str] = []
        self.addresses: list[str] = []
        self._started = False
        self.postgres.init().start()
        databases = self.postgres.create_databases(
            [f"participant{i}" for i in range(participants)])
        self.settings = Settings(participants, "cometbft",
                                 base_port or free_base_port(participants))
        # No probes: the audit accounts for every request of the load's developer, and a probe
        # whose executor a fault kills leaves a miss no request of the load explains.
        node_config = [{"database": url, "first_token_timeout_s": first_token_timeout_s,
                        "probes_per_epoch": 0} for url in databases]
        self.devnet: Devnet = open_devnet(root, self.settings, True,
                                          params=chaos_params(expiration_blocks),
                                          node_config=node_config)[0]
        if os.geteuid() == 0:
            self.small_fs = SmallFilesystem(self.devnet.chain_home(SMALL_FS_NODE), small_fs_mb)
            self.small_fs.mount_over()
        else:
            self.small_fs_refusal = "mounting a tmpfs needs root; the full-disk fault is skipped"

    def start(self) -> None:
        self._started = True
        self.addresses = start_network(self.devnet, self.supervisor,
                                       [ENGINE] * self.participants)
        developer = self.devnet.developer
        for i, address in enumerate(self.addresses):
            self.api_keys.append(issue_key(self.api_url(i), developer["private_key_hex"],
                                           address, CHAIN_ID))
            grant_allowance(self.chain_grpc(i), CHAIN_ID, developer, address)

    def close(self) -> None:
        if self._started:
            self.supervisor.stop_all()
        if self.small_fs is not None:
            self.small_fs.unmount(self.devnet.logs)
        self.postgres.stop()
        shutil.rmtree(self.postgres.root, ignore_errors=True)

    # Where things are.

    def api_url(self, i: int) -> str:
        return f"http://{HOST}:{self.settings.api_port(i)}"

    def chain_grpc(self, i: int) -> str:
        return self.settings.chain_grpc(i)

    def comet_rpc(self, i: int) -> str:
        return self.settings.chain_ports(i).rpc_url

    def database_url(self, i: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.postgres.port}/participant{i}"

    @property
    def developer(self) -> dict:
        return self.devnet.developer

    def participant_key(self, i: int) -> str:
        return self.devnet.keys["participants"][i]["private_key_hex"]

    # Faults.

    @staticmethod
    def service_name(kind: str, i: int) -> str:
        return {"chain": f"chain node val{i}", "ml": f"ML node {i} ({ENGINE})",
                "api": f"API node {i}"}[kind]

    def signal(self, kind: str, i: int, sig: signal.Signals) -> None:
        """Sends ``sig`` to the process's whole group: a chain node with its CometBFT, an ML
        node with its worker threads."""
        process = self.supervisor.service(self.service_name(kind, i)).process
        if process.poll() is None:
            os.killpg(process.pid, sig)
            if sig == signal.SIGKILL:
                process.wait(timeout=30)

    def running(self, kind: str, i: int) -> bool:
        return self.supervisor.service(self.service_name(kind, i)).process.poll() is None

    def restart(self, kind: str, i: int) -> None:
        self.supervisor.restart(self.service_name(kind, i))

    def ready(self, kind: str, i: int) -> bool:
        """Up and, for a chain node, caught up with the highest of the others."""
        if not self.running(kind, i):
            return False
        if kind == "ml":
            return mlnode_serving(f"{HOST}:{self.settings.mlnode_port(i)}")
        if kind == "api":
            return api_health(self.api_url(i)) is not None
        heights = [chain_height(self.chain_grpc(n)) for n in range(self.participants)]
        return heights[i] >= max(heights) - 1

    def wait_ready(self, kind: str, i: int, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until the process is ready again. One that exits meanwhile (a chain node
        whose CometBFT died) is restarted, as an operator's supervisor restarts a process that
        exits with an error, and named in ``exited``."""
        started = time.monotonic()
        pause = 1.0
        while not self.ready(kind, i):
            service = self.supervisor.service(self.service_name(kind, i))
            if service.process.poll() is not None:
                self.exited.append(f"{service.name} exited with code "
                                   f"{service.process.returncode}")
                self.say(f"{service.name} exited with code {service.process.returncode} "
                         f"while it was awaited; restarting it in {pause:g}s "
                         f"(log {service.log})")
                time.sleep(pause)  # a supervisor backs off a process that keeps exiting
                pause = min(2 * pause, RESTART_PAUSE_MAX_S)
                self.restart(kind, i)
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{self.service_name(kind, i)} not ready after {timeout:g}s; "
                                   f"log {self.supervisor.service(self.service_name(kind, i)).log}")
            time.sleep(0.3)
        return time.monotonic() - started

    def height(self) -> int:
        """The highest height any chain node reports."""
        return max(chain_height(self.chain_grpc(n)) for n in range(self.participants))

    def query(self, name: str, request: Message, reply_type: type[Reply],
              height: int = 0) -> Reply:
        """inference.v1.Query/``name`` on the first chain node that answers, at ``height``
        (0: the node's latest; a node that has not committed it yet is passed over)."""
        error: grpc.RpcError | None = None
        retried = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
        if height:
            retried.add(grpc.StatusCode.INVALID_ARGUMENT)
        metadata = ((HEIGHT_HEADER, str(height)),) if height else None
        for node in range(self.participants):
            with grpc.insecure_channel(self.chain_grpc(node)) as channel:
                call = channel.unary_unary(f"/inference.v1.Query/{name}",
                                           request_serializer=lambda m: m.SerializeToString(),
                                           response_deserializer=reply_type.FromString)
                try:
                    return call(request, timeout=10, metadata=metadata)
                except grpc.RpcError as exc:
                    if exc.code() not in retried:
                        raise
                    error = exc
        raise RuntimeError(f"no chain node answered {name}: {error}")

    def params(self, module: str) -> dict:
        """A module's params as the chain stores them."""
        return json.loads(self.query("Params", q.QueryParamsRequest(module=module),
                                     q.QueryParamsResponse).params_json)
