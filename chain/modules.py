"""The modules the application is built from, and the order their hooks run in.

Adding a module means writing its ``chain/<name>/module.py`` (docs/adding-a-module.md) and
listing it in ``build`` below, with its hooks in ``HOOK_ORDER``; nothing else in the
application changes. Keepers are made first and handed to the modules that need them, each
module seeing another only through the narrow interface of its ``expected_keepers.py``.
"""

from dataclasses import dataclass

from chain.auth.keeper import AuthKeeper
from chain.auth.module import AuthModule
from chain.bank.keeper import BankKeeper
from chain.bank.module import BankModule
from chain.epochs.beacon import Beacon
from chain.epochs.keeper import EpochKeeper
from chain.epochs.module import EpochsModule
from chain.epochs.validator_set import ValidatorSet
from chain.gov.keeper import GovKeeper
from chain.gov.module import GovModule
from chain.inference.keeper import InferenceKeeper
from chain.inference.module import InferenceModule
from chain.module_manager import Hooks, ModuleManager
from chain.params import ParamsKeeper
from chain.tx.ante import AnteHandler
from chain.tx.execute import TxRunner
from chain.validation.keeper import ValidationKeeper
from chain.validation.module import ValidationModule

# Which modules run each hook, in order. Read top to bottom, this is a block's life:
HOOK_ORDER = {
    # Before the block's txs: inference records the block hash (it seeds executor draws),
    # then epochs records the PoC seeds and, in an epoch's first block, starts the epoch;
    # validation keeps the block's value for the votes that will draw from it.
    "begin_block": ("inference", "epochs", "validation"),
    # The epoch boundary, in an epoch's first block: the weights from the last epoch's proof
    # of compute, then the draw's weights fixed from them, then the last epoch's reputations
    # updated and the new epoch's members fixed from the new weights.
    "epoch_start": ("epochs", "inference", "validation"),
    # After a Finish completes and charges an inference: its validation task opens.
    "inference_finished": ("validation",),
    # After the block's txs: lone halves expire, then validation closes windows and votes
    # and judges validators, then gov closes deposit and voting periods.
    "end_block": ("inference", "validation", "gov"),
    # Once validation has judged an epoch's validators: the epoch's coins are settled.
    "epoch_judged": ("epochs",),
}


@dataclass
class Modules:
    """The app's keepers by module (as the Cosmos SDK's app holds them), the manager that
    runs the modules, and what the ABCI layer needs beyond them."""

    auth: AuthKeeper
    bank: BankKeeper
    inference: InferenceKeeper
    epochs: EpochKeeper
    validation: ValidationKeeper
    gov: GovKeeper
    manager: ModuleManager
    runner: TxRunner
    # CometBFT's validator set: powers follow epoch weights (FinalizeBlock's updates).
    validator_set: ValidatorSet
    # Each block's random value, proved by its proposer (Prepare/ProcessProposal's rule).
    beacon: Beacon


def build() -> Modules:
    auth, inference, epochs = AuthKeeper(), InferenceKeeper(), EpochKeeper()
    bank, validation, gov = BankKeeper(auth), ValidationKeeper(), GovKeeper()
    hooks = Hooks(HOOK_ORDER)
    # Every module's params keeper, for gov's parameter changes: filled once all exist.
    params: dict[str, ParamsKeeper] = {}
    epochs_module = EpochsModule(epochs, inference, validation, bank, hooks)
    manager = ModuleManager([
        AuthModule(auth),
        BankModule(bank),
        InferenceModule(inference, bank, hooks),
        epochs_module,
        ValidationModule(validation, inference, epochs, bank, hooks),
        GovModule(gov, bank, inference, epochs, validation, params),
    ], hooks)
    params.update({module.name: module.keeper for module in manager.modules})
    runner = TxRunner(manager.router, AnteHandler(auth, bank), auth)
    return Modules(auth, bank, inference, epochs, validation, gov, manager, runner,
                   epochs_module.validator_set, Beacon())
