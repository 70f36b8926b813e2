"""Settles an epoch's coins once its claim window closes (docs/design.md §7.5).

Work coins are the fees an address earned in the epoch executing inferences and validating
them (inference/work, already paid by developers and held in the escrow account). Reward
coins are the epoch's emission, ``initial_epoch_reward × (1 − reward_decay_ppm/1e6)^e``,
divided among the epoch's members by weight (largest remainder, so the shares sum to the
emission exactly), each share scaled by the member's finished / (finished + expired +
unserved) draws as an executor (unserved: passed over beyond the allowance, §6.7). INVALID
participants, lazy validators and members that did not claim receive nothing: their work
coins are burned and their reward coins are never minted, so supply grows by exactly what
was paid. Settling epoch e drops the records of epoch e − ``settled_epochs_kept``, the
settlement among them.
"""

import logging
from fractions import Fraction

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.context import Context
from chain.epochs.expected_keepers import BankKeeper, InferenceKeeper, ValidationKeeper
from chain.epochs.keeper import EpochKeeper
from chain.epochs.params import EpochsParams
from chain.inference.keeper import ESCROW_ACCOUNT
from chain.scales import PPM
from inferchain_pb.inference.v1.epochs_pb2 import EpochReward, EpochSettlement
from inferchain_pb.inference.v1.validation_pb2 import EpochMembers, ValidatorEpochRecord

log = logging.getLogger(__name__)


def emission(params: EpochsParams, epoch: int) -> int:
    """The schedule's reward coins for ``epoch``, exact in integers (no float rounding)."""
    keep = PPM - params.reward_decay_ppm
    return params.initial_epoch_reward * keep ** epoch // PPM ** epoch


def split_by_weight(amount: int, weights: dict[str, int]) -> dict[str, int]:
    """``amount`` in proportion to ``weights``; the remainder goes one coin each to the
    largest fractional parts (ties by address), so the parts sum to ``amount`` exactly."""
    total = sum(weights.values())
    if not total:
        return {addr: 0 for addr in weights}
    exact = {addr: Fraction(amount * w, total) for addr, w in weights.items()}
    parts = {addr: int(share) for addr, share in exact.items()}
    left = amount - sum(parts.values())
    for addr in sorted(exact, key=lambda a: (-(exact[a] - parts[a]), a))[:left]:
        parts[addr] += 1
    return parts


def forfeit_reason(record: ValidatorEpochRecord, member: bool) -> str:
    """Why an address gets nothing for the epoch; empty when it is paid."""
    if record.invalid:
        return "INVALID in the epoch"
    if member and not record.revealed:
        return "did not claim (seed not revealed)"
    if member and record.lazy:
        return "lazy validator"
    return ""


class Settlement:
    def __init__(self, epochs: EpochKeeper, inference: InferenceKeeper,
                 validation: ValidationKeeper, bank: BankKeeper) -> None:
        self.epochs = epochs
        self.inference = inference
        self.validation = validation
        self.bank = bank

    def settle(self, ctx: Context, epoch: int) -> None:
        params = self.epochs.params(ctx.kv)
        first, last = self.epochs.start_of(ctx.kv, epoch), self.epochs.start_of(ctx.kv,
                                                                                   epoch + 1) - 1
        members = self.validation.members(ctx.kv, epoch) or EpochMembers()
        weights = {m.address: m.weight for m in members.members}
        work = {address.encode(raw): amount
                for raw, amount in self.inference.work_between(ctx.kv, first, last).items()}
        scheduled = emission(params, epoch)
        shares = split_by_weight(scheduled, weights)
        result = EpochSettlement(epoch=epoch, height=ctx.block.height, emission=scheduled)
        for addr in sorted(set(weights) | set(work)):
            record = self.validation.record(ctx.kv, epoch, addr)
            reason = forfeit_reason(record, addr in weights)
            done = record.finished + record.expired + record.unserved
            reward = shares.get(addr, 0) * record.finished // done if done \
                else shares.get(addr, 0)
            earned = work.get(addr, 0)
            raw = address.decode(addr)
            if reason:
                if earned:
                    self.bank.burn(ctx.kv, ESCROW_ACCOUNT, {NATIVE_DENOM: earned})
                result.work_burned += earned
            else:
                if earned:
                    self.bank.send(ctx, ESCROW_ACCOUNT, raw, {NATIVE_DENOM: earned})
                if reward:
                    self.bank.mint(ctx.kv, raw, {NATIVE_DENOM: reward})
                result.work_paid += earned
                result.minted += reward
            result.rewards.append(EpochReward(
                epoch=epoch, address=addr, weight=weights.get(addr, 0), work_coins=earned,
                reward_coins=0 if reason else reward, paid=not reason, reason=reason,
                finished=record.finished, expired=record.expired,
                unserved=record.unserved))
            log.log(logging.WARNING if reason else logging.INFO,
                    "epoch %d settlement for %s: %s", epoch, addr,
                    f"NOTHING ({reason}; {earned} work ninfer burned, {reward} reward ninfer "
                    f"not minted)" if reason else
                    f"{earned} ninfer work + {reward} ninfer reward "
                    f"(weight {weights.get(addr, 0)})")
        result.withheld = scheduled - result.minted
        self.inference.clear_work(ctx.kv, first, last)
        self.epochs.set_settlement(ctx.kv, result)
        ctx.emit("epoch_settled", epoch=str(epoch), emission=str(scheduled),
                 minted=str(result.minted), withheld=str(result.withheld),
                 work_paid=str(result.work_paid), work_burned=str(result.work_burned))
        log.info("epoch %d settled: emission %d, minted %d, withheld %d; work paid %d, "
                 "burned %d", epoch, scheduled, result.minted, result.withheld,
                 result.work_paid, result.work_burned)
        old = epoch - params.settled_epochs_kept
        if old >= 0:
            log.info("epoch %d settled: epoch %d's %d records dropped", epoch, old,
                     self.epochs.forget_epoch(ctx.kv, old))
