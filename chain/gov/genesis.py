"""Gov's part of genesis: its params; proposals only come from transactions, so only an
exported genesis carries them, with their deposits, votes, indexes and queues, the next
proposal id and the last approved upgrade plan."""

from dataclasses import asdict
from typing import Any

from chain.auth import address
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.genesis_records import (
    Keyed,
    Messages,
    Single,
    Uint,
    export_records,
    import_records,
    names,
)
from chain.gov.keeper import (
    DEPOSIT,
    DEPOSIT_END,
    NEXT_ID,
    PROPOSAL,
    STATUS,
    UPGRADE,
    VOTE,
    VOTING_END,
    GovKeeper,
)
from chain.gov.params import KEY as PARAMS_KEY
from chain.gov.params import GovParams
from chain.store import KVReader
from chain.store.records import uint64
from inferchain_pb.inference.v1.gov_pb2 import Deposit, Proposal, SoftwareUpgrade, Vote

_QUEUE = (("height", Uint()), ("proposal_id", Uint()))
RECORDS = (
    Single("next_proposal_id", NEXT_ID, Uint()),
    Messages("proposals", PROPOSAL, Proposal, lambda p: uint64(p.id)),
    Keyed("status_index", STATUS, (("status", Uint(1)), ("proposal_id", Uint()))),
    Keyed("deposit_queue", DEPOSIT_END, _QUEUE),
    Keyed("voting_queue", VOTING_END, _QUEUE),
    Messages("deposits", DEPOSIT, Deposit,
             lambda d: uint64(d.proposal_id) + address.decode(d.depositor)),
    Messages("votes", VOTE, Vote, lambda v: uint64(v.proposal_id) + address.decode(v.voter)),
    Single("upgrade_plan", UPGRADE, SoftwareUpgrade),
)
# Keys the module's own sections carry (params and the like) rather than records.
STRUCTURED = (PARAMS_KEY,)


def init_genesis(keeper: GovKeeper, kv: GasKV, section: dict) -> None:
    unknown = set(section) - {"params"} - names(RECORDS)
    if unknown:
        raise InvalidRequest(f"gov genesis: unknown fields {sorted(unknown)}")
    keeper.set_params(kv, GovParams.from_dict(section.get("params", {})))
    import_records(kv, section, RECORDS)


def export_genesis(keeper: GovKeeper, state: KVReader) -> dict[str, Any]:
    return {"params": asdict(keeper.params(state)),
            **export_records(state, "gov", RECORDS, structured=STRUCTURED)}
