"""Crash injection for recovery tests, in the spirit of CometBFT's FAIL_TEST_INDEX.

``INFERCHAIN_FAILPOINT=name@height`` makes the node kill itself with SIGKILL when it reaches
the named point while handling that height, so a test can crash it at an exact moment (say,
between FinalizeBlock and Commit) rather than at a random one. Unset, it costs one dict
lookup.
"""

import logging
import os
import signal

log = logging.getLogger(__name__)

AFTER_FINALIZE = "after_finalize"
INSIDE_COMMIT = "inside_commit"
AFTER_COMMIT = "after_commit"

_ARMED = os.environ.get("INFERCHAIN_FAILPOINT", "")


def hit(name: str, height: int) -> None:
    if _ARMED and _ARMED == f"{name}@{height}":
        log.warning("failpoint %s at height %d: killing the process", name, height)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)
