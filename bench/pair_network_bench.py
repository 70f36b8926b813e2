"""Inference pairs end to end: committed MsgStartInference + MsgFinishInference pairs per second
through gRPC BroadcastTx on real node processes (docs/design.md §12).

``inference_bench.py`` measures what FinalizeBlock alone executes; this is what a network
commits once CheckTx, the mempool, block production, Commit, the history and (on the
localnet) CometBFT's gossip and votes are in the way. Two networks, one after the other so
they never share cores, on the same genesis: a solo node (the baseline) and a 4-validator
CometBFT localnet, each with 16 genesis participants serving the default model and one
funded developer. Every pair is a developer-signed request to a transfer agent taken round
robin, whose executor is the one the chain draws for it (the agent itself at times, as on a
real network), with a synthetic artifact of 32 output tokens shaped like the default model's
(``inference_bench.synthetic_steps``).

The txs are signed before the clock starts, against each network's own chain: every start is
stamped with the time of a block already committed there, so its draw is known. They go in
two phases: every start (one lane per transfer agent, its txs in sequence order), and once
all are committed every finish (one lane per executor). The second phase waits for the
first, since a finish only settles a started inference (a finish before its start is a
different path, the lone finish); so the figure includes one block's wait that a steady
stream of requests would overlap. Figures are pairs committed over the wall time from the
first broadcast to the last commit, and every tx is checked to have code 0.

Progress goes to stderr, the report (markdown) to stdout. Run
``python bench/pair_network_bench.py -h``.
"""

import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from chain_bench import (
    CHAIN_ID,
    SOLO_BLOCK_INTERVAL_MS,
    TIMEOUT_COMMIT,
    VALIDATORS,
    NetworkRun,
    Node,
    comet_environment,
    cpu_table,
    drive,
    free_base_port,
    free_port,
    network_bench_setup,
    running,
)
from cosmpy.protos.cosmos.auth.v1beta1 import query_pb2 as auth_query
from cosmpy.protos.cosmos.auth.v1beta1.auth_pb2 import BaseAccount
from cosmpy.protos.cosmos.auth.v1beta1.query_pb2_grpc import QueryStub as AuthQueryStub
from inference_bench import (
    FUNDS,
    PARTICIPANTS,
    PROMPT_TOKENS,
    finish_msg,
    synthetic_steps,
    token_id,
)
from report import bench_parser, parse_bench_args, progress, publish, section, table

from chain.bank.coins import NATIVE_DENOM
from genesis.localnet import layout_localnet
from genesis.solo import layout_solo
from genesis.template import Template, parse_template
from inferchain_pb.inference.v1 import query_pb2 as inference_query

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from inference_actors import (
    MODEL_ID,
    Actor,
    genesis_models,
    genesis_participant,
    request_id,
    start_msg,
)

OUTPUT_TOKENS = 32  # the goal's row: pairs at 32 output tokens
# Every start of a run names the draw of one committed block; the run must stay within the
# draw's age limit, so the bench's genesis allows a long one (the default is 10 blocks).
MAX_DRAW_AGE_BLOCKS = 10_000
DRAW_TIMEOUT_S = 30


@dataclass(frozen=True)
class Settings:
    """What one run measures; ``--quick`` shrinks only the number of pairs."""

    pairs: int


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, Path | None]:
    parser = bench_parser(__doc__)
    args = parse_bench_args(parser, "smoke run: 200 pairs per network", argv)
    return Settings(pairs=200 if args.quick else 2_000), args.out


@dataclass
class Actors:
    """The developer and the participants, with their account and node keys: the same on
    both networks (the genesis names the node keys), each network numbering the accounts
    and counting their sequences on its own chain."""

    developer: Actor
    parts: list[Actor]

    @classmethod
    def new(cls) -> "Actors":
        return cls(Actor.new(0, 0), [Actor.new(1 + i, 1 + i) for i in range(PARTICIPANTS)])

    @property
    def everyone(self) -> list[Actor]:
        return [self.developer, *self.parts]


def template(actors: Actors) -> Template:
    return parse_template({
        "chain_id": CHAIN_ID,
        "validators": [{"name": "val0", "power": 10}],
        "accounts": [{"address": a.address, "coins": f"{FUNDS}{NATIVE_DENOM}"}
                     for a in actors.everyone],
        "models": genesis_models(),
        "participants": [genesis_participant(p, f"http://127.0.0.1:{9000 + i}")
                         for i, p in enumerate(actors.parts)],
        # Proof of compute off: the participants keep their genesis weights.
        "params": {"inference": {"max_draw_age_blocks": MAX_DRAW_AGE_BLOCKS},
                   "epochs": {"poc_window_blocks": 0}},
    })


def on_chain(node: Node, actors: Actors) -> None:
    """Sets each actor's account number to the one the node's chain gave its genesis account,
    and its sequence to 0: none has sent a tx there yet."""
    stub = AuthQueryStub(node.channel)
    for actor in actors.everyone:
        actor.sequence = 0
        reply = stub.Account(auth_query.QueryAccountRequest(address=actor.address), timeout=10)
        account = BaseAccount()
        reply.account.Unpack(account)
        actor.account_number = account.account_number


def draw(node: Node, inference_id: str, timestamp: int) -> tuple[str, int]:
    """The executor and draw height the chain gives a request stamped ``timestamp``, once the
    block that seeds its draw (the first at or after the timestamp) is committed."""
    deadline = time.monotonic() + DRAW_TIMEOUT_S
    while True:
        try:
            reply = node.queries.Draw(inference_query.QueryDrawRequest(
                inference_id=inference_id, model_id=MODEL_ID, request_timestamp=timestamp),
                timeout=10)
            return reply.order[0], reply.draw_height
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def signed_pairs(node: Node, actors: Actors, count: int) -> list[list[list[bytes]]]:
    """``count`` signed pairs valid on the node's chain, as two phases of lanes: the starts by
    transfer agent, then the finishes by executor."""
    on_chain(node, actors)
    by_address = {p.address: p for p in actors.parts}
    rng = random.Random(20260101)
    timestamp = int(time.time()) - 1  # a block at or after it is committed, or about to be
    starts: dict[str, list[bytes]] = {p.address: [] for p in actors.parts}
    finishes: dict[str, list[bytes]] = {p.address: [] for p in actors.parts}
    started = []
    for n in range(count):
        label = f"pair-{n}"
        body = f"{label}: {PROMPT_TOKENS} prompt tokens".encode()
        agent = actors.parts[n % len(actors.parts)]
        executor, draw_height = draw(node, request_id(agent, actors.developer, label,
                                                      timestamp, body), timestamp)
        start = start_msg(agent, actors.developer, label, executor, draw_height, timestamp,
                          [token_id(rng) for _ in range(PROMPT_TOKENS)],
                          max_tokens=OUTPUT_TOKENS, body=body, chain_id=CHAIN_ID)
        starts[agent.address].append(agent.tx(start, chain_id=CHAIN_ID))
        started.append(start)
    # Signed after every start: an account's finishes come after its starts in sequence, as
    # they are broadcast.
    for start in started:
        executor = by_address[start.executor]
        finishes[executor.address].append(executor.tx(
            finish_msg(executor, start, synthetic_steps(rng, OUTPUT_TOKENS)),
            chain_id=CHAIN_ID))
    return [[lane for lane in starts.values() if lane],
            [lane for lane in finishes.values() if lane]]


def network_bench(pairs: int, workdir: Path, cometbft: str) -> list[NetworkRun]:
    """The solo baseline, then the localnet, one after the other so they never share cores."""
    actors = Actors.new()
    genesis = template(actors)
    port = free_port()
    solo = layout_solo(genesis, workdir / "solo", grpc_port=port,
                       block_interval_ms=SOLO_BLOCK_INTERVAL_MS)
    progress("solo: starting the node")
    with running([Node(solo.home, port)], cometbft) as nodes:
        progress(f"solo: signing {pairs:,} pairs")
        solo_run = drive("solo", nodes, signed_pairs(nodes[0], actors, pairs))
    infos = layout_localnet(genesis, workdir / "localnet", validators=VALIDATORS,
                            base_port=free_base_port(VALIDATORS), timeout_commit=TIMEOUT_COMMIT)
    progress(f"localnet: starting {VALIDATORS} validators")
    with running([Node(i.home, i.ports.grpc, i.ports.rpc_url) for i in infos],
                 cometbft) as nodes:
        progress(f"localnet: signing {pairs:,} pairs")
        localnet_run = drive(f"localnet, {VALIDATORS} validators", nodes,
                             signed_pairs(nodes[0], actors, pairs))
    return [solo_run, localnet_run]


def pairs_table(runs: Sequence[NetworkRun]) -> list[str]:
    baseline = runs[0].rate
    rows = [[run.name, f"{run.txs // 2:,}", f"{run.seconds:.2f} s", f"{run.rate / 2:,.1f}",
             f"{run.rate / baseline:.2f}×", f"{run.blocks}", f"{run.txs / run.blocks:.1f}"]
            for run in runs]
    return section(
        f"Committed inference pairs/s end to end ({OUTPUT_TOKENS} output tokens, "
        f"{PROMPT_TOKENS}-token prompts, {PARTICIPANTS} participants, gRPC BroadcastTx sync)",
        table(["network", "pairs", "first broadcast → last commit", "committed pairs/s",
               "vs solo", "blocks with txs", "mean txs/block"], rows),
        f"Solo produces a block every {SOLO_BLOCK_INTERVAL_MS} ms; the localnet has "
        f"timeout_commit {TIMEOUT_COMMIT}. Starts first (one lane per transfer agent), then "
        "finishes (one lane per executor) once every start is committed; all txs code 0. "
        "Every process runs on the same machine.")


def main(argv: Sequence[str] | None = None) -> None:
    settings, out = parse_args(argv)
    cometbft = network_bench_setup()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pair-bench-") as tmp:
        runs = network_bench(settings.pairs, Path(tmp), cometbft)
    publish([*comet_environment(cometbft, load_before), "", *pairs_table(runs), "",
             *cpu_table(runs)], out)


if __name__ == "__main__":
    main()
