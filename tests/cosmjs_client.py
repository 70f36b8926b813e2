"""Runs tests/cosmjs/client_flow.js, cosmjs's round trip over CometBFT RPC, and returns what it
saw (see that script for the fields)."""

import json
import subprocess

import pytest
from chain_nodes import ROOT

COSMJS = ROOT / "tests" / "cosmjs"


def client_flow(rpc: str, sender_key: str, recipient: str, amount: int) -> dict:
    """Fails, never skips, when cosmjs is not installed: CI installs it (`make cosmjs`)."""
    if not (COSMJS / "node_modules" / "@cosmjs" / "stargate").is_dir():
        pytest.fail("cosmjs is not installed in tests/cosmjs: run `make cosmjs` (npm ci)")
    request = {"rpc": rpc, "sender_key": sender_key, "recipient": recipient, "amount": amount}
    run = subprocess.run(["node", "client_flow.js", json.dumps(request)], cwd=COSMJS,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)
