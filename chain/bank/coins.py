"""Coin amounts as the chain keeps them: validated, sorted by denom, integers only."""

import re
from collections.abc import Iterable

from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin

from chain.errors import InvalidCoins

NATIVE_DENOM = "ninfer"
_DENOM = re.compile(r"[a-zA-Z][a-zA-Z0-9/:._-]{2,127}")
# ASCII digits only (str.isdigit() also accepts '²' and '٣'), no leading zeros, so an amount
# has one spelling; 78 digits hold any amount up to MAX_AMOUNT.
_AMOUNT = re.compile(r"[1-9][0-9]{0,77}")
MAX_AMOUNT = (1 << 256) - 1


def valid_denom(denom: str) -> bool:
    """Cosmos's denom rule, over the whole string (a trailing newline is no denom)."""
    return _DENOM.fullmatch(denom) is not None


def parse(coins: Iterable[Coin], allow_empty: bool = True) -> dict[str, int]:
    """Validated {denom: amount}; Cosmos rules: positive, valid denoms, sorted, no duplicates."""
    result: dict[str, int] = {}
    last = ""
    for coin in coins:
        if not valid_denom(coin.denom):
            raise InvalidCoins(f"invalid denom {coin.denom[:130]!r}")
        if not _AMOUNT.fullmatch(coin.amount):
            raise InvalidCoins(f"invalid amount {coin.amount[:80]!r} for {coin.denom}: a "
                               f"positive integer in decimal digits without leading zeros")
        amount = int(coin.amount)
        if amount > MAX_AMOUNT:
            raise InvalidCoins(f"amount of {coin.denom} exceeds 2^256 - 1")
        if coin.denom <= last:
            raise InvalidCoins("coins must be sorted by denom without duplicates")
        last = coin.denom
        result[coin.denom] = amount
    if not result and not allow_empty:
        raise InvalidCoins("no coins given")
    return result


def render(coins: dict[str, int]) -> str:
    """Cosmos's coin string, e.g. "100ninfer,5stake", as events carry it."""
    return ",".join(f"{amount}{denom}" for denom, amount in sorted(coins.items()))
