"""What every module's params share: stored as canonical JSON, loaded refusing unknown keys.

Canonical (sorted-key) JSON keeps the bytes, and so the app hash, identical on every node.
"""

import json
from dataclasses import asdict, fields
from typing import Any, ClassVar, Protocol, Self

from chain.errors import InvalidRequest


class Readable(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class ModuleParams:
    """Base for a module's frozen params dataclass; ``module`` names it in errors."""

    module = ""
    # The fields governance may change; the rest only change with a new genesis (e.g. one
    # whose change would rewrite history, like the epoch length).
    governable: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def stored(cls, state: Readable, key: bytes) -> Self:
        """The params kept under ``key``, or the defaults before genesis wrote any."""
        data = state.get(key)
        return cls() if data is None else cls.from_dict(json.loads(data))

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    def check_integers(self) -> None:
        """Every int-typed field holds a non-negative int (not a bool, not a float)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type is int and (type(value) is not int or value < 0):
                raise InvalidRequest(f"{self.module} param {f.name} must be a non-negative "
                                     f"integer")

    @classmethod
    def from_dict(cls, raw: dict) -> Self:
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidRequest(f"unknown {cls.module} params: {sorted(unknown)}")
        return cls(**raw)

    def changed(self, param: str, value: Any) -> Self:
        """These params with one governable field set, validated as genesis values are."""
        if param not in {f.name for f in fields(self)}:
            raise InvalidRequest(f"{self.module} has no param {param!r}")
        if param not in self.governable:
            raise InvalidRequest(f"{self.module} param {param} is not governable; governable: "
                                 f"{', '.join(sorted(self.governable)) or 'none'}")
        try:
            return type(self).from_dict({**asdict(self), param: value})
        except TypeError as exc:
            raise InvalidRequest(f"{self.module} param {param}: {exc}") from exc
