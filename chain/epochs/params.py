"""Epochs params (docs/design.md §7): the cycle's length and stages, proof of compute, rewards."""

from dataclasses import dataclass
from typing import ClassVar

from chain.errors import InvalidRequest
from chain.params import ModuleParams, bounded
from chain.scales import NANO, PPM

KEY = b"epochs/params"
# ninfer all epochs together may mint (a billion INFER), well below 2^63.
MAX_LIFETIME_EMISSION = 10**18


@dataclass(frozen=True)
class EpochsParams(ModuleParams):
    module = "epochs"
    # Not the length or the windows: epoch numbers and stage heights are computed from them,
    # so a new value would renumber past epochs or move a window that is open.
    governable: ClassVar[frozenset[str]] = frozenset({
        "poc_hidden", "poc_layers", "poc_heads", "poc_ffn", "poc_seq_len",
        "poc_target_distance_micro", "poc_sample_size", "poc_tolerance_nano",
        "max_weight_share_ppm", "initial_epoch_reward", "reward_decay_ppm",
        "validator_fee_share_ppm", "settled_epochs_kept"})
    # 1 to 1,000,000 blocks (about two months at 5-second blocks): weights and rewards
    # change once per epoch, so a longer one would freeze them.
    epoch_length_blocks: int = bounded(600, 1, 1_000_000)
    # Stages from the epoch's first block: PoC, then the members' checks of it, then inference
    # only. The weights found take effect at the next epoch's first block. Each 0 to
    # 100,000 (0 turns PoC off), and together shorter than the epoch.
    poc_window_blocks: int = bounded(60, 0, 100_000)
    poc_validation_window_blocks: int = bounded(30, 0, 100_000)
    # The PoC transformer (mlnode/poc/presets.py; "tiny" by default, "realistic" on GPUs), the
    # distance under which a nonce counts (millionths; ~2.9 % of nonces at the tiny shape),
    # how many nonces a member re-computes per submission, and the |recomputed − claimed|
    # it allows (billionths; float32 provers measure ≤ 4e-7 between CPU and GPU).
    # The shape is at least 1 everywhere and at most the largest open decoder stacks
    # (Llama-3-405B: hidden 16384, 126 layers, ffn 53248), which every ML node must run.
    poc_hidden: int = bounded(128, 1, 16_384)
    poc_layers: int = bounded(4, 1, 256)
    poc_heads: int = bounded(4, 1, 256)
    poc_ffn: int = bounded(344, 1, 65_536)
    poc_seq_len: int = bounded(16, 1, 8_192)
    # Outputs are unit vectors, so distances lie in [0, 2]: 1 to 2,000,000 millionths.
    poc_target_distance_micro: int = bounded(1_290_000, 1, 2_000_000)
    # 1 to 1,000 forward passes per submission for each checking member.
    poc_sample_size: int = bounded(20, 1, 1_000)
    # 0 to 2e9 billionths: a tolerance of 2 accepts any distance.
    poc_tolerance_nano: int = bounded(10_000, 0, 2 * NANO)
    # No participant's weight exceeds this share of all accepted nonces; 0 would weigh none.
    # Just under a third: below it no participant gains by splitting into sybils
    # (docs/economics.md), and none holds a third of the voting power alone.
    max_weight_share_ppm: int = bounded(333_333, 1, PPM)
    # Reward coins minted for epoch e: initial_epoch_reward × (1 − reward_decay_ppm/1e6)^e.
    # At most 1e15 ninfer (a million INFER) an epoch and a decay of at least 1 ppm, and
    # together at most MAX_LIFETIME_EMISSION over all epochs: every epoch's emission, and
    # the supply it adds up to, stays far inside the uint64 fields that record them.
    initial_epoch_reward: int = bounded(1_000_000_000_000, 0, 10**15)
    reward_decay_ppm: int = bounded(2_000, 1, PPM)
    # Of a validated inference's fee, the share that goes to the validators who checked it.
    # Half: paid at rate p, it is what low reputation costs, and it must outweigh the compute
    # a cheat below the INVALID thresholds saves (docs/economics.md).
    validator_fee_share_ppm: int = bounded(500_000, 0, PPM)
    # How many settled epochs keep their records (members, seed commitments, validator
    # records, PoC submissions, seeds, the settlement): settling epoch e drops those of
    # e − settled_epochs_kept. At least 1: nothing reads an epoch's records once the next
    # one is settled; an epoch's inferences are summaries by then anyway.
    settled_epochs_kept: int = bounded(10, 1, 1_000_000)

    def check_consistency(self) -> None:
        if self.poc_window_blocks and \
                self.poc_window_blocks + self.poc_validation_window_blocks >= \
                self.epoch_length_blocks:
            raise InvalidRequest("epochs params poc_window_blocks + "
                                 "poc_validation_window_blocks must be shorter than an epoch")
        if self.poc_hidden % self.poc_heads:
            raise InvalidRequest("epochs param poc_hidden must be a multiple of poc_heads")
        if self.initial_epoch_reward * PPM > MAX_LIFETIME_EMISSION * self.reward_decay_ppm:
            raise InvalidRequest(
                f"epochs params initial_epoch_reward × 1000000 / reward_decay_ppm (the "
                f"emission of all epochs) must be at most {MAX_LIFETIME_EMISSION} ninfer")

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
