"""What the client asks its user: passphrases, mnemonics, confirmations.

At a terminal it prompts (passphrases unechoed); otherwise it reads one line of stdin per
question, in the order the command asks, so scripts can pipe answers in as they do to a Cosmos
CLI (docs/cli.md lists the order).
"""

import getpass
import sys

from client.errors import CliError


def ask(prompt: str, secret: bool = False) -> str:
    if sys.stdin.isatty():
        try:
            return getpass.getpass(prompt) if secret else input(prompt)
        except EOFError:
            raise CliError(f"no answer to {prompt.strip()!r}") from None
    line = sys.stdin.readline()
    if not line:
        raise CliError(f"no answer to {prompt.strip()!r} on stdin")
    return line.rstrip("\r\n")


def new_passphrase() -> str:
    """A passphrase for a new keyring: asked twice at a terminal, so a typo is not locked in."""
    passphrase = ask("Enter keyring passphrase: ", secret=True)
    if sys.stdin.isatty() and ask("Re-enter keyring passphrase: ", secret=True) != passphrase:
        raise CliError("the passphrases do not match")
    return passphrase


def confirm(question: str) -> None:
    """Goes on only on a yes; anything else stops the command, which changed nothing."""
    print(question, file=sys.stderr)
    if ask("confirm [y/N]: ").strip().lower() not in ("y", "yes"):
        raise CliError("cancelled; nothing was done")
