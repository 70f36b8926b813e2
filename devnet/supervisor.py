"""Starts the devnet's processes, watches them, and stops them in order.

Each process runs in its own session, so a Ctrl-C in the terminal reaches only the devnet,
which then stops the tiers in reverse start order: API nodes first (their outboxes drain to
chain nodes that are still up), then ML nodes, then chain nodes (each stops its CometBFT).
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 30
POLL_S = 0.5
PROGRESS_S = 10
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class Service:
    """One supervised process and the file its output goes to."""

    name: str
    process: subprocess.Popen
    log: Path
    argv: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class ProcessExited(Exception):
    """A supervised process ended on its own; the network is no longer whole."""

    def __init__(self, service: Service) -> None:
        self.service = service
        code = service.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        super().__init__(f"{service.name} {how}")


class Supervisor:
    """The processes of the network, grouped in tiers in the order they were started."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._tiers: dict[str, list[Service]] = {}
        self._say = say

    def start(self, tier: str, name: str, argv: list[str], log: Path,
              env: dict[str, str] | None = None, python: Path | None = None) -> Service:
        """Runs ``python`` (this one by default) with ``argv``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            out.write(f"--- devnet started {name} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            out.flush()
            process = subprocess.Popen(
                [str(python or sys.executable), *argv], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        service = Service(name, process, log, tuple(argv), tuple((env or {}).items()))
        self._tiers.setdefault(tier, []).append(service)
        self._say(f"started {name} (pid {process.pid}), log {log}")
        return service

    def service(self, name: str) -> Service:
        """The process now running (or last run) under ``name``."""
        return next(s for services in self._tiers.values() for s in services if s.name == name)

    def restart(self, name: str) -> Service:
        """Starts ``name`` again as it was first started, once its process has ended (a crash
        or a kill): the new process takes its place in its tier."""
        old = self.service(name)
        if old.process.poll() is None:
            raise RuntimeError(f"{name} is still running (pid {old.process.pid})")
        tier = next(t for t, services in self._tiers.items() if old in services)
        self._tiers[tier].remove(old)
        return self.start(tier, name, list(old.argv), old.log, dict(old.env))

    def check(self) -> None:
        """Raises ProcessExited for the first process that is no longer running."""
        for services in self._tiers.values():
            for service in services:
                if service.process.poll() is not None:
                    raise ProcessExited(service)

    def wait_until(self, ready: Callable[[], bool], what: str, timeout_s: float) -> None:
        """Polls `ready` while watching every process, so a crash is reported at once
        instead of as a timeout. Every PROGRESS_S it says what it is waiting on and for how
        long: a first start converts the model for a minute or more, which must not look
        like a hang."""
        started = time.monotonic()
        next_report = started + PROGRESS_S
        while True:
            self.check()
            if ready():
                self._say(f"{what} ready after {time.monotonic() - started:.0f}s")
                return
            now = time.monotonic()
            waited = now - started
            if waited > timeout_s:
                raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s")
            if now >= next_report:
                logs = [str(s.log) for t in self._tiers.values() for s in t if s.name == what]
                self._say(f"waiting for {what}: {waited:.0f}s so far, giving up after "
                          f"{timeout_s:.0f}s" + (f" (log {logs[0]})" if logs else ""))
                next_report += PROGRESS_S
            time.sleep(POLL_S)

    def watch(self) -> None:
        """Returns only by ProcessExited (or a signal handler's exception)."""
        while True:
            self.check()
            time.sleep(POLL_S)

    def stop_all(self) -> None:
        """SIGTERM tier by tier, newest first; a process that outlives STOP_TIMEOUT_S is
        killed with its whole session, CometBFT included."""
        for tier in reversed(list(self._tiers)):
            services = [s for s in self._tiers[tier] if s.process.poll() is None]
            for service in services:
                service.process.terminate()
            for service in services:
                try:
                    service.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self._say(f"{service.name} did not stop within {STOP_TIMEOUT_S}s; killing it")
                    os.killpg(service.process.pid, signal.SIGKILL)
                    service.process.wait()
