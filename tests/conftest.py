"""Fixtures that start real processes (an ML node serving the real default model), and the
report of their logs when a test that ran them fails."""

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from failure_logs import excerpts

from inferchain_pb.mlnode.v1 import mlnode_pb2 as pb
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 600  # the first start on a new machine converts the GGUF


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ephemeral_floor() -> int:
    """The lowest port the kernel picks for a socket that binds port 0 or connects out."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


PORT_FLOOR = 20000
# Where this process's next search starts: random at first, so that separate test runs side
# by side seldom meet, then past the last block given, so blocks rotate through the share.
_next_block: int | None = None


def free_port_block(size: int) -> int:
    """The first port of ``size`` consecutive loopback ports that are free right now.

    A block is bound only seconds after it is checked, when its nodes start, so blocks come
    from below the kernel's ephemeral range (a port checked free could otherwise go to any
    process's outgoing or auto-bound socket first: an ML node's vLLM engine opens such
    sockets while loading), from this process's own share of that range (pytest-xdist's
    workers search at the same moments), and each search starts past the last block given,
    so a network still running keeps its unbound ports and a closed one its lingering ones."""
    global _next_block
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    span = (max(ephemeral_floor(), PORT_FLOOR + 1000 * workers) - PORT_FLOOR) // workers
    low = PORT_FLOOR + worker * span
    blocks = range(0, span - size, 10)
    if _next_block is None:
        _next_block = random.randrange(len(blocks))
    for i in range(len(blocks)):
        offset = blocks[(_next_block + i) % len(blocks)]
        try:
            with ExitStack() as stack:
                for port in range(low + offset, low + offset + size):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
        except OSError:
            continue
        _next_block = (_next_block + i) % len(blocks) + -(-size // 10)
        return low + offset
    raise RuntimeError(f"no {size} free consecutive ports in {low}..{low + span}")


def wait_healthy(stub: pb_grpc.MLNodeStub, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ML node exited with {process.returncode}:\n{log.read_text()}")
        try:
            if stub.Health(pb.HealthRequest(), timeout=2).serving:
                return
        except grpc.RpcError:
            time.sleep(0.5)
    raise TimeoutError(f"ML node not healthy after {START_TIMEOUT_S}s:\n{log.read_text()}")


VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


def serve_mlnode(python: Path, engine: str, log: Path) -> Iterator[pb_grpc.MLNodeStub]:
    """A real `python -m mlnode serve` process with the default model, fp32 on CPU."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(python), "-m", "mlnode", "serve", "--engine", engine, "--port", str(port),
             "--max-batch", "8"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ,
                                                                 "PYTHONUNBUFFERED": "1"})
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.MLNodeStub(channel)
    try:
        wait_healthy(stub, process, log)
        yield stub
    finally:
        channel.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def vllm_python() -> Path:
    """The vLLM environment's python (`make vllm`); CI must have it, elsewhere its tests
    skip with the command that installs it."""
    if not VLLM_PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{VLLM_PYTHON} is missing: CI installs it with `make vllm`")
        pytest.skip(f"{VLLM_PYTHON} is missing: `make vllm` installs it")
    return VLLM_PYTHON


@pytest.fixture(scope="session")
def mlnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pb_grpc.MLNodeStub]:
    """The torch engine's ML node."""
    yield from serve_mlnode(Path(sys.executable), "torch",
                            tmp_path_factory.mktemp("mlnode") / "mlnode.log")


@pytest.fixture(scope="module")
def vllm_mlnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pb_grpc.MLNodeStub]:
    """The vLLM engine's ML node, run by the vLLM environment's python; stopped after the
    module that uses it, so its engine and KV cache do not outlive it."""
    yield from serve_mlnode(vllm_python(), "vllm",
                            tmp_path_factory.mktemp("vllm-mlnode") / "mlnode.log")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test that ran processes under its ``tmp_path`` reports their logs' warnings,
    errors and last lines: CI keeps nothing else of them."""
    outcome = yield
    report = outcome.get_result()
    root = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and call.when == "call" and isinstance(root, Path):
        text = excerpts(root)
        if text:
            report.sections.append(("logs of the test's processes", text))
