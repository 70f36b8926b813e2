"""The epochs module: epoch boundaries, proof of compute and the weights it sets, reward
settlement, and CometBFT's validator set (chain/module.py)."""

from collections.abc import Callable

from chain.context import Context
from chain.epochs import blocks, genesis
from chain.epochs.expected_keepers import (
    BankKeeper,
    EpochHooks,
    InferenceKeeper,
    ValidationKeeper,
)
from chain.epochs.keeper import EpochKeeper
from chain.epochs.msg_server import EpochsMsgServer
from chain.epochs.query import EpochsQueries
from chain.epochs.settlement import Settlement
from chain.epochs.validator_set import ValidatorSet
from chain.epochs.weights import Weights
from chain.gas import GasKV
from chain.module import Module, Msg, Query, service_queries
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2
from inferchain_pb.inference.v1.epochs_pb2 import MsgPocValidation, MsgSubmitPoc


class EpochsModule(Module):
    name = "epochs"
    keeper: EpochKeeper

    def __init__(self, keeper: EpochKeeper, inference: InferenceKeeper,
                 validation: ValidationKeeper, bank: BankKeeper, hooks: EpochHooks) -> None:
        super().__init__(keeper)
        self._hooks = hooks
        self._validation = validation
        self._msgs = EpochsMsgServer(keeper, inference, validation)
        self._weights = Weights(keeper, inference)
        self._settlement = Settlement(keeper, inference, validation, bank)
        # CometBFT's validator set: powers follow epoch weights (FinalizeBlock's updates).
        self.validator_set = ValidatorSet(inference, keeper)

    def messages(self) -> list[Msg]:
        return [Msg(MsgSubmitPoc, "creator", self._msgs.submit),
                Msg(MsgPocValidation, "creator", self._msgs.validate)]

    def queries(self, latest_height: Callable[[], int]) -> list[Query]:
        queries = EpochsQueries(self.keeper, self._validation, self.validator_set,
                                latest_height)
        return service_queries(query_pb2.DESCRIPTOR.services_by_name["Query"], {
            "Epoch": queries.epoch,
            "ConsensusValidators": queries.consensus_validators,
            "PocSubmissions": queries.poc_submissions,
            "PocNonces": queries.poc_nonces,
            "EpochSettlement": queries.settlement,
        })

    def init_genesis(self, kv: GasKV, section: dict) -> None:
        genesis.init_genesis(self.keeper, kv, section)

    def export_genesis(self, state: KVReader) -> dict:
        return genesis.export_genesis(self.keeper, state)

    def begin_block(self, ctx: Context, block_hash: bytes) -> None:
        started = blocks.begin_block(self.keeper, ctx, block_hash)
        if started is not None:
            self._hooks.epoch_start(ctx, started)

    def epoch_start(self, ctx: Context, epoch: int) -> None:
        self._weights.epoch_start(ctx, epoch)

    def epoch_judged(self, ctx: Context, epoch: int) -> None:
        self._settlement.settle(ctx, epoch)
