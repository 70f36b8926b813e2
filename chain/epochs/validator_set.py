"""CometBFT's validator set, kept in state: voting power follows epoch weight (docs/design.md §7.4).

Key:
  epochs/consensus    ConsensusValidators: the set CometBFT has (as of the height it was set)

InitChain records the genesis validators (no participant behind them). In every epoch's
first block but the chain's first, after the block's begin- and end-block steps have set the
new epoch's weights, ``updates`` turns the active participants that name a consensus key and
have weight into the validator set: each one's power is its weight (scaled down together
should the total exceed CometBFT's limit), every other validator CometBFT has gets power 0.
CometBFT applies the updates two heights later. When nobody qualifies the set stays as it
is: removing every validator would halt the chain.
"""

import logging
from collections.abc import Iterable

from cosmpy.protos.tendermint.abci import types_pb2 as abci
from cosmpy.protos.tendermint.crypto.keys_pb2 import PublicKey

from chain.context import Context
from chain.epochs.expected_keepers import InferenceKeeper
from chain.epochs.keeper import EpochKeeper
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.store import KVReader
from chain.store.records import load, save
from inferchain_pb.inference.v1.epochs_pb2 import ConsensusValidator, ConsensusValidators

log = logging.getLogger(__name__)

KEY = b"epochs/consensus"
ED25519_SIZE = 32
# CometBFT's MaxTotalVotingPower (MaxInt64 / 8): a larger total makes it halt on the update.
MAX_TOTAL_POWER = (2**63 - 1) // 8

State = GasKV | KVReader


def scaled(weights: dict[bytes, int], limit: int = MAX_TOTAL_POWER) -> dict[bytes, int]:
    """Powers for positive ``weights``: the weights themselves while their total fits
    ``limit``, else scaled down proportionally (floor), never below 1, total ≤ ``limit``."""
    total = sum(weights.values())
    if total <= limit:
        return dict(weights)
    # Floors sum to at most limit - n; raising any that reached 0 to 1 adds at most n.
    room = limit - len(weights)
    return {key: max(1, weight * room // total) for key, weight in weights.items()}


def _update(pubkey: bytes, power: int) -> abci.ValidatorUpdate:
    return abci.ValidatorUpdate(pub_key=PublicKey(ed25519=pubkey), power=power)


class ValidatorSet:
    def __init__(self, inference: InferenceKeeper, epochs: EpochKeeper) -> None:
        self._inference = inference
        self._epochs = epochs

    def current(self, state: State) -> ConsensusValidators:
        return load(state, KEY, ConsensusValidators) or ConsensusValidators()

    def init_genesis(self, kv: GasKV, validators: Iterable[abci.ValidatorUpdate]) -> None:
        """Records InitChain's validators: the set CometBFT starts with.

        A genesis exported from a running chain restores the set that chain had (with the
        participants behind it) in its epochs section; InitChain's validators, when given,
        must be that set.
        """
        found = sorted((ConsensusValidator(pubkey=v.pub_key.ed25519, power=v.power)
                        for v in validators if v.power > 0), key=lambda v: v.pubkey)
        restored = load(kv, KEY, ConsensusValidators)
        if restored is None:
            save(kv, KEY, ConsensusValidators(validators=found, height=0))
            return
        kept = [(bytes(v.pubkey), v.power) for v in restored.validators]
        if found and [(bytes(v.pubkey), v.power) for v in found] != kept:
            raise InvalidRequest("the genesis validators differ from the validator set its "
                                 "epochs section restores")

    def desired(self, state: State) -> dict[bytes, tuple[int, str]]:
        """Consensus key → (weight, participant) of every participant that should validate."""
        wanted: dict[bytes, tuple[int, str]] = {}
        for p in self._inference.participants(state):
            key = bytes(p.consensus_pubkey)
            # Keys are unique (the messages and genesis refuse a taken one); should two ever
            # share one, the first by address keeps it, on every node alike.
            if p.active and p.weight > 0 and len(key) == ED25519_SIZE and key not in wanted:
                wanted[key] = (p.weight, p.address)
        return wanted

    def updates(self, ctx: Context) -> list[abci.ValidatorUpdate]:
        """The validator updates of this block: none unless it starts an epoch (not the
        first), then what brings CometBFT's set to the participants' weights."""
        height = ctx.block.height
        epoch = self._epochs.epoch_of(ctx.kv, height)
        if epoch == 0 or self._epochs.start_of(ctx.kv, epoch) != height:
            return []
        wanted = self.desired(ctx.kv)
        if not wanted:
            # Normal in solo mode and on networks whose participants run no validators.
            log.info("epoch %d: no active participant with a consensus key and weight; the "
                     "CometBFT validator set stays as it is", epoch)
            return []
        powers = scaled({key: weight for key, (weight, _) in wanted.items()})
        before = {bytes(v.pubkey): v.power for v in self.current(ctx.kv).validators}
        updates, changes = [], []
        for key in sorted(set(before) | set(powers)):
            old, new = before.get(key, 0), powers.get(key, 0)
            if old != new:
                updates.append(_update(key, new))
                who = wanted[key][1] if key in wanted else "genesis validator"
                changes.append(f"{key.hex()[:12]}… ({who}) {old}→{new}")
        save(ctx.kv, KEY, ConsensusValidators(validators=[
            ConsensusValidator(pubkey=key, power=powers[key], participant=wanted[key][1])
            for key in sorted(powers)], height=height))
        log.info("epoch %d: CometBFT validator set → %d validators, total power %d "
                 "(changes: %s)", epoch, len(powers), sum(powers.values()),
                 "; ".join(changes) or "none")
        if changes:
            ctx.emit("validator_set", epoch=str(epoch), validators=str(len(powers)),
                     total_power=str(sum(powers.values())), changes=str(len(changes)))
        return updates
