"""Validation's part of genesis: params and any starting reputations.

Starting reputations let a network that migrates from another one (or a test) begin with
participants who already earned trust, instead of checking everyone at p_max. An exported
genesis carries instead every record the module keeps: epoch members, seed commitments,
tasks and their queues, executor stats, validator records, judging and summary
cursors, vote bonds and the recent blocks' random values votes draw from.
"""

from dataclasses import asdict
from typing import Any

from chain.auth import address
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.genesis_records import (
    Hex,
    Keyed,
    Messages,
    Text,
    Uint,
    export_records,
    import_records,
    names,
)
from chain.scales import PPM
from chain.store import KVReader
from chain.store.records import uint64
from chain.validation.keeper import (
    BLOCK_VALUE,
    BOND,
    COMMIT,
    FINISHED,
    JUDGING,
    MEMBERS,
    RECORD,
    STATS,
    SUMMARIZING,
    TASK,
    VOTE,
    WINDOW,
    ValidationKeeper,
)
from chain.validation.params import KEY as PARAMS_KEY
from chain.validation.params import ValidationParams
from inferchain_pb.inference.v1.validation_pb2 import (
    EpochMembers,
    ExecutorStats,
    JudgingCursor,
    SeedCommitment,
    SummaryCursor,
    ValidationTask,
    ValidatorEpochRecord,
    VoteBond,
)

_BY_HEIGHT = (("height", Uint()), ("inference_id", Text()))
RECORDS = (
    Messages("members", MEMBERS, EpochMembers, lambda m: uint64(m.epoch)),
    Messages("seed_commitments", COMMIT, SeedCommitment,
             lambda c: uint64(c.epoch) + address.decode(c.address)),
    Messages("tasks", TASK, ValidationTask, lambda t: t.inference_id.encode()),
    Keyed("finished_index", FINISHED, _BY_HEIGHT),
    Keyed("window_queue", WINDOW, _BY_HEIGHT),
    Keyed("vote_queue", VOTE, _BY_HEIGHT),
    Messages("executor_stats", STATS, ExecutorStats, lambda s: address.decode(s.address)),
    Messages("validator_records", RECORD, ValidatorEpochRecord,
             lambda r: uint64(r.epoch) + address.decode(r.address)),
    Messages("judging", JUDGING, JudgingCursor, lambda c: uint64(c.epoch)),
    Messages("summarizing", SUMMARIZING, SummaryCursor, lambda c: uint64(c.epoch)),
    Messages("vote_bonds", BOND, VoteBond, lambda b: uint64(b.epoch) + address.decode(
        b.member) + b"/" + b.inference_id.encode()),
    Keyed("block_values", BLOCK_VALUE, (("height", Uint()),), "value", Hex()),
)
# Keys the module's own sections carry (params and the like) rather than records.
STRUCTURED = (PARAMS_KEY,)


def init_genesis(keeper: ValidationKeeper, kv: GasKV, section: dict) -> None:
    unknown = set(section) - {"params", "reputations"} - names(RECORDS)
    if unknown:
        raise InvalidRequest(f"validation genesis: unknown fields {sorted(unknown)}")
    keeper.set_params(kv, ValidationParams.from_dict(section.get("params", {})))
    import_records(kv, section, RECORDS)
    for raw in section.get("reputations", []):
        value = raw.get("reputation_ppm")
        if type(value) is not int or not 0 <= value <= PPM or "address" not in raw:
            raise InvalidRequest(f"validation genesis reputation {raw!r}: needs an address "
                                 f"and reputation_ppm in [0, {PPM}]")
        stats = keeper.stats(kv, raw["address"])
        stats.reputation_ppm = value
        keeper.set_stats(kv, stats)


def export_genesis(keeper: ValidationKeeper, state: KVReader) -> dict[str, Any]:
    return {"params": asdict(keeper.params(state)),
            **export_records(state, "validation", RECORDS, structured=STRUCTURED)}
