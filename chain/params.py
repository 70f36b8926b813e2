"""What every module's params share: stored as canonical JSON, loaded refusing unknown keys.

Canonical (sorted-key) JSON keeps the bytes, and so the app hash, identical on every node.
"""

import json
from dataclasses import asdict, fields
from typing import Self

from chain.errors import InvalidRequest


class ModuleParams:
    """Base for a module's frozen params dataclass; ``module`` names it in errors."""

    module = ""

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
