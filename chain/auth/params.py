"""Auth params: every number the ante handler applies, changeable by governance later."""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from chain.errors import InvalidRequest
from chain.params import ModuleParams

KEY = b"auth/params"


@dataclass(frozen=True)
class AuthParams(ModuleParams):
    module = "auth"
    governable: ClassVar[frozenset[str]] = frozenset({
        "max_memo_characters", "tx_sig_limit", "tx_size_cost_per_byte",
        "sig_verify_cost_secp256k1", "max_tx_bytes", "min_gas_price"})
    max_memo_characters: int = 256
    tx_sig_limit: int = 7
    tx_size_cost_per_byte: int = 10
    sig_verify_cost_secp256k1: int = 1000
    max_tx_bytes: int = 1 << 20
    # ninfer per unit of gas; fees below gas_limit × min_gas_price are refused by consensus.
    min_gas_price: str = "0.01"

    def __post_init__(self) -> None:
        self.check_integers()
        try:
            if Decimal(self.min_gas_price) < 0:
                raise InvalidOperation
        except InvalidOperation as exc:
            raise InvalidRequest("auth param min_gas_price must be a non-negative decimal") from exc

    @property
    def gas_price(self) -> Decimal:
        return Decimal(self.min_gas_price)
