"""Auth's part of genesis: its params (accounts come into being with their first coins)."""

from chain.auth.keeper import AuthKeeper
from chain.auth.params import AuthParams
from chain.gas import GasKV


def init_genesis(keeper: AuthKeeper, kv: GasKV, section: dict) -> None:
    keeper.set_params(kv, AuthParams.from_dict(section.get("params", {})))
