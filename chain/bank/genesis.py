"""Bank's part of genesis: params and balances (which create the accounts that auth's section
does not list), and in an exported genesis the supply, which must equal the balances' sum."""

from collections import defaultdict
from dataclasses import asdict
from typing import Any

from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin

from chain.auth import address
from chain.bank import coins
from chain.bank.keeper import BALANCE_PREFIX, SUPPLY_PREFIX, BankKeeper
from chain.bank.params import KEY as PARAMS_KEY
from chain.bank.params import BankParams
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.genesis_records import (
    AddressThenSlash,
    Amount,
    Keyed,
    Text,
    UnexportedState,
    export_records,
    import_records,
)
from chain.store import KVReader

BALANCES = Keyed("balances", BALANCE_PREFIX, (("address", AddressThenSlash()), ("denom", Text())),
                 "amount", Amount())
SUPPLY = Keyed("supply", SUPPLY_PREFIX, (("denom", Text()),), "amount", Amount())
RECORDS = (BALANCES, SUPPLY)
# Keys the module's own sections carry (params and the like) rather than records.
STRUCTURED = (PARAMS_KEY,)


def init_genesis(keeper: BankKeeper, kv: GasKV, section: dict) -> None:
    keeper.set_params(kv, BankParams.from_dict(section.get("params", {})))
    seen: set[bytes] = set()
    minted: set[str] = set()
    for entry in section.get("balances", []):
        raw = address.decode(entry["address"])
        if raw in seen:
            raise InvalidRequest(f"genesis lists {entry['address']} twice")
        seen.add(raw)
        amounts = coins.parse(Coin(denom=c["denom"], amount=str(c["amount"]))
                              for c in entry["coins"])
        keeper.mint(kv, raw, amounts)
        minted.update(amounts)
    if "supply" in section:
        _check_supply(keeper, kv, section["supply"], minted)


def _check_supply(keeper: BankKeeper, kv: GasKV, supply: list, minted: set[str]) -> None:
    """Minting the balances made the supply; an exported genesis states it too, and the two
    must agree. A denom burned to nothing keeps its zero supply record, which only the
    statement can bring back."""
    stated = {entry["denom"]: entry["amount"] for entry in supply}
    if minted - set(stated):
        raise InvalidRequest(f"genesis supply leaves out {sorted(minted - set(stated))}")
    for denom, amount in stated.items():
        if str(keeper.supply(kv, denom)) != amount:
            raise InvalidRequest(f"genesis supply of {denom} is {amount}, its balances sum to "
                                 f"{keeper.supply(kv, denom)}")
    import_records(kv, {"supply": [e for e in supply if e["denom"] not in minted]}, [SUPPLY])


def export_genesis(keeper: BankKeeper, state: KVReader) -> dict[str, Any]:
    records = export_records(state, "bank", RECORDS, structured=STRUCTURED)
    by_address: dict[str, list[dict]] = defaultdict(list)
    for entry in records.get("balances", []):
        if entry["amount"] == "0":
            raise UnexportedState(f"bank: a zero balance of {entry['denom']} is stored for "
                                  f"{entry['address']}; genesis balances are positive")
        by_address[entry["address"]].append({"denom": entry["denom"],
                                             "amount": entry["amount"]})
    return {"params": asdict(keeper.params(state)),
            "balances": [{"address": owner, "coins": held}
                         for owner, held in by_address.items()],
            "supply": records.get("supply", [])}
