"""``inferchain config set|get|show``: the client config file (client/settings.py)."""

import argparse

from client import output, settings
from client.commands.leaf import command, group
from client.settings import Settings


def add_parser(parts: argparse._SubParsersAction) -> None:
    commands = group(parts, "config", "read and write the client config file")
    keys = ", ".join(settings.KEYS)
    setter = command(commands, "set", f"set a config value ({keys})", set_value)
    setter.add_argument("key")
    setter.add_argument("value")
    getter = command(commands, "get", f"one config value as the client uses it ({keys})",
                     get_value)
    getter.add_argument("key")
    command(commands, "show", "every config value as the client uses it", show_all)


def set_value(args: argparse.Namespace, current: Settings) -> None:
    values = settings.read_config(current.home)
    values[args.key] = settings.check(args.key, args.value)
    path = settings.write_config(current.home, values)
    output.show({"file": str(path), args.key: values[args.key]}, current.output)


def get_value(args: argparse.Namespace, current: Settings) -> None:
    print(_effective(current)[settings.check_key(args.key)])


def show_all(args: argparse.Namespace, current: Settings) -> None:
    output.show(_effective(current), current.output)


def _effective(current: Settings) -> dict[str, str]:
    return {"node": current.node, "chain-id": current.chain_id, "output": current.output,
            "keyring-backend": current.keyring_backend}
