"""What a message handler sees: the state to read and write, the block, gas and events."""

from dataclasses import dataclass, field
from typing import NamedTuple

from chain.gas import GasKV, GasMeter
from chain.store import Overlay


# Named tuples rather than frozen dataclasses: a block of inference pairs emits a few
# thousand attributes, and a frozen dataclass costs several times as much to build.
class Attribute(NamedTuple):
    key: str
    value: str


class Event(NamedTuple):
    type: str
    attributes: tuple[Attribute, ...]


def _serializable(value: str) -> str:
    """``value`` made valid UTF-8: an event is serialized into the block's results, and a
    value that cannot be (a lone surrogate from a user's JSON) must not stop the block."""
    return value if value.isascii() else value.encode("utf-8", "replace").decode()


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
        """Records an event, its values made valid UTF-8."""
        self.events.append(Event(type_, tuple(
            [Attribute(k, _serializable(v)) for k, v in attributes.items()])))
