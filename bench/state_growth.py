"""State growth: what the chain's state, its per-key history and the node's tx results hold
after each epoch of steady load, and which records the growth is made of.

The chain is the economics simulation's honest network (``bench/economics/simulation.py``):
one in-process `Application` executing real signed transactions epoch after epoch (starts
and finishes of 136 + 64-token inferences, validation reports and votes, seed commitments
and reveals, reward claims) and the real block steps (task windows, canaries, judging,
settlement). After every epoch the store's rows and key + value bytes are read. The baseline,
measured in the same run, is the state after the first epoch: bounded state stays near it,
state that keeps every inference grows by one epoch's worth per epoch. Progress goes to
stderr, the report to stdout. Run ``python bench/state_growth.py --help``.
"""

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from report import bench_parser, environment, parse_bench_args, progress, publish, section, table

from bench.economics.simulation import Play, Setup, Simulation
from chain.retention import Retention
from chain.store import Store


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


def measure(store: Store) -> tuple[dict[str, int], Counter]:
    families: Counter = Counter()
    for key, value in store.begin_block().iterate(b""):
        families[family(key)] += len(key) + len(value)
    return store.footprint(), families


def run(setup: Setup) -> list[Epoch]:
    simulation = Simulation(setup, Play())
    simulation.net.app.retention = Retention(history_keep_blocks=setup.epoch_length)
    epochs: list[Epoch] = []

    def after_epoch(epoch: int) -> None:
        figures, families = measure(simulation.net.app.store)
        epochs.append(Epoch(epoch, simulation.net.height, simulation.requests, figures,
                            families))
        progress(f"epoch {epoch}: height {simulation.net.height}, "
                 f"{figures['state_rows']} keys, {figures['state_bytes']} bytes of state")

    simulation.run(after_epoch)
    return epochs


def kib(size: int) -> str:
    return f"{size / 1024:,.1f}"


def report(setup: Setup, epochs: Sequence[Epoch], load_before: float) -> list[str]:
    base = epochs[0]
    rows = []
    for e in epochs:
        f = e.figures
        rows.append([str(e.epoch), str(e.height), str(e.requests), f"{f['state_rows']:,}",
                     kib(f["state_bytes"]), f"{f['state_bytes'] / base.figures['state_bytes']:.2f}",
                     f"{f['state_bytes'] / max(e.requests, 1):,.0f}",
                     f"{f['history_rows']:,}", kib(f["history_bytes"]),
                     f"{f['node_meta_rows']:,}", kib(f["node_meta_bytes"])])
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
            ["epoch", "height", "requests", "state keys", "state KiB", "× epoch 0",
             "state bytes / request", "history rows", "history KiB", "tx results",
             "tx results KiB"], rows, text_columns=0),
            f"{setup.members} members, {setup.epoch_length}-block epochs, "
            f"{setup.inferences_per_block} requests per block in each epoch's middle blocks, "
            f"1-s blocks. Scaled to the short epochs: `request_time_window_s` "
            f"{setup.request_window_s} and the node's `history_keep_blocks` "
            f"{setup.epoch_length} (one epoch each). State: the keys the app hash covers; "
            "history: every key's past values; tx results: what GetTx answers from. "
            "× epoch 0: state bytes over the state after the first epoch (the baseline)."),
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
                  inferences_per_block=args.per_block, request_window_s=20)
    load_before = os.getloadavg()[0]
    epochs = run(setup)
    publish(report(setup, epochs, load_before), args.out)


if __name__ == "__main__":
    main()
