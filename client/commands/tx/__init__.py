"""``inferchain tx MODULE …``: signed transactions. Each command builds its messages, then
the signer (client/signing.py) simulates, prices, signs and broadcasts them.

The key comes from the keyring (``--from`` NAME or address). Answers on stdin, in order: the
keyring passphrase (file backend), then the confirmation unless ``--yes``.
"""

import argparse

from client.commands.leaf import group
from client.commands.tx import bank, gov, inference


def add_parser(parts: argparse._SubParsersAction) -> None:
    modules = group(parts, "tx", "sign and broadcast transactions")
    for module in (bank, inference, gov):
        module.add_parser(modules)
