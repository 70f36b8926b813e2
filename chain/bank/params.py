"""Bank params."""

from dataclasses import dataclass
from typing import ClassVar

from chain.params import ModuleParams, flag

KEY = b"bank/params"


@dataclass(frozen=True)
class BankParams(ModuleParams):
    module = "bank"
    governable: ClassVar[frozenset[str]] = frozenset({"send_enabled"})
    # Either way is live: it stops MsgSend only, never fees or gov deposits.
    send_enabled: bool = flag(True)
