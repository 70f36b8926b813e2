"""What a message handler sees: the state to read and write, the block, gas and events."""

from dataclasses import dataclass, field

from chain.gas import GasKV, GasMeter
from chain.store import Overlay

# An event as a handler emitted it: its type and its attributes, keys to values. A plain
# tuple holding the emit call's own keyword dict: a block of sends or inference pairs emits
# thousands, and building any richer object for each cost a tenth of the block.
Event = tuple[str, dict[str, str]]


def serializable(value: str) -> str:
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
        """Records an event; its values are made valid UTF-8 where it is serialized."""
        self.events.append((type_, attributes))
