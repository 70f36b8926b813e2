"""What the validation module needs from other modules, and nothing more."""

from collections.abc import Iterator
from typing import Protocol

from chain.context import Context
from chain.epochs.params import EpochsParams
from chain.gas import GasKV
from chain.store import KVReader
from inferchain_pb.inference.v1.epochs_pb2 import Epoch, PocSubmission
from inferchain_pb.inference.v1.inference_pb2 import Inference, Model, Participant

State = GasKV | KVReader


class BankKeeper(Protocol):
    def send(self, ctx: Context, sender: bytes, recipient: bytes,
             coins: dict[str, int]) -> None: ...


class EpochKeeper(Protocol):
    def params(self, state: State) -> EpochsParams: ...

    def epoch_of(self, state: State, height: int) -> int: ...

    def start_of(self, state: State, epoch: int) -> int: ...

    def current(self, state: State, height: int) -> Epoch: ...

    def submissions(self, state: State, epoch: int) -> Iterator[PocSubmission]: ...


class InferenceKeeper(Protocol):
    def participant(self, state: State, addr: str) -> Participant | None: ...

    def participants(self, state: State) -> Iterator[Participant]: ...

    def set_participant(self, kv: GasKV, participant: Participant) -> None: ...

    def model(self, state: State, model_id: str) -> Model | None: ...

    def inference(self, state: State, inference_id: str) -> Inference | None: ...

    def save_inference(self, kv: GasKV, inference: Inference, height: int,
                       previous: Inference | None) -> None: ...

    def block_hash(self, state: State, height: int) -> bytes | None: ...

    def work_at(self, state: State, height: int, addr: bytes) -> int: ...

    def add_work(self, kv: GasKV, height: int, addr: bytes, amount: int) -> None: ...

    def allowance(self, state: State, developer: bytes, agent: bytes) -> int: ...

    def set_allowance(self, kv: GasKV, developer: bytes, agent: bytes, amount: int) -> None: ...


class ValidationHooks(Protocol):
    """What the validation module announces; the app runs the modules' hooks in its order."""

    def epoch_judged(self, ctx: Context, epoch: int) -> None: ...
