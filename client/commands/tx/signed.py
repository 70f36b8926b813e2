"""How a signed command runs: key from the keyring, messages built, then simulated, priced,
confirmed, signed and broadcast (client/signing.py); the tx flags every such command takes."""

import argparse
from collections.abc import Callable

from google.protobuf.message import Message

from client import output, terminal
from client.arguments import parse_gas, parse_gas_adjustment
from client.commands.keys import unlock
from client.commands.leaf import command
from client.keyring import Keyring
from client.node import Node
from client.settings import Settings
from client.signing import MODES, Signer, TxOptions

# Builds a command's messages from its arguments for the signer's address; may ask the node.
Build = Callable[[argparse.Namespace, str, Node], list[Message]]


def tx_command(commands: argparse._SubParsersAction, name: str, help: str, build: Build,
               from_flag: bool = True) -> argparse.ArgumentParser:
    """A signed command; ``from_flag`` False when the signer is a positional (bank send)."""
    def run(args: argparse.Namespace, settings: Settings) -> None:
        keyring = Keyring(settings.home, settings.keyring_backend)
        signer_key = keyring.find(args.sender)
        options = TxOptions(gas=parse_gas(args.gas),
                            gas_adjustment=parse_gas_adjustment(args.gas_adjustment),
                            fees=args.fees, gas_prices=args.gas_prices, memo=args.memo,
                            broadcast_mode=args.broadcast_mode, dry_run=args.dry_run)
        with Node(settings.node) as node:
            messages = build(args, signer_key.address, node)
            signer = Signer(node, unlock(keyring, signer_key.name), settings.chain_id)
            plan = signer.plan(messages, options)
            if options.dry_run:
                output.show(plan, settings.output)
                return
            if not args.yes:
                terminal.confirm(f"{', '.join(m.DESCRIPTOR.name for m in messages)} from "
                                 f"{signer.address} on {signer.chain_id}: gas limit "
                                 f"{plan['gas_limit']}, fee {plan['fee']}")
            output.show(signer.send(messages, options, plan), settings.output)

    parser = command(commands, name, help, run)
    if from_flag:
        parser.add_argument("--from", dest="sender", required=True,
                            help="the signing key: its name in the keyring, or its address")
    parser.add_argument("--gas", default="auto",
                        help="gas limit, or 'auto' (default) to simulate and adjust")
    parser.add_argument("--gas-adjustment", default="1.3",
                        help="multiplies the simulated gas (default 1.3)")
    parser.add_argument("--fees", default="", help="the fee to pay, e.g. 5000ninfer "
                        "(default: gas limit × the chain's minimum gas price)")
    parser.add_argument("--gas-prices", default="", help="price per gas, e.g. 0.02ninfer "
                        "(default: the chain's minimum)")
    parser.add_argument("--memo", default="")
    parser.add_argument("--broadcast-mode", "-b", choices=sorted(MODES), default="sync",
                        help="sync: return once the mempool took it (default); async: once "
                        "sent; block: once it is in a block")
    parser.add_argument("--yes", "-y", action="store_true", help="sign without asking")
    parser.add_argument("--dry-run", action="store_true",
                        help="simulate and print gas and fee; send nothing")
    return parser
