"""The epochs params the PoC worker follows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from chain.scales import NANO, PPM
from mlnode.types import PocModelSpec


@dataclass(frozen=True)
class PocParams:
    """The epochs module's params the worker uses (the chain's JSON has more)."""

    epoch_length_blocks: int
    poc_window_blocks: int
    poc_validation_window_blocks: int
    poc_hidden: int
    poc_layers: int
    poc_heads: int
    poc_ffn: int
    poc_seq_len: int
    poc_target_distance_micro: int
    poc_sample_size: int
    poc_tolerance_nano: int

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> PocParams:
        return cls(**{f.name: int(raw[f.name]) for f in fields(cls)})

    @property
    def enabled(self) -> bool:
        return self.poc_window_blocks > 0

    @property
    def shape(self) -> PocModelSpec:
        return PocModelSpec(self.poc_hidden, self.poc_layers, self.poc_heads, self.poc_ffn,
                            self.poc_seq_len)

    @property
    def target_distance(self) -> float:
        return self.poc_target_distance_micro / PPM

    @property
    def tolerance(self) -> float:
        return self.poc_tolerance_nano / NANO
