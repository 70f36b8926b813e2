"""The modules the application is built from, wired once: keepers, message routes, genesis.

Adding a module means adding it here (its keeper, its routes, its genesis step); nothing else
in the application changes.

Block steps (begin- and end-block hooks) run on no user's gas, so each is contained like a
transaction: it runs on its own branch of the block's state, and if it raises, its changes are
discarded, the error is logged, and the block goes on. The same input raises on every node, so
every node discards the same changes; only failures of the machine stop the node.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend

from chain.auth import genesis as auth_genesis
from chain.auth import query as auth_query
from chain.auth.keeper import AuthKeeper
from chain.bank import genesis as bank_genesis
from chain.bank import query as bank_query
from chain.bank.keeper import BankKeeper
from chain.bank.msg_server import BankMsgServer
from chain.context import Context
from chain.epochs import genesis as epochs_genesis
from chain.epochs import query as epochs_query
from chain.epochs.keeper import EpochKeeper
from chain.epochs.poc import PocMsgServer
from chain.epochs.settlement import Settlement
from chain.epochs.validator_set import ValidatorSet
from chain.epochs.weights import Weights
from chain.errors import ENVIRONMENT_ERRORS, InvalidRequest
from chain.gas import GasKV
from chain.gov import genesis as gov_genesis
from chain.gov import query as gov_query
from chain.gov.blocks import GovBlocks
from chain.gov.content import Contents, ParamsKeeper
from chain.gov.keeper import GovKeeper
from chain.gov.msg_server import GovMsgServer, depositor_signer, proposer_signer, voter_signer
from chain.gov.tally import VotingPower
from chain.inference import blocks as inference_blocks
from chain.inference import genesis as inference_genesis
from chain.inference import query as inference_query
from chain.inference.keeper import InferenceKeeper
from chain.inference.msg_server import InferenceMsgServer, creator_signer
from chain.query import QueryRouter
from chain.router import Router
from chain.tx.ante import AnteHandler
from chain.tx.execute import TxRunner
from chain.validation import genesis as validation_genesis
from chain.validation import query as validation_query
from chain.validation.blocks import ValidationBlocks
from chain.validation.keeper import ValidationKeeper
from chain.validation.msg_server import ValidationMsgServer
from chain.validation.tasks import Tasks
from inferchain_pb.inference.v1.epochs_pb2 import MsgPocValidation, MsgSubmitPoc
from inferchain_pb.inference.v1.gov_pb2 import MsgDeposit, MsgSubmitProposal, MsgVote
from inferchain_pb.inference.v1.inference_pb2 import (
    MsgFinishInference,
    MsgGrantAllowance,
    MsgRegisterParticipant,
    MsgStartInference,
    MsgUpdateParticipant,
    MsgWithdrawParticipant,
)
from inferchain_pb.inference.v1.validation_pb2 import MsgClaimRewards, MsgCommitSeed, MsgValidation

log = logging.getLogger(__name__)


@dataclass
class Modules:
    auth: AuthKeeper
    bank: BankKeeper
    inference: InferenceKeeper
    epochs: EpochKeeper
    validation: ValidationKeeper
    gov: GovKeeper
    voting_power: VotingPower
    # Each module with params, by name: the Params query and parameter changes use them.
    params_keepers: dict[str, ParamsKeeper]
    router: Router
    runner: TxRunner
    genesis_steps: list[tuple[str, Callable[[GasKV, dict], None]]]
    begin_block_steps: list[Callable[[Context, bytes], None]]
    end_block_steps: list[Callable[[Context], None]]
    # CometBFT's validator set: powers follow epoch weights (FinalizeBlock's updates).
    validator_set: ValidatorSet

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.genesis_steps]

    def register_queries(self, queries: QueryRouter, latest_height: Callable[[], int]) -> None:
        auth_query.register(queries, self.auth)
        bank_query.register(queries, self.bank)
        inference_query.register(queries, self.inference, self.bank, latest_height, {
            name: keeper.params for name, keeper in self.params_keepers.items()})
        validation_query.register(queries, self.validation, self.epochs, latest_height)
        gov_query.register(queries, self.gov, self.voting_power, latest_height)
        epochs_query.register(queries, self.epochs, self.validator_set)


    def begin_block(self, ctx: Context, block_hash: bytes) -> None:
        for step in self.begin_block_steps:
            run_contained(ctx, step, partial(step, block_hash=block_hash))

    def end_block(self, ctx: Context) -> None:
        for step in self.end_block_steps:
            run_contained(ctx, step, step)

    def init_genesis(self, kv: GasKV, app_state: dict) -> None:
        unknown = set(app_state) - {name for name, _ in self.genesis_steps}
        if unknown:
            raise InvalidRequest(f"genesis app_state names unknown modules: {sorted(unknown)}")
        for name, step in self.genesis_steps:
            step(kv, app_state.get(name, {}))


def run_contained(ctx: Context, step: Callable, run: Callable[[Context], None]) -> None:
    """Runs one block step on a branch that is kept only if the step completes."""
    branch = ctx.kv.state.branch()
    step_ctx = Context(ctx.block, GasKV(branch, ctx.gas))
    try:
        run(step_ctx)
    except ENVIRONMENT_ERRORS:
        raise
    except Exception:
        name = getattr(getattr(step, "func", step), "__qualname__", repr(step))
        log.exception("block step %s failed at height %d; its changes are discarded and the "
                      "block goes on", name, ctx.block.height)
        return
    branch.write()
    ctx.events.extend(step_ctx.events)


def build() -> Modules:
    auth = AuthKeeper()
    bank = BankKeeper(auth)
    router = Router()
    bank_msgs = BankMsgServer(bank)
    router.register(MsgSend, bank_msgs.send_signers, bank_msgs.send)
    inference = InferenceKeeper()
    inference_msgs = InferenceMsgServer(inference, bank)
    for message, handle in [(MsgGrantAllowance, inference_msgs.grant_allowance),
                            (MsgRegisterParticipant, inference_msgs.register),
                            (MsgUpdateParticipant, inference_msgs.update),
                            (MsgWithdrawParticipant, inference_msgs.withdraw),
                            (MsgStartInference, inference_msgs.start),
                            (MsgFinishInference, inference_msgs.finish)]:
        router.register(message, creator_signer, handle)
    epochs = EpochKeeper()
    validation = ValidationKeeper()
    tasks = Tasks(validation, inference, bank, epochs)
    inference_msgs.on_finished(tasks.on_finished)
    validation_msgs = ValidationMsgServer(validation, inference, epochs, tasks)
    for message, handle in [(MsgCommitSeed, validation_msgs.commit_seed),
                            (MsgClaimRewards, validation_msgs.claim_rewards),
                            (MsgValidation, validation_msgs.validation)]:
        router.register(message, creator_signer, handle)
    poc_msgs = PocMsgServer(epochs, inference, validation)
    router.register(MsgSubmitPoc, creator_signer, poc_msgs.submit)
    router.register(MsgPocValidation, creator_signer, poc_msgs.validate)
    validation_blocks = ValidationBlocks(validation, inference, epochs, tasks)
    # Weights first: the validation module fixes the new epoch's members from them.
    epochs.on_epoch_start(Weights(epochs, inference).epoch_start)
    # Then the draw's weights for the epoch, from the new weights.
    epochs.on_epoch_start(partial(inference_blocks.epoch_start, inference))
    epochs.on_epoch_start(validation_blocks.epoch_start)
    validation_blocks.on_judged(Settlement(epochs, inference, validation, bank).settle)
    gov = GovKeeper()
    power = VotingPower(gov, bank, epochs, validation)
    params_keepers = {"auth": auth, "bank": bank, "inference": inference, "epochs": epochs,
                      "validation": validation, "gov": gov}
    contents = Contents(params_keepers, inference, gov, bank)
    gov_msgs = GovMsgServer(gov, bank, contents, power)
    router.register(MsgSubmitProposal, proposer_signer, gov_msgs.submit)
    router.register(MsgDeposit, depositor_signer, gov_msgs.deposit)
    router.register(MsgVote, voter_signer, gov_msgs.vote)
    runner = TxRunner(router, AnteHandler(auth, bank), auth)
    steps = [("auth", lambda kv, s: auth_genesis.init_genesis(auth, kv, s)),
             ("bank", lambda kv, s: bank_genesis.init_genesis(bank, kv, s)),
             ("inference", lambda kv, s: inference_genesis.init_genesis(inference, kv, s)),
             ("epochs", lambda kv, s: epochs_genesis.init_genesis(epochs, kv, s)),
             ("validation", lambda kv, s: validation_genesis.init_genesis(validation, kv, s)),
             ("gov", lambda kv, s: gov_genesis.init_genesis(gov, kv, s))]
    return Modules(auth, bank, inference, epochs, validation, gov, power, params_keepers, router,
                   runner, steps,
                   begin_block_steps=[partial(inference_blocks.begin_block, inference),
                                      epochs.begin_block],
                   end_block_steps=[partial(inference_blocks.end_block, inference, bank),
                                    validation_blocks.end_block,
                                    GovBlocks(gov, bank, contents, power).end_block],
                   validator_set=ValidatorSet(inference, epochs))
