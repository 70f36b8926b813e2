"""Runs the modules the app lists: routes their messages, serves their queries and params,
applies their genesis, and runs their hooks in the order the app declares.

Block steps (begin- and end-block hooks) run on no user's gas, so each module's step is
contained like a transaction: it runs on its own branch of the block's state, and if it
raises, its changes are discarded, the error is logged, and the block goes on. The same input
raises on every node, so every node discards the same changes; only failures of the machine
stop the node. The other hooks (an epoch's start, its judgement, a finished inference) run
inside the step or message that announces them, and share its fate.
"""

import logging
from collections.abc import Callable, Mapping, Sequence

import grpc

from chain.context import Context
from chain.errors import ENVIRONMENT_ERRORS, InvalidRequest
from chain.gas import GasKV
from chain.module import HOOKS, Module, service_queries
from chain.query import QueryError, QueryRouter
from chain.router import Router
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2
from inferchain_pb.inference.v1.inference_pb2 import Inference

log = logging.getLogger(__name__)

# The module whose params the Params query answers when the request names none.
DEFAULT_PARAMS_MODULE = "inference"


class Hooks:
    """Runs each hook on the modules the app's hook table names, in that order.

    Modules that announce an event (the epochs module an epoch's start, validation an
    epoch's judgement, inference a finished inference) are given this object before the
    modules exist; ``bind`` then resolves the table against them, refusing a table that
    names a module that does not implement the hook or leaves out one that does.
    """

    def __init__(self, order: Mapping[str, Sequence[str]]) -> None:
        unknown = set(order) - set(HOOKS)
        if unknown:
            raise ValueError(f"hook table names unknown hooks {sorted(unknown)}")
        self._order = order
        self._modules: dict[str, list[Module]] = {}

    def bind(self, modules: Sequence[Module]) -> None:
        by_name = {m.name: m for m in modules}
        for hook in HOOKS:
            listed = list(self._order.get(hook, ()))
            implementing = {m.name for m in modules if m.implements(hook)}
            if set(listed) != implementing or len(set(listed)) != len(listed):
                raise ValueError(f"hook {hook}: the table lists {listed}, the modules that "
                                 f"implement it are {sorted(implementing)}")
            self._modules[hook] = [by_name[name] for name in listed]

    def modules(self, hook: str) -> list[Module]:
        return self._modules[hook]

    def epoch_start(self, ctx: Context, epoch: int) -> None:
        for module in self._modules["epoch_start"]:
            module.epoch_start(ctx, epoch)

    def epoch_judged(self, ctx: Context, epoch: int) -> None:
        for module in self._modules["epoch_judged"]:
            module.epoch_judged(ctx, epoch)

    def inference_finished(self, ctx: Context, inference: Inference) -> None:
        for module in self._modules["inference_finished"]:
            module.inference_finished(ctx, inference)


class ModuleManager:
    def __init__(self, modules: Sequence[Module], hooks: Hooks) -> None:
        names = [m.name for m in modules]
        if len(set(names)) != len(names):
            raise ValueError(f"a module is listed twice: {names}")
        self.modules = list(modules)
        self._by_name = {m.name: m for m in modules}
        self.hooks = hooks
        hooks.bind(self.modules)
        self.router = Router()
        for module in self.modules:
            for message in module.messages():
                self.router.register(message)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.modules]

    def register_queries(self, queries: QueryRouter, latest_height: Callable[[], int]) -> None:
        for module in self.modules:
            for query in module.queries(latest_height):
                queries.register(query.path, query.request_type, query.response_type,
                                 query.handle)
        for query in service_queries(query_pb2.DESCRIPTOR.services_by_name["Query"],
                                     {"Params": self.params}):
            queries.register(query.path, query.request_type, query.response_type,
                             query.handle)

    def params(self, state: KVReader, req: query_pb2.QueryParamsRequest
               ) -> query_pb2.QueryParamsResponse:
        """Any module's params, as each module declares them."""
        module = self._by_name.get(req.module or DEFAULT_PARAMS_MODULE)
        if module is None:
            raise QueryError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"no params for module {req.module!r}; modules with params: "
                             f"{', '.join(sorted(self._by_name))}")
        return query_pb2.QueryParamsResponse(
            params_json=module.params(state).to_bytes().decode())

    def init_genesis(self, kv: GasKV, app_state: dict) -> None:
        unknown = set(app_state) - set(self._by_name)
        if unknown:
            raise InvalidRequest(f"genesis app_state names unknown modules: {sorted(unknown)}")
        for module in self.modules:
            module.init_genesis(kv, app_state.get(module.name, {}))

    def export_genesis(self, state: KVReader) -> dict:
        """Every module's genesis section, in the order ``init_genesis`` writes them back."""
        return {module.name: module.export_genesis(state) for module in self.modules}

    def begin_block(self, ctx: Context, block_hash: bytes) -> None:
        for module in self.hooks.modules("begin_block"):
            run_contained(ctx, f"{module.name} begin_block",
                          lambda step, m=module: m.begin_block(step, block_hash))

    def end_block(self, ctx: Context) -> None:
        for module in self.hooks.modules("end_block"):
            run_contained(ctx, f"{module.name} end_block", module.end_block)


def run_contained(ctx: Context, name: str, run: Callable[[Context], None]) -> None:
    """Runs one block step on a branch that is kept only if the step completes."""
    branch = ctx.kv.state.branch()
    step_ctx = Context(ctx.block, GasKV(branch, ctx.gas))
    try:
        run(step_ctx)
    except ENVIRONMENT_ERRORS:
        raise
    except Exception:
        log.exception("block step %s failed at height %d; its changes are discarded and the "
                      "block goes on", name, ctx.block.height)
        return
    branch.write()
    ctx.events.extend(step_ctx.events)
