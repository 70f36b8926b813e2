"""cProfile of one FinalizeBlock, boiled down to the chain/ functions, for the benches'
``--profile`` option.

The full profile of a block is thousands of rows, most of them protobuf, SQLite and crypto
internals; the question a bench asks is which of the chain's own functions the block's time
goes through, so only chain/ functions are kept, by cumulative time, with each one's share of
the whole FinalizeBlock.
"""

import cProfile
import os
import pstats
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from report import section, table

ROOT = Path(__file__).resolve().parent.parent
CHAIN_DIR = str(ROOT / "chain") + os.sep
APP_FILE = str(ROOT / "chain" / "app.py")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class ProfileEntry:
    """A chain/ function's own and cumulative time within one profiled FinalizeBlock."""

    function: str
    calls: int
    own_s: float
    cumulative_s: float


@dataclass(frozen=True)
class Profile:
    """The chain/ functions with the most cumulative time, and FinalizeBlock's own cumulative
    time under the profiler, which inflates both alike, so shares of it are fair."""

    entries: list[ProfileEntry]
    total_s: float


def profile_finalize(top: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
                     ) -> tuple[T, Profile]:
    """Runs `fn`, which must execute one ``Application.finalize_block``, under cProfile;
    returns what it returned and the `top` chain/ functions by cumulative time."""
    profiler = cProfile.Profile()
    result = profiler.runcall(fn, *args, **kwargs)
    entries, total = [], 0.0
    for (filename, line, name), (_, calls, own, cumulative, _) in \
            pstats.Stats(profiler).stats.items():
        if not filename.startswith(CHAIN_DIR):
            continue
        if (filename, name) == (APP_FILE, "finalize_block"):
            total = cumulative
        entries.append(ProfileEntry(f"{Path(filename).relative_to(ROOT)}:{line}({name})",
                                    calls, own, cumulative))
    entries.sort(key=lambda e: e.cumulative_s, reverse=True)
    return result, Profile(entries[:top], total)


def profile_section(title: str, profile: Profile, own_time: bool) -> list[str]:
    """The profile as a report section; `own_time` adds each function's time outside its
    callees, worth a column where a few hot leaf functions (a decoder's) carry the block."""
    def row(e: ProfileEntry) -> Sequence[str]:
        own = [f"{e.own_s * 1000:.1f} ms"] if own_time else []
        return [f"`{e.function}`", f"{e.calls:,}", *own, f"{e.cumulative_s * 1000:.1f} ms",
                f"{e.cumulative_s / profile.total_s:.1%}"]

    header = ["function", "calls", *(["own"] if own_time else []), "cumulative", "share"]
    return section(title, table(header, map(row, profile.entries)),
                   "Times are under the profiler, which inflates them; share is of the profiled "
                   "FinalizeBlock.")
