"""Command line: `python -m genesis {build,localnet,solo,keys,hash}`.

    python -m genesis keys --count 2 [--json]
    python -m genesis build --template T.toml --out genesis.json [--keys-dir DIR]
    python -m genesis solo --out DIR [--template T.toml] [--grpc-port 9090]
                           [--block-interval-ms 500]
    python -m genesis localnet --validators 4 --out DIR [--template T.toml] [--base-port 26600]
                               [--timeout-commit 500ms]
    python -m genesis hash genesis.json   # the hash joining nodes check (`inferchain init`)

--template defaults to genesis/default_template.toml. Errors go to stderr with exit status 2.
"""

import argparse
import json
import sys
from pathlib import Path

from genesis.account_keys import generate_account_keys
from genesis.builder import build_genesis, write_genesis
from genesis.comet_keys import Ed25519Key, write_priv_validator_key, write_priv_validator_state
from genesis.homes import NodeInfo, require_empty_dir
from genesis.localnet import DEFAULT_BASE_PORT, layout_localnet
from genesis.network_genesis import genesis_hash, read_genesis
from genesis.solo import SOLO_PORTS, layout_solo
from genesis.template import Template, load_template

DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "default_template.toml"


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileExistsError) as err:  # TemplateError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genesis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    keys = commands.add_parser("keys", help="print fresh secp256k1 account keys and addresses")
    keys.add_argument("--count", type=int, default=1)
    keys.add_argument("--json", action="store_true",
                      help="a JSON list instead of 'HEX ADDRESS' lines")
    keys.set_defaults(run=_keys)

    build = commands.add_parser("build", help="write one genesis.json from a template")
    _template_arg(build)
    build.add_argument("--out", type=Path, required=True, help="the genesis.json to write")
    build.add_argument("--keys-dir", type=Path,
                       help="generate keys for validators without pub_key; each goes to "
                            "DIR/<name>/config/priv_validator_key.json (+ data/ state)")
    build.set_defaults(run=_build)

    solo = commands.add_parser("solo", help="lay out one solo-mode home (no CometBFT)")
    _template_arg(solo)
    solo.add_argument("--out", type=Path, required=True, help="the home directory to create")
    solo.add_argument("--grpc-port", type=int, default=SOLO_PORTS.grpc)
    solo.add_argument("--block-interval-ms", type=int, default=500)
    solo.set_defaults(run=_solo)

    localnet = commands.add_parser("localnet", help="lay out N CometBFT validator homes")
    _template_arg(localnet)
    localnet.add_argument("--out", type=Path, required=True, help="homes go to DIR/val0..")
    localnet.add_argument("--validators", type=int,
                          help="replace the template's validators with N generated ones")
    localnet.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    localnet.add_argument("--timeout-commit", default="500ms", help="a Go duration")
    localnet.set_defaults(run=_localnet)

    hashed = commands.add_parser("hash", help="print a genesis.json's hash, which a joining "
                                 "node checks (`inferchain init --genesis-hash`)")
    hashed.add_argument("genesis", type=Path)
    hashed.set_defaults(run=lambda args: print(genesis_hash(read_genesis(args.genesis))))
    return parser


def _template_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE,
                        help="genesis template TOML (default: genesis/default_template.toml)")


def _keys(args: argparse.Namespace) -> None:
    keys = generate_account_keys(args.count)
    if args.json:
        print(json.dumps([{"private_key": k.private_key_hex, "address": k.address} for k in keys],
                         indent=2))
    else:
        for key in keys:
            print(key.private_key_hex, key.address)


def _build(args: argparse.Namespace) -> None:
    template: Template = load_template(args.template)
    missing = [v.name for v in template.validators if v.pub_key is None]
    if missing and args.keys_dir is None:
        raise ValueError(f"validators {missing} have no pub_key; pass --keys-dir DIR to generate "
                         "their keys, or use `solo`/`localnet`")
    generated = {name: Ed25519Key.generate() for name in missing}
    if generated:
        keys_dir = require_empty_dir(args.keys_dir)
        for name, key in generated.items():
            write_priv_validator_key(keys_dir / name, key)
            write_priv_validator_state(keys_dir / name)
    genesis = build_genesis(template, {name: key.public_key for name, key in generated.items()})
    print(write_genesis(genesis, args.out))


def _solo(args: argparse.Namespace) -> None:
    node = layout_solo(load_template(args.template), args.out, grpc_port=args.grpc_port,
                       block_interval_ms=args.block_interval_ms)
    _print_nodes([node])


def _localnet(args: argparse.Namespace) -> None:
    nodes = layout_localnet(load_template(args.template), args.out, validators=args.validators,
                            base_port=args.base_port, timeout_commit=args.timeout_commit)
    _print_nodes(nodes)


def _print_nodes(nodes: list[NodeInfo]) -> None:
    print("name\tmode\tp2p\trpc\tabci\tgrpc\tnode_id\tvalidator_address\thome")
    for n in nodes:
        print(f"{n.name}\t{n.mode}\t{n.ports.p2p}\t{n.ports.rpc}\t{n.ports.abci}\t{n.ports.grpc}\t"
              f"{n.node_id or '-'}\t{n.validator_address}\t{n.home}")
