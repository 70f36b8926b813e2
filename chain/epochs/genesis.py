"""Epochs' part of genesis: its params."""

from chain.epochs.keeper import EpochKeeper
from chain.epochs.params import EpochsParams
from chain.gas import GasKV


def init_genesis(keeper: EpochKeeper, kv: GasKV, section: dict) -> None:
    keeper.set_params(kv, EpochsParams.from_dict(section.get("params", {})))
