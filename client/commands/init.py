"""``inferchain init --home DIR --moniker NAME``: the home of a node that joins a running
network, with fresh keys (CometBFT node key, validator key, account key, API node key), the
network's genesis (``--genesis FILE`` or ``--genesis-from RPC_URL``) checked against
``--chain-id`` and ``--genesis-hash``, and every part's config pointing at this node's own
chain node (client/node_home.py has the layout). ``--state-sync-rpc`` makes it start from a
peer's snapshot instead of replaying every block (client/state_sync.py).

Everything is checked and written in a staging directory beside DIR first, which replaces DIR
only once it is complete: a refused input or a failure leaves DIR as it was.
"""

import argparse
import shutil
import tempfile
from pathlib import Path

from client import output, terminal
from client.errors import CliError
from client.keyring import NAME, Keyring, key_from_mnemonic, new_mnemonic
from client.node_home import (
    APINODE_DIR,
    DEFAULT_BASE_PORT,
    MLNODE_CONFIG,
    JoinPorts,
    check_peers,
    layout_joining_node,
)
from client.settings import Settings, add_flags, write_config
from client.state_sync import StateSyncTrust, confirmed_trust
from genesis.homes import HOST
from genesis.network_genesis import check_genesis, fetch_genesis, read_genesis


def add_parser(parts: argparse._SubParsersAction) -> None:
    parser = parts.add_parser("init", help="make the home of a node that joins a running "
                              "network", description=__doc__.splitlines()[0])
    add_flags(parser)
    parser.set_defaults(handler=run)
    parser.add_argument("--moniker", required=True,
                        help="this node's name; also the account key's name in the keyring")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--genesis", type=Path, help="the network's genesis.json")
    source.add_argument("--genesis-from", metavar="RPC_URL",
                        help="a running peer's CometBFT RPC, e.g. http://peer:26657")
    parser.add_argument("--genesis-hash", required=True,
                        help="the genesis hash the network publishes (`python -m genesis hash`)")
    parser.add_argument("--persistent-peers", default="", metavar="ID@HOST:PORT,…")
    parser.add_argument("--seeds", default="", metavar="ID@HOST:PORT,…")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                        help=f"ports BASE..BASE+5: P2P, CometBFT RPC, ABCI, gRPC, API node, "
                             f"ML node (default {DEFAULT_BASE_PORT})")
    parser.add_argument("--listen-host", default="0.0.0.0",
                        help="where P2P and the API node listen (default 0.0.0.0: every "
                             "interface); the other ports stay on 127.0.0.1")
    parser.add_argument("--public-url", default="",
                        help="the API node's URL other participants call (default "
                             "http://127.0.0.1:BASE+4, for a node on one machine only)")
    parser.add_argument("--external-address", default="",
                        help="HOST:PORT peers dial for P2P, when not the listen address")
    parser.add_argument("--state-sync-rpc", default="", metavar="URL,…",
                        help="state sync from a snapshot: CometBFT RPCs of running nodes the "
                             "light client asks; the trusted block is the first one's latest "
                             "less 2, unless --trust-height/--trust-hash name it")
    parser.add_argument("--trust-height", type=int, help="the height of the trusted block "
                        "(with --state-sync-rpc); every server must confirm its hash")
    parser.add_argument("--trust-hash", help="that block's block_id.hash, from a source you "
                        "trust (with --trust-height)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing home, keys included")


def run(args: argparse.Namespace, settings: Settings) -> None:
    home = settings.home
    if not args.chain_id:
        raise CliError("--chain-id is required: the chain the network runs")
    if NAME.fullmatch(args.moniker) is None:
        raise CliError(f"--moniker {args.moniker!r}: 1 to 64 of letters, digits, '.', '_' "
                       f"and '-', starting with a letter or digit (it names the account key)")
    if home.exists() and not args.overwrite and (not home.is_dir() or any(home.iterdir())):
        raise CliError(f"{home} already exists; choose another --home, or pass --overwrite "
                       f"to replace it and its keys")
    try:
        ports = JoinPorts.from_base(args.base_port)
        peers = check_peers(args.persistent_peers, "--persistent-peers")
        seeds = check_peers(args.seeds, "--seeds")
        genesis = (read_genesis(args.genesis) if args.genesis is not None
                   else fetch_genesis(args.genesis_from))
        check_genesis(genesis, args.chain_id, args.genesis_hash)
        state_sync = _state_sync(args)
    except ValueError as exc:  # GenesisRefused is one
        raise CliError(str(exc)) from None
    if not peers and not seeds:
        raise CliError("give --persistent-peers or --seeds: a node with neither finds no "
                       "network to sync from")
    passphrase = (terminal.new_passphrase() if settings.keyring_backend == "file" else None)
    mnemonic = new_mnemonic()
    account = key_from_mnemonic(mnemonic)
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{home.name}.init-", dir=home.parent))
    try:
        joined = layout_joining_node(
            staging, moniker=args.moniker, genesis=genesis, persistent_peers=peers,
            seeds=seeds, ports=ports, listen_host=args.listen_host,
            public_url=args.public_url or f"http://{HOST}:{ports.api}",
            external_address=args.external_address, account_key_hex=account.private_key_hex,
            state_sync=state_sync)
        write_config(staging, {"node": f"{HOST}:{ports.grpc}", "chain-id": args.chain_id,
                               "keyring-backend": settings.keyring_backend})
        key = Keyring(staging, settings.keyring_backend).add(args.moniker, account, passphrase)
        _replace(home, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary = {
        "home": str(home), "chain_id": args.chain_id, "moniker": args.moniker,
        "account": key.address, "node_id": joined.node_id,
        "validator_address": joined.validator_address,
        "consensus_pubkey": joined.consensus_pubkey.hex(),
        "ports": {"p2p": ports.p2p, "rpc": ports.rpc, "abci": ports.abci, "grpc": ports.grpc,
                  "api": ports.api, "mlnode": ports.mlnode},
        "chain_node": f"inferchain node start --home {home}",
        "ml_node": f"inferchain-mlnode serve --config {home / MLNODE_CONFIG}",
        "api_node": f"python -m apinode serve --home {home / APINODE_DIR}",
    }
    if state_sync is not None:
        summary["state_sync"] = {"rpc_servers": list(state_sync.rpc_servers),
                                 "trust_height": state_sync.trust_height,
                                 "trust_hash": state_sync.trust_hash}
    if settings.output == "json":
        output.show({**summary, "mnemonic": mnemonic}, "json")
        return
    output.show(summary, "text")
    print("\n**Important** back up config/priv_validator_key.json, config/node_key.json, "
          "apinode/node.key and this mnemonic of the account key; it is shown only "
          f"once:\n\n{mnemonic}")


def _state_sync(args: argparse.Namespace) -> StateSyncTrust | None:
    if not args.state_sync_rpc:
        if args.trust_height is not None or args.trust_hash is not None:
            raise CliError("--trust-height and --trust-hash go with --state-sync-rpc: the "
                           "servers that must confirm them")
        return None
    return confirmed_trust(args.state_sync_rpc, args.chain_id, args.trust_height,
                           args.trust_hash)


def _replace(home: Path, staging: Path) -> None:
    """Puts the finished staging directory in home's place; an old home goes only now."""
    if home.is_dir() and any(home.iterdir()):
        retired = Path(tempfile.mkdtemp(prefix=f".{home.name}.old-", dir=home.parent))
        home.rename(retired / home.name)
        staging.rename(home)
        shutil.rmtree(retired)
        return
    if home.exists():
        home.rmdir() if home.is_dir() else home.unlink()
    staging.rename(home)
