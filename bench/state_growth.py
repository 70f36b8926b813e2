"""State growth: what the chain's state, its per-key history and the node's tx results hold
after each epoch of steady load, which records the growth is made of, and what cutting a
settled inference to its summary costs.

The chain is the economics simulation's honest network (``bench/economics/simulation.py``):
one in-process `Application` executing real signed transactions epoch after epoch (starts
and finishes of 136 + 64-token inferences, validation reports and votes, seed commitments
and reveals, reward claims) and the real block steps (task windows, canaries, judging,
settlement). After every epoch the store's rows and key + value bytes are read. The baseline,
measured in the same run, is the state after the first epoch: apart from the inference
summaries, which stay for good at about 195 bytes of value each, bounded state stays near it,
and state that keeps every inference whole grows by one epoch's worth per epoch. The time
the blocks spend summarizing is measured against the time of every FinalizeBlock of the
same run. Progress goes to stderr, the report to stdout. Run
``python bench/state_growth.py --help``.
"""

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from cosmpy.protos.tendermint.abci.types_pb2 import (
    RequestFinalizeBlock,
    ResponseFinalizeBlock,
)
from report import bench_parser, environment, parse_bench_args, progress, publish, section, table

from bench.economics.simulation import Play, Setup, Simulation
from chain.context import Context
from chain.inference.keeper import SUMMARY
from chain.retention import Retention
from chain.store import Store
from chain.validation.summaries import Summaries


@dataclass(frozen=True)
class Epoch:
    epoch: int
    height: int
    requests: int
    figures: dict[str, int]
    families: Counter


def family(key: bytes) -> str:
    """The record kind a key belongs to: its first two path parts (``inference/inference``)."""
    parts = key.split(b"/", 2)
    return b"/".join(parts[:2]).decode("ascii", "replace")


@dataclass
class Clock:
    """Seconds spent summarizing and in whole blocks, and the summaries made."""

    summarizing: float = 0.0
    blocks: float = 0.0
    summaries: int = 0


def measure(store: Store) -> tuple[dict[str, int], Counter]:
    families: Counter = Counter()
    for key, value in store.begin_block().iterate(b""):
        families[family(key)] += len(key) + len(value)
    figures = store.footprint()
    figures["summaries"] = sum(1 for _ in store.begin_block().iterate(SUMMARY))
    figures["summary_bytes"] = families[family(SUMMARY)]
    return figures, families


def timed(simulation: Simulation, clock: Clock) -> None:
    """Times every FinalizeBlock and, inside it, the summarizing step
    (``Summaries.advance``)."""
    advance, finalize = Summaries.advance, simulation.net.app.finalize_block

    def timed_advance(summaries: Summaries, ctx: Context) -> None:
        started = time.perf_counter()
        advance(summaries, ctx)
        clock.summarizing += time.perf_counter() - started

    def timed_finalize(request: RequestFinalizeBlock) -> ResponseFinalizeBlock:
        started = time.perf_counter()
        response = finalize(request)
        clock.blocks += time.perf_counter() - started
        return response

    Summaries.advance = timed_advance  # type: ignore[method-assign]
    simulation.net.app.finalize_block = timed_finalize  # type: ignore[method-assign]


def run(setup: Setup, clock: Clock) -> list[Epoch]:
    simulation = Simulation(setup, Play())
    simulation.net.app.retention = Retention(history_keep_blocks=setup.epoch_length)
    timed(simulation, clock)
    epochs: list[Epoch] = []

    def after_epoch(epoch: int) -> None:
        figures, families = measure(simulation.net.app.store)
        epochs.append(Epoch(epoch, simulation.net.height, simulation.requests, figures,
                            families))
        progress(f"epoch {epoch}: height {simulation.net.height}, "
                 f"{figures['state_rows']} keys, {figures['state_bytes']} bytes of state")

    simulation.run(after_epoch)
    clock.summaries = measure(simulation.net.app.store)[0]["summaries"]
    return epochs


def kib(size: int) -> str:
    return f"{size / 1024:,.1f}"


def rest(figures: dict[str, int]) -> int:
    """State bytes other than the inference summaries."""
    return figures["state_bytes"] - figures["summary_bytes"]


def report(setup: Setup, epochs: Sequence[Epoch], clock: Clock,
           load_before: float) -> list[str]:
    base = epochs[0]
    rows = []
    for e in epochs:
        f = e.figures
        rows.append([str(e.epoch), str(e.height), str(e.requests), f"{f['state_rows']:,}",
                     kib(f["state_bytes"]), f"{f['summaries']:,}", kib(f["summary_bytes"]),
                     f"{f['summary_bytes'] / max(f['summaries'], 1):,.0f}", kib(rest(f)),
                     f"{rest(f) / rest(base.figures):.2f}",
                     f"{f['history_rows']:,}", kib(f["history_bytes"]),
                     f"{f['node_meta_rows']:,}", kib(f["node_meta_bytes"])])
    each_us = 1e6 * clock.summarizing / max(clock.summaries, 1)
    per_epoch = []
    if len(epochs) > 2:
        first, last = epochs[1], epochs[-1]
        spans = len(epochs) - 2
        served = (last.requests - first.requests) / spans
        grown = Counter({k: (last.families[k] - first.families[k]) / spans
                         for k in set(first.families) | set(last.families)})
        for name, size in grown.most_common():
            if size:
                per_epoch.append([name, f"{size:,.0f}", f"{size / max(served, 1):,.0f}",
                                  kib(last.families[name])])
    return [
        "## State growth under steady load",
        "",
        *environment(load_before, ["protobuf"]),
        "",
        *section("After each epoch", table(
            ["epoch", "height", "requests", "state keys", "state KiB", "summaries",
             "summaries KiB", "bytes / summary", "the rest KiB", "the rest × epoch 0",
             "history rows", "history KiB", "tx results", "tx results KiB"], rows,
            text_columns=0),
            f"{setup.members} members, {setup.epoch_length}-block epochs, "
            f"{setup.inferences_per_block} requests per block in each epoch's middle blocks, "
            f"1-s blocks. Scaled to the short epochs: `request_time_window_s` "
            f"{setup.request_window_s}, the node's `history_keep_blocks` "
            f"{setup.epoch_length} (one epoch each) and `settled_epochs_kept` "
            f"{setup.settled_epochs_kept}. State: the keys the app hash covers; summaries: "
            "the settled inferences' summaries (key and value; the ids here are 64 hex "
            "characters), the one record kept for good; the rest: every other key, × epoch 0 "
            "over the same after the first epoch (the baseline); history: every key's past "
            "values; tx results: what GetTx answers from."),
        "",
        *section("Summarizing", table(
            ["inferences summarized", "µs each", "2,000 (a block's most) take, ms",
             "share of FinalizeBlock time"],
            [[f"{clock.summaries:,}", f"{each_us:,.0f}", f"{each_us * 2_000 / 1e3:,.0f}",
              f"{clock.summarizing / max(clock.blocks, 1e-9):.2%}"]]),
            "Wall time inside the blocks' summarizing step (reading the task and the record, "
            "hashing it, writing the summary, deleting the rest), over the inferences it cut; "
            "the share is of every FinalizeBlock of the run (its transactions and block steps)."),
        "",
        *section("Where each epoch's growth goes (epochs 1 to the last)", table(
            ["record kind", "bytes per epoch", "bytes per request", "KiB at the end"],
            per_epoch),
            "Key + value bytes each record kind adds per epoch on average once the network "
            "runs steadily; a kind that adds nothing per epoch is bounded."),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--per-block", type=int, default=4,
                        help="requests per block in each epoch's middle blocks")
    args = parse_bench_args(parser, "3 epochs", argv)
    setup = Setup(members=5, epochs=3 if args.quick else args.epochs, epoch_length=20,
                  inferences_per_block=args.per_block, request_window_s=20,
                  settled_epochs_kept=2)
    load_before = os.getloadavg()[0]
    clock = Clock()
    epochs = run(setup, clock)
    publish(report(setup, epochs, clock, load_before), args.out)


if __name__ == "__main__":
    main()
