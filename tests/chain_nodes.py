"""Real chain node processes for tests: homes laid out by genesis/, nodes by `python -m chain`."""

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from cosmpy.protos.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from cosmpy.protos.cosmos.base.tendermint.v1beta1.query_pb2_grpc import ServiceStub

from genesis.account_keys import AccountKey, generate_account_keys
from genesis.template import Template, parse_template

ROOT = Path(__file__).resolve().parent.parent
CHAIN_ID = "inferchain-test"
FUNDS = 1_000_000_000_000


def template(keys: list[AccountKey], validators: int = 1, models: list[dict] | None = None
             ) -> Template:
    return parse_template({
        "chain_id": CHAIN_ID,
        "accounts": [{"address": k.address, "coins": f"{FUNDS}ninfer"} for k in keys],
        "validators": [{"name": f"val{i}", "power": 10} for i in range(validators)],
        "models": models or [],
    })


def funded_keys(count: int) -> list[AccountKey]:
    return generate_account_keys(count)


def beacon_tx_hash(rpc_url: str, height: int) -> str:
    """The hash CometBFT's indexer gives the first tx of block ``height``: its proposer's
    beacon proof (docs/design.md §2.7), which every block carries before its Cosmos txs."""
    with urllib.request.urlopen(f"{rpc_url}/block?height={height}", timeout=5) as reply:
        first = json.loads(reply.read())["result"]["block"]["data"]["txs"][0]
    return hashlib.sha256(base64.b64decode(first)).hexdigest().upper()


class ChainNode:
    """One `python -m chain node start --home HOME` process and its gRPC endpoint."""

    def __init__(self, home: Path, grpc_port: int, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.grpc_port = grpc_port
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self._channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        self.blocks = ServiceStub(self._channel)

    def start(self, env: dict[str, str] | None = None) -> "ChainNode":
        log = (self.home / "node.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chain", "node", "start", "--home", str(self.home)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **(env or {})})
        return self

    def height(self) -> int:
        try:
            reply = self.blocks.GetLatestBlock(tm_query.GetLatestBlockRequest(), timeout=2)
        except grpc.RpcError:
            return -1
        return reply.block.header.height

    def app_hash_at_latest(self) -> tuple[int, bytes]:
        reply = self.blocks.GetLatestBlock(tm_query.GetLatestBlockRequest(), timeout=2)
        return reply.block.header.height, reply.block.header.app_hash

    def wait_height(self, target: int, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"node {self.home.name} exited ({self.process.returncode}):\n"
                                   f"{self.log_tail()}")
            height = self.height()
            if height >= target:
                return height
            time.sleep(0.2)
        raise TimeoutError(f"node {self.home.name} did not reach height {target}:\n"
                           f"{self.log_tail()}")

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing gets to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        path = self.home / "node.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    def close(self) -> None:
        self.stop()
        self._channel.close()
