"""`python -m devnet` as a user runs it: ready once ROOT/env appears, announces the chain's
minimum gas price, serves a signed chat completion through the official openai client, runs
every README example that is not marked otherwise, and stops cleanly on SIGTERM."""

import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import psutil  # installed with accelerate
import pytest
from conftest import ROOT, START_TIMEOUT_S
from cosmpy.aerial.client import LedgerClient, NetworkConfig
from cosmpy.aerial.exceptions import BroadcastError
from cosmpy.aerial.wallet import LocalWallet
from inference_actors import genesis_models
from readme_blocks import readme_blocks

from apinode.openai_signing import signed_http_client
from chain.auth.params import AuthParams

PARTICIPANTS = 2
PORTS = 10 * PARTICIPANTS
README_BLOCK_TIMEOUT_S = 600


def free_base_port() -> int:
    """A base whose block of ports is free now; a random start keeps parallel runs apart."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 10)
        try:
            for port in range(base, base + PORTS):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


def read_env(path: Path) -> dict[str, str]:
    """The values `source ROOT/env` would export."""
    exports = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            exports[name] = shlex.split(value)[0]
    return exports


def wait_for_env(path: Path, devnet: subprocess.Popen, output: Path) -> dict[str, str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists():
        if devnet.poll() is not None:
            raise RuntimeError(f"devnet exited with {devnet.returncode}:\n{output.read_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"devnet not ready:\n{output.read_text()}")
        time.sleep(0.5)
    return read_env(path)


def test_every_readme_block_runs_or_says_why_not():
    blocks = readme_blocks()
    for block in blocks:
        if block.runs:
            block.command()  # raises for a language that cannot run
    assert {b.language for b in blocks if b.runs} >= {"python", "sh"}


def cosmpy_ledger(env: dict[str, str], gas_price: float) -> LedgerClient:
    return LedgerClient(NetworkConfig(
        chain_id=env["INFERCHAIN_CHAIN_ID"], url=f"grpc+http://{env['INFERCHAIN_GRPC']}",
        fee_minimum_gas_price=gas_price, fee_denomination="ninfer",
        staking_denomination="ninfer"))


def check_min_gas_price(env: dict[str, str], root: Path, output: Path) -> None:
    """The price the devnet prints and exports is the one in the chain's genesis, and a
    cosmpy client with the usual zero price is refused for it."""
    genesis = json.loads((root / "chain" / "val0" / "config" / "genesis.json").read_text())
    price = AuthParams.from_dict(genesis["app_state"]["auth"]["params"]).min_gas_price
    assert env["INFERCHAIN_MIN_GAS_PRICE"] == f"{price}ninfer"
    assert f"minimum gas price: {price}ninfer" in output.read_text()
    developer = LocalWallet.from_mnemonic(env["INFERCHAIN_DEV_MNEMONIC"], prefix="infer")
    recipient = LocalWallet.generate(prefix="infer").address()
    with pytest.raises(BroadcastError, match="insufficient fee"):
        cosmpy_ledger(env, 0).send_tokens(recipient, 1, "ninfer", developer)


def run_readme_blocks(env: dict[str, str], cwd: Path) -> None:
    """Each README block as a user runs it after `source .devnet/env`, from `cwd`, which
    holds the devnet's .devnet/."""
    for block in readme_blocks():
        if not block.runs:
            continue
        result = subprocess.run(block.command(), cwd=cwd, env={**os.environ, **env},
                                capture_output=True, text=True, timeout=README_BLOCK_TIMEOUT_S)
        assert result.returncode == 0, f"README.md:{block.line}:\n{result.stderr}"
        assert result.stdout.strip(), f"README.md:{block.line} printed nothing"


def test_devnet_serves_a_signed_chat_completion_and_stops_cleanly(tmp_path):
    # ROOT is .devnet in the directory the README's examples run from, as in a checkout.
    root, output = tmp_path / ".devnet", tmp_path / "devnet.out"
    with output.open("w") as out:
        devnet = subprocess.Popen(
            [sys.executable, "-m", "devnet", "--participants", str(PARTICIPANTS),
             "--root", str(root), "--base-port", str(free_base_port())],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    children: list[psutil.Process] = []
    try:
        env = wait_for_env(root / "env", devnet, output)
        children = psutil.Process(devnet.pid).children(recursive=True)
        assert len(children) == 1 + 2 * PARTICIPANTS  # a solo chain node, ML and API nodes
        ask = {"model": genesis_models()[0]["id"], "max_tokens": 12, "temperature": 0,
               "messages": [{"role": "user", "content": "What is the capital of France?"}]}
        # The plain client with the printed API key, as the README shows...
        keyed = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"],
                              max_retries=0)
        assert "Paris" in keyed.chat.completions.create(**ask).choices[0].message.content
        # ...and per-request signatures with the developer key.
        signed = openai.OpenAI(
            base_url=env["OPENAI_BASE_URL"], api_key="unused", max_retries=0,
            http_client=signed_http_client(bytes.fromhex(env["INFERCHAIN_DEV_PRIVATE_KEY"]),
                                           env["INFERCHAIN_TA_ADDRESS"],
                                           env["INFERCHAIN_CHAIN_ID"]))
        assert "Paris" in signed.chat.completions.create(**ask).choices[0].message.content
        assert f"API node {PARTICIPANTS - 1} ready after" in output.read_text()
        check_min_gas_price(env, root, output)
        run_readme_blocks(env, tmp_path)

        devnet.send_signal(signal.SIGTERM)
        assert devnet.wait(timeout=60) == 0, output.read_text()
        assert not [c for c in children if c.is_running()]
        assert not (root / "env").exists()
    finally:
        if devnet.poll() is None:  # a failed assertion: the devnet still stops its processes
            devnet.terminate()
            devnet.wait(timeout=60)
        for child in children:
            if child.is_running():
                child.kill()
