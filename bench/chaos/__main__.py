"""Chaos soak: a local network of participants in CometBFT mode, each API node's store in
PostgreSQL, under a steady load of real OpenAI requests (streaming and not, signed and with
API keys) and bank transfers, while a seeded schedule kills, pauses and starves its processes
on loopback; then an audit of what the developers got and what the chain charged.

``python -m bench.chaos [--quick] [--minutes M] [--seed S]``. The fault classes: SIGKILL and
restart of an ML node, an API node, a chain node (with its CometBFT), two at once; SIGSTOP
of an ML node or API node past the first-token timeout, then SIGCONT; a crash restart of the
private PostgreSQL instance; one validator's home on a tmpfs filled until it refuses writes,
then freed (needs root to mount); a corrupted API-node outbox row; kills timed to the middle
of a stream, of a PoC window, of a validation, and to an epoch boundary. ``--quick`` runs
every class once; a full run repeats the seeded rounds for ``--minutes``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.chaos.audit import RESULTS
from bench.chaos.soak import SoakOptions, soak
from bench.report import bench_parser, environment, parse_bench_args, progress, publish, table


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="how long the fault schedule runs (default 20; --quick: one "
                             "round of every fault class)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the schedule and the load")
    parser.add_argument("--workers", type=int, default=3,
                        help="developers sending requests back to back (default 3)")
    parser.add_argument("--root", type=Path,
                        help="keep the network's homes and logs here (default: a temporary "
                             "directory, removed afterwards)")
    args = parse_bench_args(parser, "one round of every fault class, a 1-minute baseline",
                            argv)
    load_before = os.getloadavg()[0]
    options = SoakOptions(duration_s=0 if args.quick else args.minutes * 60,
                          baseline_s=60 if args.quick else 180,
                          rounds=1 if args.quick else 0, seed=args.seed, workers=args.workers,
                          expiration_blocks=60 if args.quick else 120,
                          gap_s=3 if args.quick else 10, root=args.root)
    report, network, schedule, faulted_s = soak(options, progress)
    command = "python -m bench.chaos " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"## Chaos soak: {network.participants} participants, CometBFT, PostgreSQL stores",
             "", f"- `{command.strip()}`: seed {args.seed}, {args.workers} developers, "
             f"{options.baseline_s:g}s fault-free, then {len(schedule.faults)} faults over "
             f"{faulted_s / 60:.1f} minutes; first-token timeout "
             f"{network.first_token_timeout_s:g}s",
             *environment(load_before, ["openai", "cosmpy", "psycopg"]), ""]
    if network.small_fs_refusal:
        lines += [f"- {network.small_fs_refusal}", ""]
    lines += ["### Goals", "", *table(["goal", "measured", "met"],
                                      [(g, f, "yes" if m else "NO") for g, f, m in report.goals],
                                      text_columns=2), ""]
    lines += ["### Requests", "", *table(["request kind", *RESULTS],
                                         report.request_rows), ""]
    lines += ["### Latency of answered requests", "", *table(
        ["phase", "answered", "p99 s"],
        [(phase, str(n), f"{p:.1f}") for phase, (n, p) in report.latency.items()]), ""]
    if "finished" in report.figures:
        f = report.figures
        lines += ["### Blocks from start to finish", "", *table(
            ["finished inferences", "p50", "p99", "max", "expiration_blocks"],
            [(str(f["finished"]), str(f["finish_lag_p50"]), str(f["finish_lag_p99"]),
              str(f["finish_lag_max"]), str(options.expiration_blocks))]), "",
            "A finish that lands past expiration_blocks is refused and its inference expires "
            "unpaid: the max is how close the faults brought one to that.", ""]
    lines += ["### Recovery per fault class", "", *table(
        ["fault", "times", "median s", "max s"],
        [(kind, str(len(times)), f"{sorted(times)[len(times) // 2]:.1f}", f"{max(times):.1f}")
         for kind, times in sorted(report.recovery.items())]), "",
        "Recovery: from the repair (restart, SIGCONT, disk freed) until the process is ready "
        "again (a chain node: caught up with the others).", ""]
    lines += ["### Faults in order", "", *table(
        ["fault", "target", "from height", "recovery s", "note"],
        [(f.kind, f.target, str(f.height), f"{f.recovery_s:.1f}", f.note)
         for f in schedule.faults], text_columns=2), ""]
    if report.traces:
        lines += ["### What the logs say of the lost inferences", "", "```", *report.traces,
                  "```", ""]
    publish(lines, args.out)
    return 0 if report.met else 1


if __name__ == "__main__":
    sys.exit(main())
