"""CPU time from /proc: how the benchmarks tell which process spent a run's cores."""

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of CPU times in /proc


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a live process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_s() -> float:
    """CPU seconds all cores have spent neither idle nor waiting for I/O, including time the
    hypervisor gave to other guests (steal), which this machine could not use either."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
