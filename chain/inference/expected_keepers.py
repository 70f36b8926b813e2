"""What the inference module needs from other modules, and nothing more."""

from typing import Protocol

from chain.context import Context
from chain.gas import GasKV
from chain.store import KVReader
from inferchain_pb.inference.v1.inference_pb2 import Inference


class BankKeeper(Protocol):
    def balance(self, kv: GasKV | KVReader, raw_address: bytes, denom: str) -> int: ...

    def send(self, ctx: Context, sender: bytes, recipient: bytes,
             coins: dict[str, int]) -> None: ...

    def burn(self, kv: GasKV, holder: bytes, coins: dict[str, int]) -> None: ...


class InferenceHooks(Protocol):
    """What the inference module announces; the app runs the modules' hooks in its order."""

    def inference_finished(self, ctx: Context, inference: Inference) -> None: ...
