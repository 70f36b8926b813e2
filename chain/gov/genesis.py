"""Gov's part of genesis: its params (proposals only come from transactions)."""

from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.gov.keeper import GovKeeper
from chain.gov.params import GovParams


def init_genesis(keeper: GovKeeper, kv: GasKV, section: dict) -> None:
    unknown = set(section) - {"params"}
    if unknown:
        raise InvalidRequest(f"gov genesis: unknown fields {sorted(unknown)}")
    keeper.set_params(kv, GovParams.from_dict(section.get("params", {})))
