"""The modules the application is built from, wired once: keepers, message routes, genesis.

Adding a module means adding it here (its keeper, its routes, its genesis step); nothing else
in the application changes.
"""

from collections.abc import Callable
from dataclasses import dataclass

from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend

from chain.auth import genesis as auth_genesis
from chain.auth import query as auth_query
from chain.auth.keeper import AuthKeeper
from chain.bank import genesis as bank_genesis
from chain.bank import query as bank_query
from chain.bank.keeper import BankKeeper
from chain.bank.msg_server import BankMsgServer
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.query import QueryRouter
from chain.router import Router
from chain.tx.ante import AnteHandler
from chain.tx.execute import TxRunner


@dataclass
class Modules:
    auth: AuthKeeper
    bank: BankKeeper
    router: Router
    runner: TxRunner
    genesis_steps: list[tuple[str, Callable[[GasKV, dict], None]]]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.genesis_steps]

    def register_queries(self, queries: QueryRouter) -> None:
        auth_query.register(queries, self.auth)
        bank_query.register(queries, self.bank)

    def init_genesis(self, kv: GasKV, app_state: dict) -> None:
        unknown = set(app_state) - {name for name, _ in self.genesis_steps}
        if unknown:
            raise InvalidRequest(f"genesis app_state names unknown modules: {sorted(unknown)}")
        for name, step in self.genesis_steps:
            step(kv, app_state.get(name, {}))


def build() -> Modules:
    auth = AuthKeeper()
    bank = BankKeeper(auth)
    router = Router()
    bank_msgs = BankMsgServer(bank)
    router.register(MsgSend, bank_msgs.send_signers, bank_msgs.send)
    runner = TxRunner(router, AnteHandler(auth, bank), auth)
    steps = [("auth", lambda kv, s: auth_genesis.init_genesis(auth, kv, s)),
             ("bank", lambda kv, s: bank_genesis.init_genesis(bank, kv, s))]
    return Modules(auth, bank, router, runner, steps)
