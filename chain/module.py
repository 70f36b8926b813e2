"""What a chain module is: everything it adds to the chain, declared in its ``module.py``.

A module (``chain/<name>/``) declares in one class, a subclass of ``Module``:
  - its messages (``messages``): each message type with the field naming its signer and the
    handler that executes it;
  - its queries (``queries``): named handlers bound to the RPCs of a gRPC service, whose
    paths, request and response types come from the service's proto descriptor;
  - the params it owns (``keeper``: ``params``/``set_params``), served by the Params query
    and changed by governance;
  - its genesis (``init_genesis``, ``export_genesis``);
  - its hooks (``HOOKS``): what it does at block and epoch boundaries and when another module
    announces an event. The app decides the order of each hook across modules
    (chain/modules.py), so the order of an epoch boundary's steps is written in one place.

``Module`` answers every member with "nothing" (no messages, no queries, hooks that do
nothing), as CometBFT's BaseApplication does for ABCI: a module writes only what it uses.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from chain.context import Context
from chain.gas import GasKV
from chain.params import ModuleParams, ParamsKeeper
from chain.store import KVReader
from inferchain_pb.inference.v1.inference_pb2 import Inference

MsgHandler = Callable[[Context, Message], None]
QueryHandler = Callable[[KVReader, Message], Message]

# Every hook a module may implement, in the order the app's hook table lists them.
HOOKS = ("begin_block", "end_block", "epoch_start", "epoch_judged", "inference_finished")


@dataclass(frozen=True)
class Msg:
    """A transaction message a module executes: its type, the string field holding the
    address that must sign it (as Cosmos' ``cosmos.msg.v1.signer`` option names it), and
    the handler."""

    message_type: type[Message]
    signer: str
    handle: MsgHandler

    def __post_init__(self) -> None:
        field = self.message_type.DESCRIPTOR.fields_by_name.get(self.signer)
        if field is None or field.type != FieldDescriptor.TYPE_STRING:
            raise TypeError(f"{self.message_type.DESCRIPTOR.full_name} has no string field "
                            f"{self.signer!r} to name its signer")

    @property
    def type_url(self) -> str:
        return "/" + self.message_type.DESCRIPTOR.full_name

    def signers(self, message: Message) -> list[str]:
        return [getattr(message, self.signer)]


@dataclass(frozen=True)
class Query:
    """One RPC of a gRPC query service, and the handler that answers it."""

    path: str
    request_type: type[Message]
    response_type: type[Message]
    handle: QueryHandler


def service_queries(service: ServiceDescriptor,
                    handlers: Mapping[str, QueryHandler]) -> list[Query]:
    """The queries answering ``handlers``' RPCs (by RPC name) of ``service``: paths and types
    come from the proto, so a handler bound to an RPC the service lacks fails at start-up."""
    missing = set(handlers) - set(service.methods_by_name)
    if missing:
        raise KeyError(f"{service.full_name} has no RPC {sorted(missing)}")
    queries = []
    for name, handle in handlers.items():
        method = service.methods_by_name[name]
        queries.append(Query(f"/{service.full_name}/{name}",
                             message_factory.GetMessageClass(method.input_type),
                             message_factory.GetMessageClass(method.output_type), handle))
    return queries


class Module:
    """A module's declaration; each member's default is that the module adds nothing."""

    name: ClassVar[str]

    def __init__(self, keeper: ParamsKeeper) -> None:
        # The keeper owns every key of the module's state, its params included.
        self.keeper = keeper

    def messages(self) -> list[Msg]:
        return []

    def queries(self, latest_height: Callable[[], int]) -> list[Query]:
        """``latest_height`` is the last committed height, for queries whose default is it."""
        return []

    def params(self, state: GasKV | KVReader) -> ModuleParams:
        return self.keeper.params(state)

    def init_genesis(self, kv: GasKV, section: dict) -> None:
        """Writes the module's state from its section of genesis' ``app_state``."""

    def export_genesis(self, state: KVReader) -> dict:
        """The module's section of ``app_state`` that ``init_genesis`` restores."""
        raise NotImplementedError(f"the {self.name} module does not export its genesis")

    # Hooks: the app runs each in the order its hook table gives (chain/modules.py).

    def begin_block(self, ctx: Context, block_hash: bytes) -> None:
        """Every block, before its transactions."""

    def end_block(self, ctx: Context) -> None:
        """Every block, after its transactions."""

    def epoch_start(self, ctx: Context, epoch: int) -> None:
        """In the first block of every epoch (announced by the epochs module)."""

    def epoch_judged(self, ctx: Context, epoch: int) -> None:
        """Once an epoch's validators are judged (announced by the validation module): what
        the epoch owed is known, and its rewards may be settled."""

    def inference_finished(self, ctx: Context, inference: Inference) -> None:
        """When an inference is FINISHED and paid for (announced by the inference module)."""

    def implements(self, hook: str) -> bool:
        """Whether this module does something at ``hook``."""
        return getattr(type(self), hook) is not getattr(Module, hook)
