"""`python -m devnet` as a user runs it: ready once ROOT/env appears, announces the chain's
minimum gas price, serves a signed chat completion through the official openai client, serves
each process's metrics, runs every README example that is not marked otherwise, and stops
cleanly on SIGTERM; with CometBFT consensus it exports CometBFT's RPC, through which cosmjs
sends tokens."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import psutil  # installed with accelerate
import pytest
from conftest import ROOT, START_TIMEOUT_S, free_port_block
from cosmjs_client import client_flow
from cosmpy.aerial.client import LedgerClient, NetworkConfig
from cosmpy.aerial.exceptions import BroadcastError
from cosmpy.aerial.wallet import LocalWallet
from inference_actors import genesis_models
from metrics_scrape import Scrape
from readme_blocks import readme_blocks

from apinode.openai_signing import signed_http_client
from chain.auth.params import AuthParams
from genesis.account_keys import generate_account_keys

PARTICIPANTS = 2
PORTS = 10 * PARTICIPANTS
README_BLOCK_TIMEOUT_S = 600


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
    """Each README block as a user runs it after `source .devnet/env` with the virtual
    environment active, from `cwd`, which holds the devnet's .devnet/; HOME is `cwd` too, so
    the client's config and test keyring stay in the test's directory."""
    venv_bin = str(Path(sys.executable).parent)
    user = {**os.environ, **env, "HOME": str(cwd),
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    for block in readme_blocks():
        if not block.runs:
            continue
        result = subprocess.run(block.command(), cwd=cwd, env=user,
                                capture_output=True, text=True, timeout=README_BLOCK_TIMEOUT_S)
        assert result.returncode == 0, f"README.md:{block.line}:\n{result.stderr}"
        assert result.stdout.strip(), f"README.md:{block.line} printed nothing"


def test_devnet_serves_a_signed_chat_completion_and_stops_cleanly(tmp_path):
    # ROOT is .devnet in the directory the README's examples run from, as in a checkout.
    root, output = tmp_path / ".devnet", tmp_path / "devnet.out"
    base_port = free_port_block(PORTS)
    with output.open("w") as out:
        devnet = subprocess.Popen(
            [sys.executable, "-m", "devnet", "--participants", str(PARTICIPANTS),
             "--root", str(root), "--base-port", str(base_port)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    children: list[psutil.Process] = []
    try:
        env = wait_for_env(root / "env", devnet, output)
        children = psutil.Process(devnet.pid).children(recursive=True)
        # A solo chain node, ML and API nodes, and the explorer.
        assert len(children) == 1 + 2 * PARTICIPANTS + 1
        with urllib.request.urlopen(f"{env['INFERCHAIN_EXPLORER']}/api/status") as reply:
            assert json.load(reply)["chain_id"] == env["INFERCHAIN_CHAIN_ID"]
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
        # Participant 0's processes serve their metrics where ROOT/env says, and the banner
        # lists every participant's.
        assert Scrape(env["INFERCHAIN_METRICS_CHAIN"]).value("inferchain_chain_height") > 0
        served = Scrape(env["INFERCHAIN_METRICS_API"]).value(
            "inferchain_api_requests_total", route="/v1/chat/completions", code="200")
        # The node's probe worker asks its own endpoint too, at heights of its choosing: the
        # count holds the two above and the probes answered by the scrape, which the log
        # (read after it) lists with any answered since.
        probes = (root / "logs" / "apinode0.log").read_text().count("answered a probe")
        assert 2 <= served <= 2 + probes
        assert Scrape(env["INFERCHAIN_METRICS_MLNODE"]).value(
            "inferchain_mlnode_generated_tokens_total") >= 0
        assert (f"participant 1 metrics: api http://127.0.0.1:{base_port + 12}/metrics, "
                f"mlnode http://127.0.0.1:{base_port + 13}/metrics\n") in output.read_text()
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


def test_a_cometbft_devnet_exports_its_rpc_and_cosmjs_sends_through_it(tmp_path):
    root, output = tmp_path / "devnet", tmp_path / "devnet.out"
    with output.open("w") as out:
        devnet = subprocess.Popen(
            [sys.executable, "-m", "devnet", "--participants", "1", "--consensus", "cometbft",
             "--root", str(root), "--base-port", str(free_port_block(PORTS))],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        env = wait_for_env(root / "env", devnet, output)
        recipient = generate_account_keys(1)[0].address
        seen = client_flow(env["INFERCHAIN_COMET_RPC"], env["INFERCHAIN_DEV_PRIVATE_KEY"],
                           recipient, 1_000)
        assert seen["chain_id"] == env["INFERCHAIN_CHAIN_ID"]
        assert seen["delivered"]["code"] == 0
        assert seen["balances_after"][recipient] == "1000"
        assert f"CometBFT RPC (cosmjs, Keplr-style wallets): {env['INFERCHAIN_COMET_RPC']}" \
            in output.read_text()
    finally:
        devnet.terminate()
        devnet.wait(timeout=60)
