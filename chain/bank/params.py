"""Bank params."""

from dataclasses import dataclass
from typing import ClassVar

from chain.errors import InvalidRequest
from chain.params import ModuleParams

KEY = b"bank/params"


@dataclass(frozen=True)
class BankParams(ModuleParams):
    module = "bank"
    governable: ClassVar[frozenset[str]] = frozenset({"send_enabled"})
    send_enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.send_enabled, bool):
            raise InvalidRequest("bank param send_enabled must be true or false")
