"""Auth params: every number the ante handler applies, changeable by governance.

Bounds keep every tx, the vote that could undo a change included, small enough to fit and
cheap enough to pay: at all the maxima at once a vote (about 300 bytes, one signature)
needs about 0.4 M gas, under 0.05 INFER in fees.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from chain.params import ModuleParams, bounded, decimal

KEY = b"auth/params"


@dataclass(frozen=True)
class AuthParams(ModuleParams):
    module = "auth"
    governable: ClassVar[frozenset[str]] = frozenset({
        "max_memo_characters", "tx_sig_limit", "tx_size_cost_per_byte",
        "sig_verify_cost_secp256k1", "max_tx_bytes", "min_gas_price"})
    # 0 to 65,536: no tx needs a memo; above that a memo is a payload, not a note.
    max_memo_characters: int = bounded(256, 0, 65_536)
    # 1 to 128: every tx needs its signer's signature; each one is verified on every node
    # before the tx can fail, so their number stays small.
    tx_sig_limit: int = bounded(7, 1, 128)
    # Gas per tx byte, 0 to 1,000: at most 0.3 M gas for a vote.
    tx_size_cost_per_byte: int = bounded(10, 0, 1_000)
    # Gas per signature, 0 to 100,000.
    sig_verify_cost_secp256k1: int = bounded(1_000, 0, 100_000)
    # 16 KiB to 8 MiB: a proposal with the longest title and summary, and any vote, still
    # fits, so governance can raise it again; every tx allowed fits CometBFT's block
    # (max_bytes 21 MiB).
    max_tx_bytes: int = bounded(1 << 20, 16_384, 8 << 20)
    # ninfer per unit of gas; fees below gas_limit × min_gas_price are refused by consensus.
    # 0 to 100 with at most 5 decimal places: a vote's fee stays a fraction of an INFER, and
    # the product with a uint64 gas limit keeps within Decimal's 28 exact digits.
    min_gas_price: str = decimal("0.01", "0", "100", places=5)

    @property
    def gas_price(self) -> Decimal:
        return Decimal(self.min_gas_price)
