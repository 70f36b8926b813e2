"""Epochs params: the length of the cycle every reward and reputation is counted in."""

from dataclasses import dataclass

from chain.errors import InvalidRequest
from chain.params import ModuleParams

KEY = b"epochs/params"


@dataclass(frozen=True)
class EpochsParams(ModuleParams):
    module = "epochs"
    # Nothing is governable: epoch numbers are computed from the length, so a new length
    # would renumber past epochs.
    epoch_length_blocks: int = 600

    def __post_init__(self) -> None:
        self.check_integers()
        if self.epoch_length_blocks < 1:
            raise InvalidRequest("epochs param epoch_length_blocks must be at least 1")
