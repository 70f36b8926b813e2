"""Gas: what a transaction pays for, metered deterministically on every node.

The costs follow the Cosmos SDK's defaults (KVGasConfig and the auth ante handler), so gas
estimates from Cosmos tooling come out in the same range.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from chain.errors import OutOfGas
from chain.store import Overlay

READ_FLAT = 1000
READ_PER_BYTE = 3
WRITE_FLAT = 2000
WRITE_PER_BYTE = 30
DELETE_FLAT = 1000
ITER_NEXT_FLAT = 30
# Gas figures travel in ABCI's int64 fields: no limit may exceed this, and no meter counts past
# it (the Cosmos SDK refuses larger gas limits the same way).
MAX_GAS = (1 << 63) - 1


@dataclass
class GasMeter:
    """Counts gas against a limit; a limit of None meters without limit (simulation)."""

    limit: int | None
    used: int = 0

    def consume(self, amount: int, why: str) -> None:
        used = self.used + amount
        self.used = used = used if used < MAX_GAS else MAX_GAS
        if self.limit is not None and used > self.limit:
            raise OutOfGas(f"out of gas in {why}; gas wanted: {self.limit}, gas used: "
                           f"{self.used}")


class GasKV:
    """A key-value view that charges every read and write to a gas meter."""

    def __init__(self, state: Overlay, meter: GasMeter) -> None:
        self.state = state
        self.meter = meter

    def get(self, key: bytes) -> bytes | None:
        value = self.state.get(key)
        self.meter.consume(READ_FLAT + READ_PER_BYTE * (len(key) + len(value or b"")), "read")
        return value

    def set(self, key: bytes, value: bytes) -> None:
        self.meter.consume(WRITE_FLAT + WRITE_PER_BYTE * (len(key) + len(value)), "write")
        self.state.set(key, value)

    def delete(self, key: bytes) -> None:
        self.meter.consume(DELETE_FLAT, "delete")
        self.state.delete(key)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self.state.iterate(prefix):
            self.meter.consume(ITER_NEXT_FLAT + READ_PER_BYTE * (len(key) + len(value)),
                               "iterate")
            yield key, value
