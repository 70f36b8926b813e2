"""Lays out `.devnet/` on first run, starts the chain node and the ML node, and stops both
on Ctrl-C. A developer account is funded at genesis; its key is kept in `.devnet/keys.json`.
"""

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from genesis.account_keys import generate_account_keys
from genesis.cli import DEFAULT_TEMPLATE
from genesis.solo import layout_solo
from genesis.template import load_template, parse_template

CHAIN_ID = "inferchain-local"
DEVELOPER_FUNDS = "1000000000000000ninfer"


def lay_out(root: Path, grpc_port: int) -> dict:
    keys_file = root / "keys.json"
    if keys_file.exists():
        return json.loads(keys_file.read_text())
    developer = generate_account_keys(1)[0]
    template = parse_template({
        "chain_id": CHAIN_ID,
        "accounts": [{"address": developer.address, "coins": DEVELOPER_FUNDS}],
        "validators": [{"name": "solo", "power": 10}],
        "models": [dict(m) for m in load_template(DEFAULT_TEMPLATE).models],
    })
    layout_solo(template, root / "chain", grpc_port=grpc_port)
    keys = {"developer": {"address": developer.address,
                          "private_key_hex": developer.private_key_hex}}
    keys_file.write_text(json.dumps(keys, indent=2) + "\n")
    keys_file.chmod(0o600)
    return keys


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the devnet the way Ctrl-C does."""
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(prog="devnet", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path(".devnet"))
    parser.add_argument("--grpc-port", type=int, default=9090)
    parser.add_argument("--mlnode-port", type=int, default=50051)
    args = parser.parse_args()
    args.root.mkdir(exist_ok=True)
    keys = lay_out(args.root, args.grpc_port)
    processes = {
        "chain node": subprocess.Popen([sys.executable, "-m", "chain", "node", "start",
                                        "--home", str(args.root / "chain")]),
        "ML node": subprocess.Popen([sys.executable, "-m", "mlnode", "serve", "--engine",
                                     "torch", "--port", str(args.mlnode_port)]),
    }
    print(f"devnet: chain {CHAIN_ID}, Cosmos gRPC on 127.0.0.1:{args.grpc_port}, "
          f"ML node gRPC on 127.0.0.1:{args.mlnode_port}\n"
          f"devnet: developer account {keys['developer']['address']} "
          f"(key in {args.root / 'keys.json'}); Ctrl-C stops everything", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        failed = [name for name, p in processes.items() if p.poll() is not None]
        print(f"devnet: {', '.join(failed)} exited; stopping the rest", file=sys.stderr)
    except KeyboardInterrupt:
        print("devnet: stopping", flush=True)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
