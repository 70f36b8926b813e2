"""What a message handler sees: the state to read and write, the block, gas and events."""

from dataclasses import dataclass, field

from chain.gas import GasKV, GasMeter
from chain.store import Overlay


@dataclass(frozen=True)
class Attribute:
    key: str
    value: str


@dataclass(frozen=True)
class Event:
    type: str
    attributes: tuple[Attribute, ...]


@dataclass
class BlockInfo:
    chain_id: str
    height: int
    time_ns: int


@dataclass
class Context:
    block: BlockInfo
    kv: GasKV
    events: list[Event] = field(default_factory=list)

    @classmethod
    def of(cls, block: BlockInfo, state: Overlay, meter: GasMeter) -> "Context":
        return cls(block, GasKV(state, meter))

    @property
    def gas(self) -> GasMeter:
        return self.kv.meter

    def emit(self, type_: str, **attributes: str) -> None:
        """Records an event; values are made valid UTF-8 here, since an event is serialized
        into the block's results and a value that cannot be (a lone surrogate from a user's
        JSON) must not stop the block."""
        self.events.append(Event(type_, tuple(
            Attribute(k, v.encode("utf-8", "replace").decode()) for k, v in attributes.items())))
