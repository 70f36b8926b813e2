"""Epoch arithmetic (DESIGN.md §4): epoch e covers heights [1 + e·L, (e + 1)·L].

Epochs are a function of the height and one param, so no state moves at a boundary except
what the modules that listen for it (``on_epoch_start``) change themselves.
"""

import logging
from collections.abc import Callable

from chain.context import Context
from chain.epochs.params import KEY as PARAMS_KEY
from chain.epochs.params import EpochsParams
from chain.gas import GasKV
from chain.store import KVReader
from inferchain_pb.inference.v1.validation_pb2 import Epoch

log = logging.getLogger(__name__)

State = GasKV | KVReader
EpochStart = Callable[[Context, int], None]


class EpochKeeper:
    def __init__(self) -> None:
        self._listeners: list[EpochStart] = []

    def on_epoch_start(self, listener: EpochStart) -> None:
        """Run ``listener(ctx, epoch)`` in the first block of every epoch, in order of adding."""
        self._listeners.append(listener)

    def params(self, state: State) -> EpochsParams:
        return EpochsParams.stored(state, PARAMS_KEY)

    def set_params(self, kv: GasKV, params: EpochsParams) -> None:
        kv.set(PARAMS_KEY, params.to_bytes())

    def length(self, state: State) -> int:
        return self.params(state).epoch_length_blocks

    def epoch_of(self, state: State, height: int) -> int:
        return max(height - 1, 0) // self.length(state)

    def start_of(self, state: State, epoch: int) -> int:
        return 1 + epoch * self.length(state)

    def current(self, state: State, height: int) -> Epoch:
        number = self.epoch_of(state, height)
        return Epoch(number=number, start_height=self.start_of(state, number),
                     length=self.length(state))

    def begin_block(self, ctx: Context, block_hash: bytes) -> None:
        epoch = self.epoch_of(ctx.kv, ctx.block.height)
        if self.start_of(ctx.kv, epoch) != ctx.block.height:
            return
        log.info("epoch %d begins at height %d", epoch, ctx.block.height)
        ctx.emit("epoch_start", epoch=str(epoch), height=str(ctx.block.height))
        for listener in self._listeners:
            listener(ctx, epoch)
