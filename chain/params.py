"""What every module's params share: declared bounds, canonical JSON, strict loading.

Each field declares the values it may take next to its default (``bounded``, ``decimal``,
``flag``), and one rule, ``ModuleParams.__post_init__``, applies them wherever params are
made: genesis, governance, the store. The bounds are those that keep the chain producing
blocks and governance able to undo a change; each param's comment says why its bounds are
what they are, and docs/gov.md lists them all. Rules between fields (a window inside an
epoch) come after, in each module's ``check_consistency``.

Canonical (sorted-key) JSON keeps the bytes, and so the app hash, identical on every node.
"""

import json
import re
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any, ClassVar, Protocol, Self

from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.store import KVReader

BOUNDS = "bounds"
# Longest shown form of a refused value in an error: the message names it, not echoes it.
SHOWN_CHARS = 40
# Params parsed from stored bytes, by class and bytes: frozen, so safe to hand out again.
_PARSED: dict[tuple[type, bytes], "ModuleParams"] = {}
_PARSED_MAX = 256


class Readable(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class Bounds(Protocol):
    """The values one param may take."""

    def check(self, module: str, name: str, value: object) -> None:
        """Raises InvalidRequest naming the param and the allowed values."""

    def limits(self) -> tuple[str, str]:
        """The lowest and highest value as docs/gov.md writes them."""


@dataclass(frozen=True)
class IntRange:
    """A JSON integer (not a bool, not a float) in [low, high]."""

    low: int
    high: int

    def check(self, module: str, name: str, value: object) -> None:
        if type(value) is not int or not self.low <= value <= self.high:
            raise InvalidRequest(f"{module} param {name} must be an integer in "
                                 f"[{self.low}, {self.high}]; got {_shown(value)}")

    def limits(self) -> tuple[str, str]:
        return str(self.low), str(self.high)


@dataclass(frozen=True)
class DecimalRange:
    """A decimal string of plain ASCII digits, at most ``places`` after the point, in
    [low, high]: no sign, exponent, NaN or infinity, so parsing costs nothing and the value
    has one spelling's worth of digits that consensus arithmetic can hold exactly."""

    low: str
    high: str
    places: int

    def check(self, module: str, name: str, value: object) -> None:
        whole_digits = len(str(int(Decimal(self.high))))
        form = rf"(0|[1-9][0-9]{{0,{whole_digits - 1}}})(\.[0-9]{{1,{self.places}}})?"
        if type(value) is not str or not re.fullmatch(form, value) or \
                not Decimal(self.low) <= Decimal(value) <= Decimal(self.high):
            raise InvalidRequest(f"{module} param {name} must be a decimal string of digits "
                                 f"with at most {self.places} decimal places in "
                                 f"[{self.low}, {self.high}]; got {_shown(value)}")

    def limits(self) -> tuple[str, str]:
        return self.low, self.high


@dataclass(frozen=True)
class Flag:
    """A JSON true or false."""

    def check(self, module: str, name: str, value: object) -> None:
        if type(value) is not bool:
            raise InvalidRequest(f"{module} param {name} must be true or false; got "
                                 f"{_shown(value)}")

    def limits(self) -> tuple[str, str]:
        return "false", "true"


def bounded(default: int, low: int, high: int) -> int:
    """An integer param's default and bounds."""
    return field(default=default, metadata={BOUNDS: IntRange(low, high)})


def decimal(default: str, low: str, high: str, places: int) -> str:
    """A decimal param's default and bounds (kept as a string, as JSON carries it)."""
    return field(default=default, metadata={BOUNDS: DecimalRange(low, high, places)})


def flag(default: bool) -> bool:
    return field(default=default, metadata={BOUNDS: Flag()})


def _shown(value: object) -> str:
    """A refused value as an error names it: short, whatever was sent."""
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    if value is None or isinstance(value, bool | int | float | str):
        text = json.dumps(value)
        return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


class ModuleParams:
    """Base for a module's frozen params dataclass; ``module`` names it in errors."""

    module = ""
    # The fields governance may change; the rest only change with a new genesis (e.g. one
    # whose change would rewrite history, like the epoch length).
    governable: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for f in fields(self):
            f.metadata[BOUNDS].check(self.module, f.name, getattr(self, f.name))
        self.check_consistency()

    def check_consistency(self) -> None:
        """Rules between fields, run once every field is within its own bounds."""

    @classmethod
    def bounds(cls) -> dict[str, Bounds]:
        return {f.name: f.metadata[BOUNDS] for f in fields(cls)}

    @classmethod
    def stored(cls, state: Readable, key: bytes) -> Self:
        """The params kept under ``key``, or the defaults before genesis wrote any.

        Every tx reads some module's params, so the parsed params are remembered by their
        exact stored bytes (and class): the read itself (and its gas) still happens on the
        state at hand, and only the JSON parse and bounds checks of bytes already parsed are
        skipped. A change by governance is new bytes, seen by the very next read.
        """
        data = state.get(key)
        if data is None:
            return cls()
        memo = (cls, bytes(data))
        parsed = _PARSED.get(memo)
        if parsed is None:
            parsed = cls.from_dict(json.loads(data))
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[memo] = parsed
        return parsed

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_dict(cls, raw: object) -> Self:
        if not isinstance(raw, dict):
            raise InvalidRequest(f"{cls.module} params must be a JSON object; got "
                                 f"{_shown(raw)}")
        unknown = set(raw) - set(cls.bounds())
        if unknown:
            raise InvalidRequest(f"unknown {cls.module} params: {sorted(unknown)}")
        return cls(**raw)

    def changed(self, param: str, value: Any) -> Self:
        """These params with one governable field set, held to the bounds genesis values are."""
        if param not in self.bounds():
            raise InvalidRequest(f"{self.module} has no param {param!r}")
        if param not in self.governable:
            raise InvalidRequest(f"{self.module} param {param} is not governable; governable: "
                                 f"{', '.join(sorted(self.governable)) or 'none'}")
        return type(self).from_dict({**asdict(self), param: value})


class ParamsKeeper(Protocol):
    """What every module's keeper offers for its params: the Params query reads them and
    governance changes them through it."""

    def params(self, state: GasKV | KVReader) -> ModuleParams: ...

    def set_params(self, kv: GasKV, params: ModuleParams) -> None: ...
