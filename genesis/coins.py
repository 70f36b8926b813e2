"""Cosmos coin strings ("1000ninfer,5uatom") parsed the way the Cosmos SDK accepts them in genesis.

Genesis balances must already be what `sdk.Coins.Validate` accepts (positive amounts, one entry per
denom, sorted by denom), so the chain can load them without normalising anything itself.
"""

import re
from dataclasses import dataclass

# The SDK's default denom rule: a letter, then 2..127 of letters, digits and / : . _ -
DENOM_PATTERN = r"[a-zA-Z][a-zA-Z0-9/:._-]{2,127}"
_COIN = re.compile(rf"([0-9]+)\s*({DENOM_PATTERN})")


@dataclass(frozen=True)
class Coin:
    """One amount of one denom; amounts are integers (base units, e.g. ninfer)."""

    denom: str
    amount: int

    def to_json(self) -> dict[str, str]:
        """The `cosmos.base.v1beta1.Coin` JSON form: the amount as a decimal string."""
        return {"denom": self.denom, "amount": str(self.amount)}


def parse_coins(text: str) -> tuple[Coin, ...]:
    """Parses "AMOUNTdenom[,AMOUNTdenom...]" into coins sorted by denom.

    Raises ValueError for an empty string, a malformed coin, a zero amount or a repeated denom:
    each of those would make the SDK reject the genesis, so it is refused here with the coin named.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a coin string such as '1000ninfer', got {text!r}")
    if not text.strip():
        raise ValueError("expected a coin string such as '1000ninfer', got an empty value")
    coins: dict[str, Coin] = {}
    for part in text.split(","):
        part = part.strip()
        match = _COIN.fullmatch(part)
        if match is None:
            raise ValueError(
                f"bad coin {part!r}: expected AMOUNT then DENOM, e.g. '1000ninfer' "
                "(integer amount; denom a letter then 2-127 of [a-zA-Z0-9/:._-])"
            )
        amount, denom = int(match.group(1)), match.group(2)
        if amount == 0:
            raise ValueError(f"bad coin {part!r}: amount must be positive")
        if denom in coins:
            raise ValueError(f"denom {denom!r} appears twice in {text!r}")
        coins[denom] = Coin(denom=denom, amount=amount)
    return tuple(coins[denom] for denom in sorted(coins))
