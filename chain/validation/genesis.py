"""Validation's part of genesis: params and any starting reputations.

Starting reputations let a network that migrates from another one (or a test) begin with
participants who already earned trust, instead of checking everyone at p_max.
"""

from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.scales import PPM
from chain.validation.keeper import ValidationKeeper
from chain.validation.params import ValidationParams


def init_genesis(keeper: ValidationKeeper, kv: GasKV, section: dict) -> None:
    unknown = set(section) - {"params", "reputations"}
    if unknown:
        raise InvalidRequest(f"validation genesis: unknown fields {sorted(unknown)}")
    keeper.set_params(kv, ValidationParams.from_dict(section.get("params", {})))
    for raw in section.get("reputations", []):
        value = raw.get("reputation_ppm")
        if type(value) is not int or not 0 <= value <= PPM or "address" not in raw:
            raise InvalidRequest(f"validation genesis reputation {raw!r}: needs an address "
                                 f"and reputation_ppm in [0, {PPM}]")
        stats = keeper.stats(kv, raw["address"])
        stats.reputation_ppm = value
        keeper.set_stats(kv, stats)
