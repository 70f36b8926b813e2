"""Bank params."""

import json
from dataclasses import asdict, dataclass, fields

from chain.errors import InvalidRequest

KEY = b"bank/params"


@dataclass(frozen=True)
class BankParams:
    send_enabled: bool = True

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_dict(cls, raw: dict) -> "BankParams":
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidRequest(f"unknown bank params: {sorted(unknown)}")
        if not isinstance(raw.get("send_enabled", True), bool):
            raise InvalidRequest("bank param send_enabled must be true or false")
        return cls(**raw)
