"""Auth's part of genesis: its params, and in an exported genesis the accounts as they were
(numbers, public keys, sequences) and the next account number; a new chain's accounts come
into being with their first coins."""

from dataclasses import asdict
from typing import Any

from cosmpy.protos.cosmos.auth.v1beta1.auth_pb2 import BaseAccount

from chain.auth import address
from chain.auth.keeper import ACCOUNT_PREFIX, NEXT_NUMBER, AuthKeeper
from chain.auth.params import KEY as PARAMS_KEY
from chain.auth.params import AuthParams
from chain.gas import GasKV
from chain.genesis_records import Messages, Single, Uint, export_records, import_records
from chain.store import KVReader

RECORDS = (
    Messages("accounts", ACCOUNT_PREFIX, BaseAccount, lambda a: address.decode(a.address)),
    Single("next_account_number", NEXT_NUMBER, Uint(8)),
)
# Keys the module's own sections carry (params and the like) rather than records.
STRUCTURED = (PARAMS_KEY,)


def init_genesis(keeper: AuthKeeper, kv: GasKV, section: dict) -> None:
    keeper.set_params(kv, AuthParams.from_dict(section.get("params", {})))
    import_records(kv, section, RECORDS)


def export_genesis(keeper: AuthKeeper, state: KVReader) -> dict[str, Any]:
    return {"params": asdict(keeper.params(state)),
            **export_records(state, "auth", RECORDS, structured=STRUCTURED)}
