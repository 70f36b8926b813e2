"""Probe counts (docs/design.md §10.4): the probes each member committed, until its epoch is
judged.

Rewards follow weight, scaled by what a member served of its draws, so a model without demand
draws nobody and its members would be paid in full without serving. Members' probes give
every such model draws; the chain cannot tell who ought to have sent a request, so it counts
what each member committed as a probe (an API-key commitment naming a model,
chain/inference/key_commitments.py) and the epoch's judging holds each member to the quota
(chain/validation/judging.py). A probe counts when committed, served or not: its forfeit,
burned if no start follows, costs more than a served probe, so committing without sending
never pays, and an honest member whose probes no live pick could serve is not made lazy for
it. Only a member is counted (a participant with weight: weights are fixed at each epoch's
first block with its members, and a member that withdraws keeps its weight, and owes its
quota, until the epoch ends), so every count is judged and dropped with its epoch: state
holds at most two epochs' counts.

Keys:
  inference/probe/<agent>/<height><model id>   probes committed at that height (uint64)
"""

from collections.abc import Iterator

from chain.auth import address
from chain.gas import GasKV
from chain.store import KVReader
from chain.store.records import uint64
from inferchain_pb.inference.v1.query_pb2 import ProbeCount

PROBE = b"inference/probe/"


def _prefix(agent: str) -> bytes:
    return PROBE + address.decode(agent) + b"/"


def count(kv: GasKV, agent: str, height: int, model_id: str, probes: int) -> None:
    """Adds ``probes`` committed by ``agent`` at ``height`` for ``model_id``."""
    key = _prefix(agent) + uint64(height) + model_id.encode()
    known = kv.get(key)
    kv.set(key, uint64((int.from_bytes(known, "big") if known else 0) + probes))


def _entries(state: GasKV | KVReader, agent: str) -> Iterator[tuple[bytes, int, str, int]]:
    """Each of ``agent``'s counts as (key, height, model id, probes), by ascending height."""
    prefix = _prefix(agent)
    for key, value in state.iterate(prefix):
        yield (key, int.from_bytes(key[len(prefix):len(prefix) + 8], "big"),
               key[len(prefix) + 8:].decode(), int.from_bytes(value, "big"))


def committed(state: GasKV | KVReader, agent: str) -> list[ProbeCount]:
    """What ``agent`` committed that no judging has taken yet, by height and model."""
    return [ProbeCount(height=height, model_id=model_id, count=made)
            for _, height, model_id, made in _entries(state, agent)]


def take(kv: GasKV, agent: str, first: int, last: int) -> dict[str, int]:
    """The probes ``agent`` committed from height ``first`` to ``last``, by model; drops every
    count at or before ``last`` (its epoch is judged)."""
    made: dict[str, int] = {}
    done = []
    for key, height, model_id, probes in _entries(kv, agent):
        if height > last:
            break
        done.append(key)
        if height >= first:
            made[model_id] = made.get(model_id, 0) + probes
    for key in done:
        kv.delete(key)
    return made
