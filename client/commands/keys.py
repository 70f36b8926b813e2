"""``inferchain keys add|list|show|delete|import-hex``: the local keyring (client/keyring.py).

Answers read from stdin, one line each when it is not a terminal, in this order: ``add``:
passphrase (file backend), then the mnemonic with ``--recover``; ``import-hex``: passphrase;
``delete``: the confirmation unless ``--yes``.
"""

import argparse

from cosmpy.crypto.keypairs import PrivateKey

from client import output, terminal
from client.commands.leaf import command, group
from client.keyring import Keyring, key_from_hex, key_from_mnemonic, new_mnemonic
from client.settings import Settings


def add_parser(parts: argparse._SubParsersAction) -> None:
    commands = group(parts, "keys", "manage the account keys of the local keyring")
    add = command(commands, "add", "create a key (a new mnemonic, or --recover one)", add_key)
    add.add_argument("name")
    add.add_argument("--recover", action="store_true",
                     help="derive the key from an existing BIP-39 mnemonic, read from stdin")
    imported = command(commands, "import-hex", "add a hex secp256k1 private key, e.g. an "
                       "API node's account.key", import_hex)
    imported.add_argument("name")
    imported.add_argument("key", help="64 hex digits, or a file holding them")
    command(commands, "list", "every key: name, address, public key", list_keys)
    show = command(commands, "show", "one key by name or address", show_key)
    show.add_argument("name")
    show.add_argument("--address", "-a", action="store_true", help="print the address only")
    delete = command(commands, "delete", "remove a key from the keyring", delete_key)
    delete.add_argument("name")
    delete.add_argument("--yes", "-y", action="store_true", help="skip the confirmation")


def add_key(args: argparse.Namespace, settings: Settings) -> None:
    keyring = Keyring(settings.home, settings.keyring_backend)
    keyring.check_new(args.name)
    passphrase = _passphrase_for_new_key(keyring)
    mnemonic = (terminal.ask("Enter your bip39 mnemonic: ", secret=True) if args.recover
                else new_mnemonic())
    key = key_from_mnemonic(mnemonic)
    info = keyring.add(args.name, key, passphrase).public()
    if args.recover:
        output.show(info, settings.output)
        return
    if settings.output == "json":
        output.show({**info, "mnemonic": mnemonic}, "json")
        return
    output.show(info, "text")
    print("\n**Important** write this mnemonic phrase in a safe place.\nIt is the only way "
          f"to recover your account if you ever forget your password.\n\n{mnemonic}")


def import_hex(args: argparse.Namespace, settings: Settings) -> None:
    keyring = Keyring(settings.home, settings.keyring_backend)
    keyring.check_new(args.name)
    try:
        with open(args.key) as source:
            text = source.read()
    except OSError:
        text = args.key
    key = key_from_hex(text)
    output.show(keyring.add(args.name, key, _passphrase_for_new_key(keyring)).public(),
                settings.output)


def list_keys(args: argparse.Namespace, settings: Settings) -> None:
    keyring = Keyring(settings.home, settings.keyring_backend)
    output.show([k.public() for k in keyring.entries()], settings.output)


def show_key(args: argparse.Namespace, settings: Settings) -> None:
    info = Keyring(settings.home, settings.keyring_backend).find(args.name)
    if args.address:
        print(info.address)
        return
    output.show(info.public(), settings.output)


def delete_key(args: argparse.Namespace, settings: Settings) -> None:
    keyring = Keyring(settings.home, settings.keyring_backend)
    info = keyring.info(args.name)
    if not args.yes:
        terminal.confirm(f"Key {info.name} ({info.address}) will be deleted; without its "
                         f"mnemonic it cannot be recovered.")
    keyring.delete(args.name)
    print(f"Key {info.name} deleted", flush=True)


def _passphrase_for_new_key(keyring: Keyring) -> str | None:
    if not keyring.needs_passphrase():
        return None
    if keyring.is_empty():
        return terminal.new_passphrase()
    return terminal.ask("Enter keyring passphrase: ", secret=True)


def unlock(keyring: Keyring, name: str) -> PrivateKey:
    """The private key of ``name``, asking the passphrase if the backend has one."""
    keyring.info(name)
    passphrase = (terminal.ask("Enter keyring passphrase: ", secret=True)
                  if keyring.needs_passphrase() else None)
    return keyring.private_key(name, passphrase)

