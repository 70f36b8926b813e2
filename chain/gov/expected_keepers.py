"""What the gov module needs from other modules, and nothing more."""

from typing import Protocol

from chain.context import Context
from chain.gas import GasKV
from chain.store import KVReader
from inferchain_pb.inference.v1.inference_pb2 import Model
from inferchain_pb.inference.v1.validation_pb2 import EpochMembers

State = GasKV | KVReader


class BankKeeper(Protocol):
    def balance(self, kv: State, raw_address: bytes, denom: str) -> int: ...

    def supply(self, kv: State, denom: str) -> int: ...

    def send(self, ctx: Context, sender: bytes, recipient: bytes,
             coins: dict[str, int]) -> None: ...

    def burn(self, kv: GasKV, holder: bytes, coins: dict[str, int]) -> None: ...


class InferenceKeeper(Protocol):
    """The model registry, which proposals change."""

    def model(self, state: State, model_id: str) -> Model | None: ...

    def retired_model(self, state: State, model_id: str) -> Model | None: ...

    def set_model(self, kv: GasKV, model: Model) -> None: ...

    def retire_model(self, kv: GasKV, model: Model) -> None: ...


class EpochKeeper(Protocol):
    def epoch_of(self, state: State, height: int) -> int: ...


class ValidationKeeper(Protocol):
    def members(self, state: State, epoch: int) -> EpochMembers | None: ...
