"""What every benchmark's report is made of: progress lines, the common options, the header
that says what the figures were measured on, markdown tables, and the printed report.

The benches run as ``python bench/NAME.py``, which puts this folder on sys.path, so they
import this module as ``report``. Keeping these pieces in one place keeps the reports alike:
the same options, the same header lines, tables that align figures the same way.
"""

import argparse
import importlib.metadata
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

STARTED = time.monotonic()  # this module is imported as the bench starts


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report; each line says how long the
    bench has run, so that a long step shows how long it took."""
    print(f"[bench {time.monotonic() - STARTED:4.0f}s] {message}", file=sys.stderr, flush=True)


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the bench's docstring, so that ``--help``
    opens with the same sentence as the module."""
    return argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])


def parse_bench_args(parser: argparse.ArgumentParser, quick_help: str,
                     argv: Sequence[str] | None) -> argparse.Namespace:
    """Adds the options every bench has, ``--quick`` and ``--out``, after the bench's own ones,
    and parses `argv`; only what ``--quick`` shrinks differs from bench to bench."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def version(package: str) -> str:
    """The installed distribution's version, the one pip reports, whatever the module says."""
    return importlib.metadata.version(package)


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, which platform only knows on some systems."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(load_before: float, packages: Sequence[str], programs: Sequence[str] = ()
                ) -> list[str]:
    """Header lines for a bench of the chain: the CPU, the load around the run, and the
    versions the figures depend on.

    `load_before` is the 1-minute load average read before the run; the one read now is set
    beside it, since a high load before means other processes shared the cores. `programs`
    are further "name version" entries for the runtime line (such as a CometBFT binary), and
    `packages` the Python distributions whose versions matter.
    """
    return [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; 1-min load average "
        f"{load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after (other processes "
        "shared the cores if it was high before)",
        ", ".join([f"- Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}",
                   *programs]),
        "- " + ", ".join(f"{package} {version(package)}" for package in packages),
    ]


def table(header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: int = 1
          ) -> list[str]:
    """A markdown table. The first `text_columns` columns (names) are left-aligned and the
    rest right-aligned, so that the digits of figures line up when rendered."""
    def line(cells: Sequence[str]) -> str:
        return f"| {' | '.join(cells)} |"

    alignment = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    return [line(header), line(alignment), *(line(row) for row in rows)]


def section(title: str, body: Sequence[str], note: str) -> list[str]:
    """A titled part of the report: a table (or other lines) and the note that says how to
    read it."""
    return [f"### {title}", "", *body, "", note]


def publish(lines: Sequence[str], out: Path | None) -> None:
    """Prints the report to stdout and, with ``--out``, writes the very same text to that
    file, so a saved report never differs from the one on screen."""
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out is not None:
        out.write_text(text)
