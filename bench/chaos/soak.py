"""One soak: lay out and start the network, run the load fault-free for a baseline, then
through the fault schedule, stop the load and audit the chain."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.chaos.audit import Opening, Report, audit
from bench.chaos.faults import Schedule
from bench.chaos.load import Load
from bench.chaos.network import ChaosNetwork


@dataclass(frozen=True)
class SoakOptions:
    """What a run is made of; ``rounds`` 0 means rounds until ``duration_s`` has passed."""

    duration_s: float
    baseline_s: float
    rounds: int
    seed: int
    workers: int
    participants: int = 4
    first_token_timeout_s: float = 8.0
    expiration_blocks: int = 120
    # The validator's home grows about 40 MB per 1,000 blocks (CometBFT's block store and
    # WAL, the app's state and history, logs): a 64 MB one filled up of itself near height
    # 1,100 of a 20-minute run, and no restart could bring the node back.
    small_fs_mb: int = 256
    gap_s: float = 10.0
    latency_multiple: float = 10.0
    root: Path | None = None
    # The devnet's first port (10 per participant); 0: the first free block from 30,000.
    base_port: int = 0


def soak(options: SoakOptions, say: Callable[[str], None]) -> tuple[Report, ChaosNetwork,
                                                                    Schedule, float]:
    """The audit of one run, the network it ran on (already stopped), its schedule, and the
    seconds the faults ran for."""
    root = options.root or Path(tempfile.mkdtemp(prefix="chaos-"))
    network = ChaosNetwork(root / "network", options.participants,
                           options.first_token_timeout_s, options.expiration_blocks,
                           options.small_fs_mb, say, options.base_port)
    try:
        network.start()
        load = Load(network, options.workers, options.seed)
        load.fund_payer()
        opening = Opening.take(network)
        say(f"network up at height {opening.height}; load of {options.workers} developers "
            f"and a bank payer, fault-free for {options.baseline_s:g}s")
        load.start()
        time.sleep(options.baseline_s)
        baseline_end = time.monotonic()
        schedule = Schedule(network, load, options.seed, options.gap_s, say)
        until = baseline_end + options.duration_s
        rounds = 0
        while (options.rounds and rounds < options.rounds) or \
                (not options.rounds and time.monotonic() < until):
            schedule.run_round(until if not options.rounds else float("inf"))
            rounds += 1
        faulted_s = time.monotonic() - baseline_end
        say(f"{len(schedule.faults)} faults in {faulted_s:.0f}s; stopping the load")
        load.stop()
        (root / "outcomes.json").write_text(json.dumps(
            [dataclasses.asdict(o) for o in load.snapshot()], indent=1))
        settle_s = 3 * options.expiration_blocks + 120  # blocks take well under 3 s
        report = audit(network, load, schedule.faults, opening, baseline_end, settle_s,
                       options.latency_multiple, say)
        return report, network, schedule, faulted_s
    finally:
        network.close()
        if options.root is None:
            shutil.rmtree(root, ignore_errors=True)
