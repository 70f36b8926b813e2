"""The inference module: participants, models, inferences and their escrow, the executor
draw (chain/module.py)."""

from collections.abc import Callable

from chain.context import Context
from chain.gas import GasKV
from chain.inference import blocks, genesis
from chain.inference.expected_keepers import BankKeeper, InferenceHooks
from chain.inference.keeper import InferenceKeeper
from chain.inference.msg_server import InferenceMsgServer
from chain.inference.query import InferenceQueries
from chain.module import Module, Msg, Query, service_queries
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2
from inferchain_pb.inference.v1.inference_pb2 import (
    MsgClaimPasses,
    MsgCommitKeyRequests,
    MsgFinishInference,
    MsgGrantAllowance,
    MsgNoticePasses,
    MsgRegisterParticipant,
    MsgRelayStart,
    MsgStartInference,
    MsgUpdateParticipant,
    MsgWithdrawParticipant,
)


class InferenceModule(Module):
    name = "inference"
    keeper: InferenceKeeper

    def __init__(self, keeper: InferenceKeeper, bank: BankKeeper,
                 hooks: InferenceHooks) -> None:
        super().__init__(keeper)
        self._bank = bank
        self._msgs = InferenceMsgServer(keeper, bank, hooks)

    def messages(self) -> list[Msg]:
        return [Msg(MsgGrantAllowance, "creator", self._msgs.grant_allowance),
                Msg(MsgRegisterParticipant, "creator", self._msgs.register),
                Msg(MsgUpdateParticipant, "creator", self._msgs.update),
                Msg(MsgWithdrawParticipant, "creator", self._msgs.withdraw),
                Msg(MsgCommitKeyRequests, "creator", self._msgs.commit_key_requests),
                Msg(MsgNoticePasses, "creator", self._msgs.notice_passes),
                Msg(MsgClaimPasses, "creator", self._msgs.claim_passes),
                Msg(MsgStartInference, "creator", self._msgs.start),
                Msg(MsgRelayStart, "creator", self._msgs.relay_start),
                Msg(MsgFinishInference, "creator", self._msgs.finish)]

    def queries(self, latest_height: Callable[[], int]) -> list[Query]:
        queries = InferenceQueries(self.keeper, self._bank, latest_height)
        return service_queries(query_pb2.DESCRIPTOR.services_by_name["Query"], {
            "Allowance": queries.allowance,
            "Participant": queries.participant,
            "Participants": queries.participants,
            "Model": queries.model,
            "Models": queries.models,
            "Inference": queries.inference,
            "Inferences": queries.inferences,
            "Account": queries.account,
            "Draw": queries.draw,
            "KeyRequestCommitment": queries.key_request_commitment,
            "Probes": queries.probes,
            "PassNotice": queries.pass_notice,
            "PassNotices": queries.pass_notices,
        })

    def init_genesis(self, kv: GasKV, section: dict) -> None:
        genesis.init_genesis(self.keeper, kv, section)

    def export_genesis(self, state: KVReader) -> dict:
        return genesis.export_genesis(self.keeper, state)

    def begin_block(self, ctx: Context, block_hash: bytes) -> None:
        blocks.begin_block(self.keeper, ctx, block_hash)

    def end_block(self, ctx: Context) -> None:
        blocks.end_block(self.keeper, self._bank, ctx)

    def epoch_start(self, ctx: Context, epoch: int) -> None:
        blocks.epoch_start(self.keeper, ctx, epoch)
