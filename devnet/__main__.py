"""Runs a whole local network: the chain, and per participant an ML node and an API node.

The first run lays out ROOT (genesis with a funded developer account and funded participant
accounts, chain and API node homes); a later run resumes it (same keys, the chain continues)
unless --fresh wipes it. Once every API node answers /health, ROOT/env holds the exports a
client needs. Ctrl-C or SIGTERM stops everything: API nodes first, then ML nodes, then the
chain; if any process exits on its own, the rest are stopped and the tail of its log shown.
"""

import argparse
import json
import os
import signal
import sys
import urllib.request
from pathlib import Path
from types import FrameType

import grpc
from cosmpy.protos.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from cosmpy.protos.cosmos.base.tendermint.v1beta1.query_pb2_grpc import ServiceStub

from devnet.api_key import grant_allowance, issue_key
from devnet.gas_price import min_gas_price
from devnet.layout import (
    CHAIN_ID,
    CONSENSUS,
    Devnet,
    DevnetError,
    Settings,
    check_resumable,
    open_devnet,
    ports_in_use,
    resolve_settings,
    write_env,
)
from devnet.supervisor import ProcessExited, Supervisor
from genesis.comet_config import find_cometbft
from genesis.homes import HOST
from inferchain_pb.mlnode.v1 import mlnode_pb2 as ml_pb
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc

MLNODE_MAX_BATCH = 4
# Measured on 2 cores with 3 ML nodes: one thread per ML node made one request 1.6-4x and
# three concurrent requests 4-6x faster than torch's default of a thread per core, which
# oversubscribes the cores. An OMP_NUM_THREADS already set in the environment wins.
MLNODE_ENV = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
# The engines an ML node can run, each with the python whose environment has it: vLLM
# lives in its own environment (`make vllm`), its torch pin differing from the project's.
ROOT_DIR = Path(__file__).resolve().parent.parent
ENGINE_PYTHON = {"torch": Path(sys.executable), "vllm": ROOT_DIR / ".venv-vllm" / "bin" / "python"}
CHAIN_START_S = 120
MLNODE_START_S = 600  # the first start on a new machine converts the model's GGUF
APINODE_START_S = 120


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop the network cleanly."""


def say(line: str) -> None:
    print(f"devnet: {line}", flush=True)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def chain_height(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = ServiceStub(channel).GetLatestBlock(tm_query.GetLatestBlockRequest(),
                                                        timeout=2)
        except grpc.RpcError:
            return -1
    return reply.block.header.height


def mlnode_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            return ml_grpc.MLNodeStub(channel).Health(ml_pb.HealthRequest(), timeout=2).serving
        except grpc.RpcError:
            return False


def api_health(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return json.loads(reply.read())
    except OSError:
        return None


def start_network(devnet: Devnet, supervisor: Supervisor, engines: list[str]) -> list[str]:
    """Starts chain, ML and API nodes (participant i's ML node on ``engines[i]``), each tier
    once the one it needs is ready; returns the participants' account addresses as their API
    nodes report them."""
    settings = devnet.settings
    for node in range(settings.chain_nodes):
        supervisor.start("chain", f"chain node val{node}",
                         ["-m", "chain", "node", "start", "--home", str(devnet.chain_home(node))],
                         devnet.logs / f"chain-val{node}.log")
    for node in range(settings.chain_nodes):
        grpc_address = f"{HOST}:{settings.chain_ports(node).grpc}"
        supervisor.wait_until(lambda a=grpc_address: chain_height(a) >= 1,
                              f"chain node val{node}", CHAIN_START_S)

    # ML node 0 alone first: on a new machine it converts the model into the shared cache,
    # which concurrent first starts would each do, and replace under one another.
    for batch in ([0], range(1, settings.participants)):
        for i in batch:
            supervisor.start("ml", f"ML node {i} ({engines[i]})",
                             ["-m", "mlnode", "serve", "--engine", engines[i],
                              "--port", str(settings.mlnode_port(i)),
                              "--metrics-port", str(settings.metrics_port(i, "mlnode")),
                              "--max-batch", str(MLNODE_MAX_BATCH)],
                             devnet.logs / f"mlnode{i}.log", env=MLNODE_ENV,
                             python=ENGINE_PYTHON[engines[i]])
        for i in batch:
            address = f"{HOST}:{settings.mlnode_port(i)}"
            supervisor.wait_until(lambda a=address: mlnode_serving(a), f"ML node {i}",
                                  MLNODE_START_S)

    for i in range(settings.participants):
        supervisor.start("api", f"API node {i}",
                         ["-m", "apinode", "serve", "--home", str(devnet.participant_home(i))],
                         devnet.logs / f"apinode{i}.log")
    addresses = []
    for i in range(settings.participants):
        url = f"http://{HOST}:{settings.api_port(i)}"
        supervisor.wait_until(lambda u=url: api_health(u) is not None, f"API node {i}",
                              APINODE_START_S)
        addresses.append(api_health(url)["address"])

    explorer = f"http://{HOST}:{settings.explorer_port}"
    supervisor.start("explorer", "explorer",
                     ["-m", "explorer", "--chain-grpc", settings.chain_grpc(0),
                      "--listen", f"{HOST}:{settings.explorer_port}",
                      "--mlnode", f"{HOST}:{settings.mlnode_port(0)}"],
                     devnet.logs / "explorer.log")
    # Ready once it has followed the chain's head (its /health is its status).
    supervisor.wait_until(lambda: (api_health(explorer) or {}).get("up", False), "explorer",
                          APINODE_START_S)
    return addresses


def announce(devnet: Devnet, addresses: list[str]) -> None:
    """Writes ROOT/env and prints where to point a client."""
    settings = devnet.settings
    base_url = f"http://{HOST}:{settings.api_port(0)}/v1"
    developer = devnet.developer
    api_key = devnet.keys.get("api_key")
    if api_key is None:
        api_key = issue_key(f"http://{HOST}:{settings.api_port(0)}",
                            developer["private_key_hex"], addresses[0], CHAIN_ID)
        devnet.remember("api_key", api_key)
    grant_allowance(settings.chain_grpc(0), CHAIN_ID, developer, addresses[0])
    gas_price = min_gas_price(settings.chain_grpc(0))
    write_env(devnet.env_file, {
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": api_key,
        "INFERCHAIN_GRPC": settings.chain_grpc(0),
        **({"INFERCHAIN_COMET_RPC": settings.chain_ports(0).rpc_url}
           if settings.consensus == "cometbft" else {}),
        "INFERCHAIN_CHAIN_ID": CHAIN_ID,
        "INFERCHAIN_MIN_GAS_PRICE": gas_price,
        "INFERCHAIN_DEV_MNEMONIC": developer["mnemonic"],
        "INFERCHAIN_DEV_ADDRESS": developer["address"],
        "INFERCHAIN_DEV_PRIVATE_KEY": developer["private_key_hex"],
        "INFERCHAIN_TA_ADDRESS": addresses[0],
        "INFERCHAIN_EXPLORER": f"http://{HOST}:{settings.explorer_port}",
        **{f"INFERCHAIN_METRICS_{p.upper()}": url
           for p, url in settings.metrics_urls(0).items()},
    })
    for i, address in enumerate(addresses):
        say(f"participant {i}: API http://{HOST}:{settings.api_port(i)}, "
            f"ML node {HOST}:{settings.mlnode_port(i)}, chain {settings.chain_grpc(i)}, "
            f"account {address}")
        say(f"participant {i} metrics: " + ", ".join(
            f"{p} {url}" for p, url in settings.metrics_urls(i).items()))
    say(f"ready: {settings.participants} participants, {settings.consensus} consensus, "
        f"chain {CHAIN_ID}, Cosmos gRPC {settings.chain_grpc(0)}")
    say(f"minimum gas price: {gas_price} (a tx's fee must be at least its gas limit times "
        "this; cosmpy's NetworkConfig takes it as fee_minimum_gas_price)")
    if settings.consensus == "cometbft":
        say(f"CometBFT RPC (cosmjs, Keplr-style wallets): {settings.chain_ports(0).rpc_url}")
    say(f"OpenAI base URL: {base_url}")
    say(f"explorer: http://{HOST}:{settings.explorer_port}")
    say(f"developer API key: {api_key} (paid from the developer's on-chain allowance for TA "
        f"{addresses[0]}; signed requests work too)")
    say(f"developer account: {developer['address']} (key and mnemonic in "
        f"{devnet.root / 'keys.json'})")
    say(f"exports in {devnet.env_file} (`source {devnet.env_file}`); Ctrl-C stops everything")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="devnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=None,
                        help="participants, each an ML node and an API node (default 3)")
    parser.add_argument("--consensus", choices=CONSENSUS, default=None,
                        help="one solo chain node, or a CometBFT validator per participant "
                             "(needs `make cometbft`); default solo")
    parser.add_argument("--base-port", type=int, default=None,
                        help="participant i uses ports BASE+10*i .. BASE+10*i+9 (default 8100)")
    parser.add_argument("--root", type=Path, default=Path(".devnet"))
    parser.add_argument("--engine", default="torch",
                        help="the ML nodes' engine: torch or vllm (needs `make vllm`), or one "
                             "per participant, comma-separated (e.g. vllm,torch,torch)")
    parser.add_argument("--fresh", action="store_true",
                        help="wipe ROOT and lay out a new network (new chain, new keys)")
    args = parser.parse_args(argv)
    if args.participants is not None and args.participants < 1:
        parser.error("--participants must be at least 1")
    return args


def participant_engines(spec: str, participants: int) -> list[str]:
    """Each participant's engine from --engine: one for all, or one per participant."""
    engines = spec.split(",")
    unknown = sorted(set(engines) - set(ENGINE_PYTHON))
    if unknown:
        raise DevnetError(f"--engine {spec}: {', '.join(unknown)} is not an engine; choose "
                          f"from {', '.join(ENGINE_PYTHON)}")
    if len(engines) not in (1, participants):
        raise DevnetError(f"--engine {spec} names {len(engines)} engines for {participants} "
                          "participants: give one for all, or one per participant")
    missing = sorted({e for e in engines if not ENGINE_PYTHON[e].exists()})
    if missing:
        raise DevnetError(f"--engine {spec}: {ENGINE_PYTHON[missing[0]]} is missing; install "
                          "the vLLM environment with `make vllm`")
    return engines * participants if len(engines) == 1 else engines


def prepare(args: argparse.Namespace) -> Settings:
    """Checks everything that can be checked before a process starts."""
    root = args.root
    check_resumable(root, args.fresh)
    settings = resolve_settings(root, {"participants": args.participants,
                                       "consensus": args.consensus,
                                       "base_port": args.base_port}, args.fresh)
    if settings.consensus == "cometbft" and find_cometbft() is None:
        raise DevnetError("--consensus cometbft needs the cometbft binary, which is neither on "
                          "PATH nor in ~/go/bin: install it with `make cometbft`")
    try:
        busy = ports_in_use(settings.listening_ports())
    except ValueError as err:
        raise DevnetError(f"--base-port {settings.base_port}: {err}") from None
    if busy:
        raise DevnetError(f"ports {busy} are in use: is another devnet (or what is left of "
                          "one) running? Stop it, or pick free ports with --base-port (for an "
                          "existing ROOT, with --fresh)")
    return settings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.root = args.root.resolve()
    try:
        settings = prepare(args)
        engines = participant_engines(args.engine, settings.participants)
        devnet, resumed = open_devnet(args.root, settings, args.fresh)
    except DevnetError as err:
        print(f"devnet: {err}", file=sys.stderr)
        return 2
    say(f"{'resuming' if resumed else 'laid out'} {devnet.root}: {settings.participants} "
        f"participants, {settings.consensus} consensus, ports from {settings.base_port}, "
        f"ML nodes on {', '.join(engines)}")
    devnet.env_file.unlink(missing_ok=True)
    supervisor = Supervisor(say)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    try:
        announce(devnet, start_network(devnet, supervisor, engines))
        supervisor.watch()
    except Stop:
        say("stopping: API nodes, then ML nodes, then the chain")
    except ProcessExited as err:
        print(f"devnet: {err}; the last lines of {err.service.log}:\n{err.service.tail()}\n"
              "devnet: stopping the rest", file=sys.stderr, flush=True)
        code = 1
    except TimeoutError as err:
        print(f"devnet: {err}; see {devnet.logs}; stopping", file=sys.stderr, flush=True)
        code = 1
    finally:
        # The ordered stop must finish: a second Ctrl-C must not cut it short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        devnet.env_file.unlink(missing_ok=True)
        supervisor.stop_all()
    say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
