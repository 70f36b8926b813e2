"""A private PostgreSQL instance for the soak: a cluster of its own under a temporary
directory, on a loopback port, so that restarting it (as a crash would) touches no one
else's databases, least of all the machine's own cluster.

It runs Debian's server binaries (``/usr/lib/postgresql/<version>/bin``). PostgreSQL refuses
to run as root, so under root the cluster belongs to the ``postgres`` system user and each
server command runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

PG_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"


def server_binaries() -> Path:
    """The newest installed server's bin folder; a clear error when there is none."""
    found = sorted((p / "bin" for p in PG_ROOT.glob("*") if (p / "bin" / "initdb").exists()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not found:
        raise FileNotFoundError(f"no PostgreSQL server under {PG_ROOT}: install the "
                                "postgresql package (make install does)")
    return found[-1]


class PrivatePostgres:
    """``initdb`` into ``root``, then ``pg_ctl`` to start, crash-restart and stop it."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self.bin = server_binaries()
        self._as_server_user = os.geteuid() == 0

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_server_user:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, cwd="/")

    def init(self) -> PrivatePostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_server_user:
            account = pwd.getpwnam(SERVER_USER)
            shutil.chown(self.root, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        # The socket goes in the cluster's own folder, the server listens on loopback only.
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c max_connections=200", "start")

    def crash_restart(self) -> None:
        """Stops the server in immediate mode (no checkpoint: recovery replays the WAL, as
        after a power cut) and starts it again; every client connection breaks."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.start()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_databases(self, names: list[str]) -> list[str]:
        """Fresh databases, as SQLAlchemy URLs an API node's ``database`` setting takes."""
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            for name in names:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return [f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}" for name in names]
