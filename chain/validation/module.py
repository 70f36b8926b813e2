"""The validation module: epoch members, validator seeds, validation tasks and votes,
reputation, the judging of validators (chain/module.py)."""

from collections.abc import Callable

from chain.context import Context
from chain.gas import GasKV
from chain.module import Module, Msg, Query, service_queries
from chain.store import KVReader
from chain.validation import genesis
from chain.validation.blocks import ValidationBlocks
from chain.validation.expected_keepers import (
    BankKeeper,
    EpochKeeper,
    InferenceKeeper,
    ValidationHooks,
)
from chain.validation.keeper import ValidationKeeper
from chain.validation.msg_server import ValidationMsgServer
from chain.validation.query import ValidationQueries
from chain.validation.tasks import Tasks
from inferchain_pb.inference.v1 import query_pb2
from inferchain_pb.inference.v1.inference_pb2 import Inference
from inferchain_pb.inference.v1.validation_pb2 import (
    MsgClaimCanary,
    MsgClaimRewards,
    MsgCommitSeed,
    MsgOpenScores,
    MsgSealValidation,
    MsgValidation,
)


class ValidationModule(Module):
    name = "validation"
    keeper: ValidationKeeper

    def __init__(self, keeper: ValidationKeeper, inference: InferenceKeeper,
                 epochs: EpochKeeper, bank: BankKeeper, hooks: ValidationHooks) -> None:
        super().__init__(keeper)
        self._hooks = hooks
        self._tasks = Tasks(keeper, inference, bank, epochs)
        self._msgs = ValidationMsgServer(keeper, inference, epochs, self._tasks)
        self._blocks = ValidationBlocks(keeper, inference, epochs, self._tasks)

    def messages(self) -> list[Msg]:
        return [Msg(MsgCommitSeed, "creator", self._msgs.commit_seed),
                Msg(MsgClaimRewards, "creator", self._msgs.claim_rewards),
                Msg(MsgClaimCanary, "creator", self._msgs.claim_canary),
                Msg(MsgSealValidation, "creator", self._msgs.seal_validation),
                Msg(MsgValidation, "creator", self._msgs.validation),
                Msg(MsgOpenScores, "creator", self._msgs.open_scores)]

    def queries(self, latest_height: Callable[[], int]) -> list[Query]:
        queries = ValidationQueries(self.keeper, latest_height)
        return service_queries(query_pb2.DESCRIPTOR.services_by_name["Query"], {
            "ValidationTask": queries.task,
            "ValidationTasks": queries.tasks,
            "PendingVotes": queries.pending_votes,
            "ExecutorStats": queries.executor_stats,
            "SeedCommitment": queries.seed_commitment,
            "ValidatorRecord": queries.validator_record,
        })

    def init_genesis(self, kv: GasKV, section: dict) -> None:
        genesis.init_genesis(self.keeper, kv, section)

    def export_genesis(self, state: KVReader) -> dict:
        return genesis.export_genesis(self.keeper, state)

    def begin_block(self, ctx: Context, block_hash: bytes) -> None:
        self._blocks.begin_block(ctx, block_hash)

    def end_block(self, ctx: Context) -> None:
        for epoch in self._blocks.end_block(ctx):
            self._hooks.epoch_judged(ctx, epoch)
            self._blocks.summaries.start(ctx, epoch)
            self._blocks.forget_epoch(ctx, epoch)

    def epoch_start(self, ctx: Context, epoch: int) -> None:
        self._blocks.epoch_start(ctx, epoch)

    def inference_finished(self, ctx: Context, inference: Inference) -> None:
        self._tasks.on_finished(ctx, inference)
