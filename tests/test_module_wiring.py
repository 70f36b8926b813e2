"""How the app is put together: the ABCI method table, the modules' declarations, the hook
order; checked in-process, without blocks."""

import pytest
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.tendermint.abci import types_pb2 as abci

from chain.abci.application import METHODS, BaseApplication
from chain.abci.server import handle
from chain.app import Application
from chain.auth.keeper import AuthKeeper
from chain.auth.module import AuthModule
from chain.bank.keeper import BankKeeper
from chain.bank.module import BankModule
from chain.context import Context
from chain.module import Module, Msg, service_queries
from chain.module_manager import Hooks, ModuleManager
from chain.modules import build
from chain.query import QueryRouter
from chain.store import Store
from inferchain_pb.inference.v1 import query_pb2

# The ABCI methods the chain answers itself; every other keeps BaseApplication's answer.
IMPLEMENTED = {"info", "init_chain", "check_tx", "prepare_proposal", "process_proposal",
               "finalize_block", "commit", "query", "list_snapshots", "offer_snapshot",
               "load_snapshot_chunk", "apply_snapshot_chunk"}

# Every query path the modules serve: clients and API nodes call them by these names.
PATHS = {
    "/cosmos.auth.v1beta1.Query/Account", "/cosmos.auth.v1beta1.Query/Params",
    "/cosmos.bank.v1beta1.Query/Balance", "/cosmos.bank.v1beta1.Query/AllBalances",
    "/cosmos.bank.v1beta1.Query/SupplyOf",
    *(f"/inference.v1.Query/{name}" for name in [
        "Allowance", "KeyRequestCommitment", "Probes", "PassNotice", "PassNotices", "Participant",
        "Participants", "Model", "Models",
        "Inference",
        "Inferences", "Account", "Draw", "Params", "Epoch", "ValidationTask",
        "ValidationTasks", "PendingVotes", "ExecutorStats", "SeedCommitment",
        "ValidatorRecord", "Proposals", "Proposal", "ProposalVotes", "ProposalDeposits",
        "ProposalTally", "UpgradePlan", "ConsensusValidators", "PocSubmissions", "PocNonces",
        "EpochSettlement"]),
}


def test_the_application_overrides_exactly_the_abci_methods_it_implements():
    """A renamed method would silently fall back to the default answer; this names it."""
    overridden = {kind for kind, method in METHODS.items()
                  if getattr(Application, kind) is not method}
    assert overridden == IMPLEMENTED


@pytest.mark.parametrize("kind", sorted(METHODS))
def test_every_abci_request_is_answered_by_the_base_application(kind):
    field = abci.Request.DESCRIPTOR.fields_by_name[kind]
    request = abci.Request(**{kind: field.message_type._concrete_class()})
    assert handle(BaseApplication(), request).WhichOneof("value") == kind


def test_the_modules_serve_every_query_path_clients_use():
    queries = QueryRouter(app=None)
    build().manager.register_queries(queries, lambda: 1)
    assert set(queries.methods) == PATHS


def test_every_message_names_a_string_field_as_its_signer():
    with pytest.raises(TypeError, match="sender"):
        Msg(MsgSend, "sender", lambda ctx, msg: None)
    route = Msg(MsgSend, "from_address", lambda ctx, msg: None)
    assert route.signers(MsgSend(from_address="infer1x")) == ["infer1x"]


def test_a_query_bound_to_an_rpc_its_service_lacks_is_refused():
    with pytest.raises(KeyError, match="Nothing"):
        service_queries(query_pb2.DESCRIPTOR.services_by_name["Query"],
                        {"Nothing": lambda state, req: req})


def test_the_hook_table_lists_exactly_the_modules_that_implement_each_hook():
    auth = AuthKeeper()
    modules = [AuthModule(auth), BankModule(BankKeeper(auth))]
    with pytest.raises(ValueError, match="end_block"):
        ModuleManager(modules, Hooks({"end_block": ("bank",)}))

    class Ticking(Module):
        name = "ticking"

        def end_block(self, ctx: Context) -> None:
            pass

    with pytest.raises(ValueError, match="ticking"):
        ModuleManager([*modules, Ticking(auth)], Hooks({}))
    assert ModuleManager([*modules, Ticking(auth)], Hooks({"end_block": ("ticking",)}))


def test_the_epoch_boundary_runs_in_the_declared_order():
    """Weights first, then the draw's weights from them, then the members from both."""
    app = Application(Store.memory())
    assert [m.name for m in app.modules.manager.hooks.modules("epoch_start")] == \
        ["epochs", "inference", "validation"]
