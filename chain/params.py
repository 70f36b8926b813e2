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

    @classmethod
    def from_dict(cls, raw: dict) -> Self:
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidRequest(f"unknown {cls.module} params: {sorted(unknown)}")
        return cls(**raw)
