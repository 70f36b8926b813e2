"""What the epochs module needs from other modules, and nothing more.

The validation module builds on epochs (it reads epoch boundaries), so epochs reaches the
validation keeper only through ``ValidationKeeper`` below, never by importing it.
"""

from collections.abc import Iterator
from typing import Protocol

from chain.context import Context
from chain.gas import GasKV
from chain.store import KVReader
from inferchain_pb.inference.v1.inference_pb2 import Participant
from inferchain_pb.inference.v1.validation_pb2 import EpochMembers, ValidatorEpochRecord

State = GasKV | KVReader


class BankKeeper(Protocol):
    def send(self, ctx: Context, sender: bytes, recipient: bytes,
             coins: dict[str, int]) -> None: ...

    def mint(self, kv: GasKV, recipient: bytes, coins: dict[str, int]) -> None: ...

    def burn(self, kv: GasKV, holder: bytes, coins: dict[str, int]) -> None: ...


class InferenceKeeper(Protocol):
    def participant(self, state: State, addr: str) -> Participant | None: ...

    def participants(self, state: State) -> Iterator[Participant]: ...

    def set_participant(self, kv: GasKV, participant: Participant) -> None: ...

    def work_between(self, state: State, first: int, last: int) -> dict[bytes, int]: ...

    def clear_work(self, kv: GasKV, first: int, last: int) -> None: ...


class ValidationKeeper(Protocol):
    def members(self, state: State, epoch: int) -> EpochMembers | None: ...

    def record(self, state: State, epoch: int, addr: str) -> ValidatorEpochRecord: ...


class EpochHooks(Protocol):
    """What the epochs module announces; the app runs the modules' hooks in its order."""

    def epoch_start(self, ctx: Context, epoch: int) -> None: ...
