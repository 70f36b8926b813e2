"""Epochs params (DESIGN.md §4): the cycle's length and stages, proof of compute, rewards."""

from dataclasses import dataclass
from typing import ClassVar

from chain.errors import InvalidRequest
from chain.params import ModuleParams

KEY = b"epochs/params"
PPM = 1_000_000
NANO = 1_000_000_000


@dataclass(frozen=True)
class EpochsParams(ModuleParams):
    module = "epochs"
    # Not the length or the windows: epoch numbers and stage heights are computed from them,
    # so a new value would renumber past epochs or move a window that is open.
    governable: ClassVar[frozenset[str]] = frozenset({
        "poc_hidden", "poc_layers", "poc_heads", "poc_ffn", "poc_seq_len",
        "poc_target_distance_micro", "poc_sample_size", "poc_tolerance_nano",
        "max_weight_share_ppm", "initial_epoch_reward", "reward_decay_ppm",
        "validator_fee_share_ppm"})
    epoch_length_blocks: int = 600
    # Stages from the epoch's first block: PoC, then the members' checks of it, then inference
    # only. The weights found take effect at the next epoch's first block.
    poc_window_blocks: int = 60
    poc_validation_window_blocks: int = 30
    # The PoC transformer (mlnode/poc/spec.py; "tiny" by default, "realistic" on GPUs), the
    # distance under which a nonce counts (millionths; ~2.9 % of nonces at the tiny shape),
    # how many nonces a member re-computes per submission, and the |recomputed − claimed|
    # it allows (billionths; float32 provers measure ≤ 4e-7 between CPU and GPU).
    poc_hidden: int = 128
    poc_layers: int = 4
    poc_heads: int = 4
    poc_ffn: int = 344
    poc_seq_len: int = 16
    poc_target_distance_micro: int = 1_290_000
    poc_sample_size: int = 20
    poc_tolerance_nano: int = 10_000
    # No participant's weight exceeds this share of all accepted nonces.
    max_weight_share_ppm: int = 250_000
    # Reward coins minted for epoch e: initial_epoch_reward × (1 − reward_decay_ppm/1e6)^e.
    initial_epoch_reward: int = 1_000_000_000_000
    reward_decay_ppm: int = 2_000
    # Of a validated inference's fee, the share that goes to the validators who checked it.
    validator_fee_share_ppm: int = 100_000

    def __post_init__(self) -> None:
        self.check_integers()
        if self.epoch_length_blocks < 1:
            raise InvalidRequest("epochs param epoch_length_blocks must be at least 1")
        if self.poc_window_blocks and \
                self.poc_window_blocks + self.poc_validation_window_blocks >= \
                self.epoch_length_blocks:
            raise InvalidRequest("epochs params poc_window_blocks + "
                                 "poc_validation_window_blocks must be shorter than an epoch")
        if min(self.poc_hidden, self.poc_layers, self.poc_heads, self.poc_ffn,
               self.poc_seq_len, self.poc_sample_size) < 1:
            raise InvalidRequest("epochs PoC shape params and poc_sample_size must be at "
                                 "least 1")
        if self.poc_hidden % self.poc_heads:
            raise InvalidRequest("epochs param poc_hidden must be a multiple of poc_heads")
        if not 0 < self.max_weight_share_ppm <= PPM:
            raise InvalidRequest("epochs param max_weight_share_ppm must be in (0, 1000000]")
        if self.reward_decay_ppm > PPM or self.validator_fee_share_ppm > PPM:
            raise InvalidRequest("epochs params reward_decay_ppm and validator_fee_share_ppm "
                                 "are parts per million, at most 1000000")

    @property
    def poc_enabled(self) -> bool:
        return self.poc_window_blocks > 0

    # Stage heights: functions of these params alone (chain/epochs/keeper.py).

    def epoch_of(self, height: int) -> int:
        return max(height - 1, 0) // self.epoch_length_blocks

    def start_of(self, epoch: int) -> int:
        return 1 + epoch * self.epoch_length_blocks

    def poc_end(self, epoch: int) -> int:
        """The PoC window's last height (the epoch's start − 1 when PoC is off)."""
        return self.start_of(epoch) + self.poc_window_blocks - 1

    def poc_validation_end(self, epoch: int) -> int:
        return self.poc_end(epoch) + (self.poc_validation_window_blocks
                                      if self.poc_enabled else 0)
