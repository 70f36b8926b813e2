"""How modules lay their records out in the store: fixed-width integers in keys, and
protobuf messages as values.

Heights, epochs and ids go into keys as 8-byte big-endian integers so that a prefix scan
returns them in numeric order; messages are serialized deterministically so that the same
record always has the same bytes, hence the same app hash on every node.
"""

from typing import TypeVar

from google.protobuf.message import Message

from chain.gas import GasKV
from chain.store.overlay import KVReader

M = TypeVar("M", bound=Message)


def uint64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def load(state: GasKV | KVReader, key: bytes, message: type[M]) -> M | None:
    data = state.get(key)
    return None if data is None else message.FromString(data)


def save(kv: GasKV, key: bytes, message: Message) -> None:
    kv.set(key, message.SerializeToString(deterministic=True))


def due_under(state: GasKV | KVReader, prefix: bytes, height: int) -> list[bytes]:
    """The suffixes of the keys ``prefix + uint64(h) + suffix`` with ``h`` at or before
    ``height``, in key order: what an index by expiry height holds for that height."""
    due = []
    for key, _ in state.iterate(prefix):
        if int.from_bytes(key[len(prefix):len(prefix) + 8], "big") > height:
            break
        due.append(key[len(prefix) + 8:])
    return due


def ids_under(state: GasKV | KVReader, prefix: bytes, after_id: str = "") -> list[str]:
    """The ids that end the keys under ``prefix`` (an index's entries at one height), in key
    order, after ``after_id``: where a pass that stopped at ``after_id`` resumes."""
    after = after_id.encode()
    return [key[len(prefix):].decode() for key, _ in state.iterate(prefix)
            if not after or key[len(prefix):] > after]
