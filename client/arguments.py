"""The checks every value typed on the command line passes before anything is sent: each
bad one is refused in one line naming the value and what was expected."""

import argparse
import re
from decimal import Decimal, InvalidOperation

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM, valid_denom
from chain.errors import ChainError
from client.errors import CliError
from genesis.coins import Coin, parse_coins

_GAS_PRICE = re.compile(rf"([0-9]*\.?[0-9]+)({NATIVE_DENOM})")


def parse_address(text: str, what: str = "address") -> str:
    """An account address as the chain takes it: bech32 with prefix infer, lower case."""
    try:
        address.decode(text)
    except ChainError as exc:
        raise CliError(f"{what}: {exc.message}") from None
    return text


def parse_gas(text: str) -> str:
    if text != "auto" and not (re.fullmatch("[0-9]{1,19}", text) and 0 < int(text) < 1 << 63):
        raise CliError(f"--gas {text!r} must be 'auto' or a positive whole number of gas")
    return text


def parse_gas_adjustment(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal(0)
    if not value.is_finite() or not 1 <= value <= 10:
        raise CliError(f"--gas-adjustment {text!r} must be a number from 1 to 10")
    return value


def parse_gas_price(text: str) -> Decimal:
    found = _GAS_PRICE.fullmatch(text.strip())
    if found is None:
        raise CliError(f"--gas-prices {text!r} must be a price such as 0.01{NATIVE_DENOM}")
    return Decimal(found.group(1))


def parse_coins_arg(text: str, what: str) -> tuple[Coin, ...]:
    """A Cosmos coin string ("1000ninfer" or "5ninfer,7other"): positive, sorted by denom."""
    try:
        return parse_coins(text)
    except ValueError as exc:
        raise CliError(f"{what}: {exc}") from None


def parse_amount(text: str, what: str) -> str:
    """A coin string, checked, in canonical order."""
    return ",".join(f"{c.amount}{c.denom}" for c in parse_coins_arg(text, what))


def parse_denom(text: str) -> str:
    if not valid_denom(text):
        raise CliError(f"denom {text!r} is not a denom such as {NATIVE_DENOM}")
    return text


def count(text: str) -> int:
    """A height, epoch, id or limit: a whole number from 0 to 2^63 - 1 (argparse type)."""
    if re.fullmatch("[0-9]{1,19}", text) is None or int(text) >= 1 << 63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to 2^63 - 1")
    return int(text)
