"""The protocol-test fault switches of the API node's parts (executor, validator, PoC): one
check, so a misspelt fault stops the node at start and a fault that is on is never silent."""

import logging
from collections.abc import Collection

log = logging.getLogger(__name__)


def fault_switch(part: str, fault: str, allowed: Collection[str], effect: str) -> str:
    """``fault`` once checked against ``allowed`` ("" is honest); warns loudly when it is on."""
    if fault not in allowed:
        raise ValueError(f"{part} fault {fault!r} is not one of {sorted(allowed)}")
    if fault:
        log.warning("%s: FAULT INJECTION %r is on: %s on purpose (protocol tests only)", part,
                    fault, effect)
    return fault
