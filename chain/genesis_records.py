"""The typed form in which a module's genesis carries the records it keeps beyond its params.

A module lists its record kinds, each a store prefix and how its keys and values read:
``Messages`` (a protobuf record whose key follows from the record itself, carried as protobuf
JSON), ``Keyed`` (a key of typed parts such as heights and addresses, with an optional scalar
or protobuf value) and ``Single`` (one fixed key). Export writes every record of a kind under
the kind's name in the module's genesis section, and import writes the very same bytes back,
so a chain started from an export has the exported state key for key.

Export refuses, naming the key, any record of the module that no kind (or the module's own
structured sections) covers, and any record that would not come back byte for byte: a record
the genesis cannot carry must stop the export, not vanish from the new chain.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import Message

from chain.auth import address
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.store import KVReader


class UnexportedState(RuntimeError):
    """A stored record the module's genesis cannot carry: exporting would lose it."""


class Part:
    """One typed part of a key: how many bytes it takes, how it reads and writes back."""

    # Bytes the part always takes; 0 when it takes what the parts after it leave.
    fixed = 0

    def length(self, raw: bytes, tail: int) -> int:
        """Bytes the part takes at the start of ``raw``; ``tail`` bytes belong to the fixed
        parts after it."""
        return self.fixed or len(raw) - tail

    def read(self, raw: bytes) -> Any:
        raise NotImplementedError

    def write(self, value: Any) -> bytes:
        raise NotImplementedError


@dataclass(frozen=True)
class Uint(Part):
    """A big-endian unsigned integer of ``fixed`` bytes (heights, epochs, ids, statuses)."""

    fixed: int = 8

    def read(self, raw: bytes) -> int:
        return int.from_bytes(raw, "big")

    def write(self, value: Any) -> bytes:
        if type(value) is not int or not 0 <= value < 1 << (8 * self.fixed):
            raise InvalidRequest(f"{value!r} is not an unsigned {8 * self.fixed}-bit integer")
        return value.to_bytes(self.fixed, "big")


class Address(Part):
    """Raw account address bytes, written in bech32."""

    def read(self, raw: bytes) -> str:
        return address.encode(raw)

    def write(self, value: Any) -> bytes:
        if type(value) is not str:
            raise InvalidRequest(f"{value!r} is not a bech32 address")
        return address.decode(value)


class Text(Part):
    """UTF-8 text: an inference id, a denom."""

    def read(self, raw: bytes) -> str:
        return raw.decode()

    def write(self, value: Any) -> bytes:
        if type(value) is not str:
            raise InvalidRequest(f"{value!r} is not a string")
        return value.encode()


class Hex(Part):
    """Opaque bytes (a hash, a public key), written as lower-case hex."""

    def read(self, raw: bytes) -> str:
        return raw.hex()

    def write(self, value: Any) -> bytes:
        try:
            return bytes.fromhex(value)
        except (TypeError, ValueError):
            raise InvalidRequest(f"{value!r} is not hex") from None


class Amount(Part):
    """An integer stored as its decimal digits, written as a decimal string as Cosmos writes
    amounts, so no JSON reader rounds it."""

    def read(self, raw: bytes) -> str:
        return str(int(raw))

    def write(self, value: Any) -> bytes:
        if type(value) is not str or not value.lstrip("-").isdigit():
            raise InvalidRequest(f"{value!r} is not an integer in a decimal string")
        return str(int(value)).encode()


class AddressThenSlash(Address):
    """An address and a "/", where a variable part follows (a balance's denom, an
    allowance's agent): addresses are 20 or 32 bytes, and the "/" tells which."""

    def length(self, raw: bytes, tail: int) -> int:
        for size in (20, 32):
            if raw[size:size + 1] == b"/":
                return size + 1
        raise UnexportedState(f"no address and '/' at the start of {raw!r}")

    def read(self, raw: bytes) -> str:
        return super().read(raw[:-1])

    def write(self, value: Any) -> bytes:
        return super().write(value) + b"/"


def proto_json(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def from_proto_json(raw: Any, message: type[Message], what: str) -> Message:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"genesis {what}: a JSON object is needed, got {raw!r}")
    try:
        return json_format.ParseDict(raw, message())
    except json_format.ParseError as exc:
        raise InvalidRequest(f"genesis {what}: {exc}") from None


class Kind(Protocol):
    """One kind of record a module keeps, as its genesis section names it."""

    name: str
    prefix: bytes

    def export(self, key: bytes, value: bytes) -> Any: ...

    def restore(self, entry: Any) -> tuple[bytes, bytes]: ...


@dataclass(frozen=True)
class Messages:
    """Protobuf records whose key is ``prefix + key(record)``: the entry is the record."""

    name: str
    prefix: bytes
    message: type[Message]
    key: Callable[[Any], bytes]

    def export(self, key: bytes, value: bytes) -> Any:
        record = self.message.FromString(value)
        if self.prefix + self.key(record) != key:
            raise UnexportedState(f"{self.name}: record under {key!r} does not name its key")
        return proto_json(record)

    def restore(self, entry: Any) -> tuple[bytes, bytes]:
        record = from_proto_json(entry, self.message, self.name)
        return self.prefix + self.key(record), record.SerializeToString(deterministic=True)


@dataclass(frozen=True)
class Keyed:
    """Records keyed by typed parts; the entry holds each part by name, and the value under
    ``value_name`` unless the value is empty (an index entry)."""

    name: str
    prefix: bytes
    parts: tuple[tuple[str, Part], ...]
    value_name: str = ""
    value: Part | type[Message] | None = None

    def export(self, key: bytes, value: bytes) -> Any:
        entry = self._read_key(key[len(self.prefix):])
        if self.value is None:
            if value:
                raise UnexportedState(f"{self.name}: index entry {key!r} holds a value")
        elif isinstance(self.value, type):
            entry[self.value_name] = proto_json(self.value.FromString(value))
        else:
            entry[self.value_name] = self.value.read(value)
        return entry

    def restore(self, entry: Any) -> tuple[bytes, bytes]:
        names = [name for name, _ in self.parts] + ([self.value_name] if self.value else [])
        if not isinstance(entry, dict) or set(entry) != set(names):
            raise InvalidRequest(f"genesis {self.name} entry {entry!r}: needs exactly "
                                 f"{sorted(names)}")
        key = self.prefix + b"".join(part.write(entry[name]) for name, part in self.parts)
        if self.value is None:
            return key, b""
        if isinstance(self.value, type):
            record = from_proto_json(entry[self.value_name], self.value, self.name)
            return key, record.SerializeToString(deterministic=True)
        return key, self.value.write(entry[self.value_name])

    def _read_key(self, raw: bytes) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        for i, (name, part) in enumerate(self.parts):
            size = part.length(raw, sum(p.fixed for _, p in self.parts[i + 1:]))
            if not 0 <= size <= len(raw):
                raise UnexportedState(f"{self.name}: key part {name} does not fit {raw!r}")
            entry[name], raw = part.read(raw[:size]), raw[size:]
        if raw:
            raise UnexportedState(f"{self.name}: {raw!r} left over in the key")
        return entry


@dataclass(frozen=True)
class Single:
    """One fixed key; the entry is its value alone."""

    name: str
    prefix: bytes
    value: Part | type[Message]

    def export(self, key: bytes, value: bytes) -> Any:
        if key != self.prefix:
            raise UnexportedState(f"{self.name}: unexpected key {key!r}")
        if isinstance(self.value, type):
            return proto_json(self.value.FromString(value))
        return self.value.read(value)

    def restore(self, entry: Any) -> tuple[bytes, bytes]:
        if isinstance(self.value, type):
            record = from_proto_json(entry, self.value, self.name)
            return self.prefix, record.SerializeToString(deterministic=True)
        return self.prefix, self.value.write(entry)


def export_records(state: KVReader, module: str, kinds: Iterable[Kind],
                   structured: Iterable[bytes] = ()) -> dict[str, Any]:
    """Every record under ``module/``, by kind name; keys under a ``structured`` prefix are
    the module's own sections' business. Raises UnexportedState for any other key."""
    kinds = list(kinds)
    structured = tuple(structured)
    section: dict[str, Any] = {}
    for key, value in state.iterate(module.encode() + b"/"):
        if key.startswith(structured):
            continue
        kind = _kind_of(kinds, key)
        if kind is None:
            raise UnexportedState(f"{module}: the genesis export covers no record kind for "
                                  f"key {key!r}")
        entry = kind.export(key, value)
        if kind.restore(entry) != (key, value):
            raise UnexportedState(f"{module}: {kind.name} record under {key!r} would not come "
                                  f"back from genesis byte for byte")
        if isinstance(kind, Single):
            section[kind.name] = entry
        else:
            section.setdefault(kind.name, []).append(entry)
    return section


def import_records(kv: GasKV, section: dict, kinds: Iterable[Kind]) -> None:
    """Writes back the records ``export_records`` wrote into ``section``."""
    for kind in kinds:
        if kind.name not in section:
            continue
        entries = [section[kind.name]] if isinstance(kind, Single) else section[kind.name]
        if not isinstance(entries, list):
            raise InvalidRequest(f"genesis {kind.name}: a list is needed")
        for entry in entries:
            key, value = kind.restore(entry)
            if kv.get(key) is not None:
                raise InvalidRequest(f"genesis {kind.name} lists {entry!r} twice")
            kv.set(key, value)


def names(kinds: Iterable[Kind]) -> set[str]:
    """The section fields the kinds fill, for a module that refuses unknown fields."""
    return {kind.name for kind in kinds}


def _kind_of(kinds: list[Kind], key: bytes) -> Kind | None:
    for kind in kinds:
        exact = isinstance(kind, Single)
        if key == kind.prefix if exact else key.startswith(kind.prefix):
            return kind
    return None
