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

Each network runs twice: with one message per tx, and with up to ``MESSAGES_PER_TX`` (32)
messages per tx, as an API node's outbox packs what it sends (its starts, finishes, seals and
openings): a tx's broadcast, signatures and ante are then paid once for all its messages.

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
from google.protobuf.message import Message
from inference_bench import (
    FUNDS,
    PARTICIPANTS,
    PROMPT_TOKENS,
    finish_msg,
    synthetic_steps,
    token_id,
)
from report import bench_parser, parse_bench_args, progress, publish, section, table

from apinode.outbox_worker import MESSAGES_PER_TX
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
# Gas limit per message of a tx: a start uses about 104,000, a finish of 32 tokens less.
GAS_PER_MESSAGE = 400_000


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


def signed_pairs(node: Node, actors: Actors, count: int, per_tx: int
                 ) -> list[list[list[bytes]]]:
    """``count`` signed pairs valid on the node's chain, as two phases of lanes: the starts by
    transfer agent, then the finishes by executor, ``per_tx`` messages of a lane to a tx."""
    on_chain(node, actors)
    by_address = {p.address: p for p in actors.parts}
    rng = random.Random(20260101)
    timestamp = int(time.time()) - 1  # a block at or after it is committed, or about to be
    starts: dict[str, list[Message]] = {p.address: [] for p in actors.parts}
    finishes: dict[str, list[Message]] = {p.address: [] for p in actors.parts}
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
        starts[agent.address].append(start)
        started.append(start)
    for start in started:
        finishes[start.executor].append(finish_msg(by_address[start.executor], start,
                                                   synthetic_steps(rng, OUTPUT_TOKENS)))
    # Signed after every start: an account's finishes come after its starts in sequence, as
    # they are broadcast.
    return [packed(starts, by_address, per_tx), packed(finishes, by_address, per_tx)]


def packed(lanes: dict[str, list[Message]], by_address: dict[str, Actor], per_tx: int
           ) -> list[list[bytes]]:
    """Each sender's messages signed ``per_tx`` to a tx, in order: one lane per sender."""
    signed = []
    for address, messages in lanes.items():
        sender = by_address[address]
        chunks = [messages[i:i + per_tx] for i in range(0, len(messages), per_tx)]
        lane = [sender.tx(*chunk, chain_id=CHAIN_ID, gas_limit=GAS_PER_MESSAGE * len(chunk))
                for chunk in chunks]
        if lane:
            signed.append(lane)
    return signed


def network_bench(pairs: int, workdir: Path, cometbft: str) -> list[NetworkRun]:
    """The solo baseline, then the localnet, one after the other so they never share cores;
    each with one message per tx, then with ``MESSAGES_PER_TX``."""
    actors = Actors.new()
    genesis = template(actors)
    runs = []
    for per_tx in (1, MESSAGES_PER_TX):
        port = free_port()
        solo = layout_solo(genesis, workdir / f"solo-{per_tx}", grpc_port=port,
                           block_interval_ms=SOLO_BLOCK_INTERVAL_MS)
        progress(f"solo, {per_tx} message(s) a tx: starting the node")
        with running([Node(solo.home, port)], cometbft) as nodes:
            progress(f"solo: signing {pairs:,} pairs")
            runs.append(drive(run_name("solo", per_tx), nodes,
                              signed_pairs(nodes[0], actors, pairs, per_tx)))
        infos = layout_localnet(genesis, workdir / f"localnet-{per_tx}", validators=VALIDATORS,
                                base_port=free_base_port(VALIDATORS),
                                timeout_commit=TIMEOUT_COMMIT)
        progress(f"localnet, {per_tx} message(s) a tx: starting {VALIDATORS} validators")
        with running([Node(i.home, i.ports.grpc, i.ports.rpc_url) for i in infos],
                     cometbft) as nodes:
            progress(f"localnet: signing {pairs:,} pairs")
            runs.append(drive(run_name(f"localnet, {VALIDATORS} validators", per_tx), nodes,
                              signed_pairs(nodes[0], actors, pairs, per_tx)))
    return runs


def run_name(network: str, per_tx: int) -> str:
    return f"{network}, {per_tx} message{'s' if per_tx > 1 else ''} a tx"


def pairs_table(runs: Sequence[NetworkRun], pairs: int) -> list[str]:
    """Each run against the first (solo, one message a tx), and each localnet against the
    solo run before it, which packed its txs alike."""
    rates = [pairs / run.seconds for run in runs]
    rows = [[run.name, f"{pairs:,}", f"{run.txs:,}", f"{run.seconds:.2f} s", f"{rate:,.1f}",
             f"{rate / rates[0]:.2f}×", f"{rate / rates[index - index % 2]:.2f}×",
             f"{run.blocks}", f"{run.txs / run.blocks:.1f}"]
            for index, (run, rate) in enumerate(zip(runs, rates, strict=True))]
    return section(
        f"Committed inference pairs/s end to end ({OUTPUT_TOKENS} output tokens, "
        f"{PROMPT_TOKENS}-token prompts, {PARTICIPANTS} participants, gRPC BroadcastTx sync)",
        table(["network", "pairs", "txs", "first broadcast → last commit", "committed pairs/s",
               "vs solo, 1 message a tx", "vs solo, same packing", "blocks with txs",
               "mean txs/block"], rows),
        f"Solo produces a block every {SOLO_BLOCK_INTERVAL_MS} ms; the localnet has "
        f"timeout_commit {TIMEOUT_COMMIT}. Starts first (one lane per transfer agent), then "
        "finishes (one lane per executor) once every start is committed; all txs code 0. "
        f"{MESSAGES_PER_TX} messages a tx is how an API node's outbox packs what it sends. "
        "Every process runs on the same machine.")


def main(argv: Sequence[str] | None = None) -> None:
    settings, out = parse_args(argv)
    cometbft = network_bench_setup()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pair-bench-") as tmp:
        runs = network_bench(settings.pairs, Path(tmp), cometbft)
    publish([*comet_environment(cometbft, load_before), "", *pairs_table(runs, settings.pairs),
             "", *cpu_table(runs)], out)


if __name__ == "__main__":
    main()
