"""Bank's part of genesis: params and initial balances (which create the accounts)."""

from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin

from chain.auth import address
from chain.bank import coins
from chain.bank.keeper import BankKeeper
from chain.bank.params import BankParams
from chain.errors import InvalidRequest
from chain.gas import GasKV


def init_genesis(keeper: BankKeeper, kv: GasKV, section: dict) -> None:
    keeper.set_params(kv, BankParams.from_dict(section.get("params", {})))
    seen: set[bytes] = set()
    for entry in section.get("balances", []):
        raw = address.decode(entry["address"])
        if raw in seen:
            raise InvalidRequest(f"genesis lists {entry['address']} twice")
        seen.add(raw)
        amounts = coins.parse(Coin(denom=c["denom"], amount=str(c["amount"]))
                              for c in entry["coins"])
        keeper.mint(kv, raw, amounts)
