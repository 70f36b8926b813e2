"""What a failed end-to-end test shows of the processes it ran: each log's warnings and
errors, and its last lines, so that a failure in CI (where the temporary folders are gone once
the run ends) can be understood from the report alone."""

import re
from pathlib import Path

# Python's logging levels, CometBFT's (`E[...]`, `level=error`) and uncaught tracebacks.
NOTABLE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|^E\[|level=(warn|error)|^Traceback")
NOTABLE_PER_LOG = 40
LAST_PER_LOG = 8
LINE_CHARS = 300
LOGS_AT_MOST = 24


def excerpts(root: Path) -> str:
    """Per ``*.log`` under ``root``: its last notable lines, then its last lines. The
    processes' own logs (a devnet's ``logs`` folder) come first; CometBFT's LevelDB files
    (``*.db/NNNNNN.log``, binary) are not logs to read."""
    parts = []
    paths = [p for p in root.rglob("*.log") if not p.parent.name.endswith(".db")]
    for path in sorted(paths, key=lambda p: (p.parent.name != "logs", p))[:LOGS_AT_MOST]:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError as exc:
            parts.append(f"== {path.relative_to(root)}: unreadable ({exc})")
            continue
        notable = [line for line in lines if NOTABLE.search(line)][-NOTABLE_PER_LOG:]
        shown = [*notable, "-- last lines --", *lines[-LAST_PER_LOG:]]
        parts.append(f"== {path.relative_to(root)} ({len(lines)} lines, "
                     f"{len(notable)} notable shown)\n"
                     + "\n".join(line[:LINE_CHARS] for line in shown))
    return "\n".join(parts)
