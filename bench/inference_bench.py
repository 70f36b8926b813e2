"""Inference benchmark: what one inference costs the chain, in bytes and in block time.

Two figures (docs/design.md §5, §12), both over MsgStartInference + MsgFinishInference pairs that
an in-process ``Application`` over a SQLite store accepted (every tx result code 0):

- On-chain bytes per inference and per output token, k = 5, prompt ~100 tokens, outputs of
  32, 128 and 512 tokens, because every node stores and gossips these bytes forever. Each
  signed TxRaw is measured, and the artifact and both messages are set against the same data
  as JSON (what a naive encoding would cost). The artifacts are synthetic but shaped like a
  real LM's; when the default model is already converted in the model cache, one more row
  uses a real artifact that mlnode's TorchEngine generated, to check the synthetic shape.
- Pairs per second executed by FinalizeBlock on one core, start and finish of each inference
  in the same block (start first), against bank MsgSend txs/s on the same app in the same
  run: the ratio says how much heavier an inference pair is than a transfer, which is what
  bounds the inferences per block a chain of this code can carry. Each kind of block runs
  twice per round: once straight into FinalizeBlock (every signature verified in the block, as
  on a node that never saw the txs) and once after CheckTx of every tx (as on a node whose
  mempool received them: chain/verified_signatures.py then answers for the signatures).
  Figures are CPU time, since the machine running them is usually shared.
- Pairs per second on a network of 250 participants against one of 16, blocks interleaved:
  whether a pair's cost grows with the number of participants the draw chooses among.
- The chain's artifact reader (``artifact.token_ids``) against the reference decoder
  (``artifact.decode``) on the same artifacts, interleaved: what a finish's check costs now
  against what it cost before.

``--profile`` adds a cProfile of one pair block, to show where a pair's time goes. Progress
goes to stderr, the report (markdown) to stdout. Run ``python bench/inference_bench.py -h``.
"""

import asyncio
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from profiling import Profile, profile_finalize, profile_section
from report import (
    bench_parser,
    environment,
    parse_bench_args,
    progress,
    publish,
    section,
    table,
    version,
)

from chain.app import Application
from chain.bank.coins import NATIVE_DENOM
from chain.inference import artifact, payload
from chain.inference.artifact import ArtifactStep
from chain.store import Store
from inferchain_pb.inference.v1 import query_pb2 as inference_query
from inferchain_pb.inference.v1.inference_pb2 import MsgFinishInference, MsgStartInference
from mlnode.model_store import (
    DEFAULT_MODEL_ID,
    ModelFiles,
    default_cache_root,
    default_gguf,
    sha256_file,
)

ROOT = Path(__file__).resolve().parent.parent
# The test helpers hold the one copy of signed inference messages and txs (real keys, real
# signatures); they live in tests/, which is not a package.
sys.path.insert(0, str(ROOT / "tests"))
from chain_client import send_msg  # noqa: E402
from inference_actors import (  # noqa: E402
    DTYPE,
    MODEL_ID,
    TOP_K,
    Actor,
    delivery_signature,
    genesis_models,
    genesis_participant,
    request_id,
    start_msg,
)
from proposals import VALIDATOR_SECRET, genesis_validators, proposed_block  # noqa: E402

CHAIN_ID = "inferchain-bench"
FUNDS = 10**15
GENESIS_TIME_S = 1_767_225_600  # 2026-01-01T00:00:00Z; block h has time GENESIS_TIME_S + h
VOCAB = 49_152  # the default model's vocabulary
LENGTHS = (32, 128, 512)
PROMPT_TOKENS = 100
PARTICIPANTS = 16
# The network sizes a start's cost is compared over: a draw reads the participants it picks,
# not all of them. 250 is the most the test actors allow (their keys are seeded by one byte).
NETWORK_SIZES = (PARTICIPANTS, 250)
PAIRS_PER_BLOCK = 50
SENDS_PER_BLOCK = 2 * PAIRS_PER_BLOCK  # as many txs as a pair block, so blocks compare alike
# The default model at temperature 0.7 samples a top-5 token 94% of the time (artifact.py);
# when it does, the ranks below are how often each of the five is the one.
IN_TOP_K = 0.94
RANK_WEIGHTS = (80, 10, 5, 3, 2)
TEMPERATURE = 0.7
SEED_TRIES = 8  # real generations tried before settling for one that stopped early at EOS
PROFILE_TOP = 15
MODEL_CONVERTED = "converted.ok"  # mlnode.model_store's mark of a finished conversion
PROMPT = (
    "I am planning a two-week trip through Japan in late autumn with my partner. We like quiet "
    "towns, hot springs, good food and long walks, and we dislike crowds. Please write a "
    "detailed day-by-day itinerary, explain how to get between places by train, suggest where "
    "to stay, and describe what to eat in each region.")  # ~100 tokens once chat-templated


@dataclass(frozen=True)
class Settings:
    """What one run measures; ``--quick`` shrinks repetitions and the real generation only."""

    repeats: int
    real_length: int
    profile: bool


@dataclass(frozen=True)
class PairSize:
    """The bytes of one inference's two messages, signed and as JSON."""

    prompt_tokens: int
    output_tokens: int
    in_top_k: float  # share of output tokens that are one of their step's top-k ids
    start_tx: int
    finish_tx: int
    start_proto: int
    start_json: int
    finish_proto: int
    finish_json: int
    artifact: int
    artifact_json: int


@dataclass(frozen=True)
class SizeRow:
    """A row of the bytes tables: the mean of a set of pairs with the same artifact source."""

    label: str
    pairs: int
    mean: PairSize


@dataclass(frozen=True)
class BlockTiming:
    """One executed block: wall and process CPU seconds of FinalizeBlock.

    CPU well below wall means another process took the core for part of the block.
    """

    length: int | None  # output tokens of the block's pairs; None for a block of sends
    checked: bool  # every tx went through CheckTx first, as a node's mempool does
    txs: int
    finalize_s: float
    finalize_cpu_s: float


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, Path | None]:
    parser = bench_parser(__doc__)
    parser.add_argument("--profile", action="store_true",
                        help=f"also cProfile one extra {LENGTHS[1]}-token pair block and list "
                        f"the top {PROFILE_TOP} chain/ functions by cumulative time")
    args = parse_bench_args(
        parser, "smoke run: 2 timed blocks per kind, a 32-token real artifact", argv)
    settings = Settings(repeats=2 if args.quick else 7, real_length=32 if args.quick else 128,
                        profile=args.profile)
    return settings, args.out


# --- messages ----------------------------------------------------------------------------


def token_id(rng: random.Random) -> int:
    """Log-uniform over [64, VOCAB): frequent tokens have low ids (the default model's top-5
    ids: 13% below 128, 93% below 16,384), which is what makes varint ids pay."""
    return int(64 * (VOCAB / 64) ** rng.random())


def synthetic_steps(rng: random.Random, length: int) -> list[ArtifactStep]:
    """An artifact shaped like an LM's: top-5 logprobs spread over [-3, 0], most likely first,
    and the sampled token one of them IN_TOP_K of the time (mostly the first); otherwise an
    unlisted token, less likely than all five."""
    steps = []
    for _ in range(length):
        top_ids: set[int] = set()
        while len(top_ids) < TOP_K:
            top_ids.add(token_id(rng))
        ids = tuple(rng.sample(sorted(top_ids), TOP_K))
        logprobs = tuple(sorted((-3 * rng.random() for _ in range(TOP_K)), reverse=True))
        if rng.random() < IN_TOP_K:
            rank = rng.choices(range(TOP_K), weights=RANK_WEIGHTS)[0]
            steps.append(ArtifactStep(ids[rank], logprobs[rank], ids, logprobs))
            continue
        token = token_id(rng)
        while token in top_ids:
            token = token_id(rng)
        steps.append(ArtifactStep(token, rng.uniform(-3, logprobs[-1]), ids, logprobs))
    return steps


def finish_msg(executor: Actor, start: MsgStartInference, steps: Sequence[ArtifactStep]
               ) -> MsgFinishInference:
    """tests/inference_actors.py's finish_msg, with the given artifact instead of its fixed
    placeholder: the artifact's size is the point here."""
    output_ids = [s.token_id for s in steps]
    msg = MsgFinishInference(
        creator=executor.address, inference_id=start.inference_id, model_id=start.model_id,
        prompt_hash=start.prompt_hash, output_ids=output_ids,
        artifact=artifact.encode(steps, TOP_K), output_hash=payload.ids_hash(output_ids),
        prompt_tokens=len(start.prompt_ids), output_tokens=len(output_ids), serving_dtype=DTYPE)
    msg.executor_signature = executor.node_key.sign(payload.finish_payload(
        msg.inference_id, msg.model_id, msg.prompt_hash, msg.output_hash, msg.prompt_tokens,
        msg.output_tokens, msg.artifact, msg.creator, msg.serving_dtype)).signature
    msg.delivery_signature = delivery_signature(start, output_ids)
    return msg


def compact_json_size(fields: object) -> int:
    return len(json.dumps(fields, separators=(",", ":")).encode())


def message_json_size(msg: Message, steps: Sequence[ArtifactStep] | None = None) -> int:
    """Bytes of the message in proto3 JSON (json_format, as MessageToJson renders it, but
    compact). With steps, the artifact field counts as the artifact in artifact.json_size's
    form rather than as base64 of the binary encoding: the all-JSON baseline."""
    fields = json_format.MessageToDict(msg)
    if steps is None:
        return compact_json_size(fields)
    fields["artifact"] = None
    return compact_json_size(fields) - len("null") + artifact.json_size(steps)


def pair_size(start: MsgStartInference, start_tx: bytes, finish: MsgFinishInference,
              finish_tx: bytes, steps: Sequence[ArtifactStep]) -> PairSize:
    return PairSize(
        prompt_tokens=len(start.prompt_ids), output_tokens=len(steps),
        in_top_k=sum(s.token_id in s.top_ids for s in steps) / len(steps),
        start_tx=len(start_tx), finish_tx=len(finish_tx),
        start_proto=start.ByteSize(), start_json=message_json_size(start),
        finish_proto=finish.ByteSize(), finish_json=message_json_size(finish, steps),
        artifact=len(finish.artifact), artifact_json=artifact.json_size(steps))


def mean_size(label: str, sizes: Sequence[PairSize]) -> SizeRow:
    """The field-wise mean of a set of pairs (byte counts vary a little with varints)."""
    columns = zip(*(vars(s).values() for s in sizes), strict=True)
    return SizeRow(label, len(sizes), PairSize(*(statistics.fmean(c) for c in columns)))


# --- the chain ---------------------------------------------------------------------------


class BenchChain:
    """An Application over a SQLite store, with genesis participants (the weight a
    draw needs comes from genesis or proof of compute) and one funded developer, driven with
    FinalizeBlock and Commit as CometBFT would.

    Txs are signed right before their block, outside the timing, because a start names the
    executor drawn from the latest committed block hash and must be signed after it.
    """

    def __init__(self, store: Store, participants: int = PARTICIPANTS) -> None:
        self.developer = Actor.new(0, 0)
        self.parts = [Actor.new(1 + i, 1 + i) for i in range(participants)]
        self.everyone = [self.developer, *self.parts]
        self.app = Application(store, validator_secret=VALIDATOR_SECRET)
        self.app.init_chain(abci.RequestInitChain(
            time=Timestamp(seconds=GENESIS_TIME_S), chain_id=CHAIN_ID, initial_height=1,
            validators=genesis_validators(), app_state_bytes=json.dumps({
                "bank": {"balances": [{"address": a.address, "coins": [
                    {"denom": NATIVE_DENOM, "amount": str(FUNDS)}]} for a in self.everyone]},
                "inference": {"models": genesis_models(), "participants": [
                    genesis_participant(p, f"http://127.0.0.1:{9000 + i}")
                    for i, p in enumerate(self.parts)]}}).encode()))
        self.height = 0
        self.inferences = 0
        self.run_block([])

    def request(self, txs: list[bytes]) -> abci.RequestFinalizeBlock:
        """The next block as its proposer makes it: the beacon proof, then ``txs``."""
        height = self.height + 1
        return proposed_block(self.app, height, Timestamp(seconds=GENESIS_TIME_S + height), txs,
                              hashlib.sha256(height.to_bytes(8, "big")).digest())

    def finish_block(self, response: abci.ResponseFinalizeBlock) -> None:
        """Checks that every tx succeeded, since the figures must be of txs that went through,
        not of txs failing early, then commits."""
        self.height += 1
        for index, result in enumerate(response.tx_results):
            if result.code != 0:
                raise RuntimeError(f"tx {index} of block {self.height} failed with code "
                                   f"{result.code}: {result.log}")
        self.app.commit(abci.RequestCommit())

    def check(self, txs: list[bytes]) -> None:
        """CheckTx of every tx, as the mempool of a node that received them does before they
        are in a block: the signatures that verify are then known (chain/verified_signatures.py)
        when the block executes."""
        for index, tx in enumerate(txs):
            result = self.app.check_tx(abci.RequestCheckTx(tx=tx))
            if result.code != 0:
                raise RuntimeError(f"CheckTx of tx {index} failed with code {result.code}: "
                                   f"{result.log}")

    def run_block(self, txs: list[bytes], checked: bool = False) -> tuple[float, float]:
        """Executes and commits the next block, its txs first through CheckTx when `checked`;
        returns FinalizeBlock's wall and CPU seconds."""
        if checked:
            self.check(txs)
        request = self.request(txs)
        start, start_cpu = time.perf_counter(), time.process_time()
        response = self.app.finalize_block(request)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        self.finish_block(response)
        return wall, cpu

    def pair(self, prompt_ids: list[int], steps: Sequence[ArtifactStep]
             ) -> tuple[bytes, bytes, PairSize]:
        """A signed start and finish of a new inference, valid in the next block: the
        developer signs a distinct request, stamped with the latest block's time, to a transfer
        agent taken round robin; the executor is the one the chain draws for it, the agent
        itself at times, as on a real network."""
        self.inferences += 1
        label = f"bench-{self.inferences}"
        body = f"{label}: {len(prompt_ids)} prompt tokens".encode()
        timestamp = GENESIS_TIME_S + self.height
        agent = self.parts[self.inferences % len(self.parts)]
        order = self.app.queries.call("/inference.v1.Query/Draw", inference_query.QueryDrawRequest(
            inference_id=request_id(agent, self.developer, label, timestamp, body),
            model_id=MODEL_ID, draw_height=self.height)).order
        executor = next(p for p in self.parts if p.address == order[0])
        start = start_msg(agent, self.developer, label, executor.address, self.height,
                          timestamp, prompt_ids, max_tokens=len(steps), body=body,
                          chain_id=CHAIN_ID)
        finish = finish_msg(executor, start, steps)
        start_tx = agent.tx(start, chain_id=CHAIN_ID)
        finish_tx = executor.tx(finish, chain_id=CHAIN_ID)
        return start_tx, finish_tx, pair_size(start, start_tx, finish, finish_tx, steps)

    def pair_block(self, rng: random.Random, length: int) -> tuple[list[bytes], list[PairSize]]:
        """PAIRS_PER_BLOCK pairs with synthetic artifacts, each start right before its finish."""
        txs, sizes = [], []
        for _ in range(PAIRS_PER_BLOCK):
            prompt_ids = [token_id(rng) for _ in range(PROMPT_TOKENS)]
            start_tx, finish_tx, size = self.pair(prompt_ids, synthetic_steps(rng, length))
            txs += [start_tx, finish_tx]
            sizes.append(size)
        return txs, sizes

    def send_block(self) -> list[bytes]:
        """SENDS_PER_BLOCK bank transfers from the same accounts that sign the inference txs,
        round robin, each paying the next account."""
        txs = []
        for i in range(SENDS_PER_BLOCK):
            sender = self.everyone[i % len(self.everyone)]
            recipient = self.everyone[(i + 1) % len(self.everyone)]
            txs.append(sender.tx(send_msg(sender.address, recipient.address, 1),
                                 chain_id=CHAIN_ID))
        return txs

    def profile_block(self, txs: list[bytes]) -> Profile:
        """Where one FinalizeBlock's time goes among the chain/ functions; then checks and
        commits it like any other block."""
        response, profile = profile_finalize(PROFILE_TOP, self.app.finalize_block,
                                             self.request(txs))
        self.finish_block(response)
        return profile


def throughput(chain: BenchChain, settings: Settings
               ) -> tuple[list[BlockTiming], dict[int, list[PairSize]]]:
    """Times rounds of one send block and one pair block per output length, interleaved so
    that drift (state grows every block, other processes come and go) falls on every kind
    alike. A first round is left out of the figures: it warms SQLite's cache and the code.
    The sizes are of every pair executed, warm-up included."""
    rng = random.Random(20260101)
    timings: list[BlockTiming] = []
    sizes: dict[int, list[PairSize]] = {n: [] for n in LENGTHS}
    for round_number in range(settings.repeats + 1):
        progress(f"throughput: round {round_number}/{settings.repeats}"
                 f"{' (warm-up)' if round_number == 0 else ''}")
        for length in (None, *LENGTHS):
            for checked in (False, True):
                if length is None:
                    txs = chain.send_block()
                else:
                    txs, block_sizes = chain.pair_block(rng, length)
                    sizes[length] += block_sizes
                wall, cpu = chain.run_block(txs, checked)
                if round_number:
                    timings.append(BlockTiming(length, checked, len(txs), wall, cpu))
    return timings, sizes


def network_size_timings(chains: dict[int, BenchChain], settings: Settings
                         ) -> dict[int, list[float]]:
    """FinalizeBlock CPU seconds of checked blocks of 32-token pairs on networks of each size,
    the sizes interleaved round by round; a first round warms up and is left out."""
    rng = random.Random(20260102)
    timings: dict[int, list[float]] = {size: [] for size in chains}
    for round_number in range(settings.repeats + 1):
        progress(f"network sizes: round {round_number}/{settings.repeats}")
        for size, chain in chains.items():
            txs, _ = chain.pair_block(rng, LENGTHS[0])
            _, cpu = chain.run_block(txs, checked=True)
            if round_number:
                timings[size].append(cpu)
    return timings


@dataclass(frozen=True)
class CodecTiming:
    """Seconds per artifact of the reference decoder and of the chain's token-id reader."""

    length: int
    decode_s: float
    token_ids_s: float


def codec_timings(settings: Settings) -> list[CodecTiming]:
    """Times ``artifact.decode`` (the reference codec, a byte at a time, every step built) and
    ``artifact.token_ids`` (what a finish's check runs) over the same synthetic artifacts,
    interleaved, after checking that both read the same ids."""
    rng = random.Random(7)
    rows = []
    for length in LENGTHS:
        blobs = [artifact.encode(synthetic_steps(rng, length), TOP_K)
                 for _ in range(PAIRS_PER_BLOCK)]
        for blob in blobs:
            k, steps = artifact.decode(blob)
            if artifact.token_ids(blob) != (k, [s.token_id for s in steps]):
                raise RuntimeError("artifact.token_ids and artifact.decode disagree")
        spent: dict[str, list[float]] = {"decode": [], "token_ids": []}
        for _ in range(settings.repeats):
            for name, read in (("decode", artifact.decode), ("token_ids", artifact.token_ids)):
                start = time.process_time()
                for blob in blobs:
                    read(blob)
                spent[name].append((time.process_time() - start) / len(blobs))
        rows.append(CodecTiming(length, statistics.median(spent["decode"]),
                                statistics.median(spent["token_ids"])))
    return rows


# --- a real artifact ---------------------------------------------------------------------


@dataclass(frozen=True)
class RealGeneration:
    """What the default model produced for PROMPT, as the executor would record it."""

    prompt_ids: list[int]
    steps: list[ArtifactStep]
    seed: int


def cached_model() -> ModelFiles | None:
    """The default model's converted folder if it is already in the cache, else None: a first
    conversion takes minutes, which is not this bench's to spend."""
    try:
        gguf = default_gguf()
    except FileNotFoundError:
        return None
    sha = sha256_file(gguf)
    folder = default_cache_root() / sha[:32]  # where mlnode.model_store.prepare keeps it
    return ModelFiles(folder, sha) if (folder / MODEL_CONVERTED).is_file() else None


def generate_real(files: ModelFiles, length: int) -> RealGeneration:
    """Generates with mlnode's TorchEngine on the CPU at TEMPERATURE, trying seeds until an
    output runs to `length` tokens (else the longest), with top-k logprobs as an executor does.

    torch is imported here, not at the top: it takes seconds and only this path needs it.
    """
    import transformers

    from mlnode.sampling import SamplingParams
    from mlnode.torch_engine import TorchEngine
    from mlnode.types import Finished

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    engine = TorchEngine.from_files(files, model_id=DEFAULT_MODEL_ID)

    async def attempts() -> RealGeneration:
        best: RealGeneration | None = None
        for seed in range(SEED_TRIES):
            progress(f"real artifact: generating up to {length} tokens, seed {seed}")
            steps = [ArtifactStep(e.token_id, e.logprob, e.top_ids, e.top_logprobs)
                     async for e in engine.generate(prompt_ids, SamplingParams(
                         temperature=TEMPERATURE, max_tokens=length, seed=seed), TOP_K)
                     if not isinstance(e, Finished)]
            if best is None or len(steps) > len(best.steps):
                best = RealGeneration(prompt_ids, steps, seed)
            if len(steps) == length:
                break
        assert best is not None
        return best

    try:
        prompt_ids = engine.tokenizer.tokenize(engine.tokenizer.render_chat([("user", PROMPT)]))
        return asyncio.run(attempts())
    finally:
        engine.close()


# --- report ------------------------------------------------------------------------------


def inference_environment(load_before: float, real: RealGeneration | None) -> list[str]:
    """The header, and where the real artifact came from, if there is one."""
    lines = environment(load_before, ("cosmpy", "protobuf", "coincurve", "PyNaCl"))
    if real is None:
        lines.append("- real artifact: none (the default model is not in the model cache); "
                     "all artifacts are synthetic")
    else:
        lines.append(f"- real artifact: {DEFAULT_MODEL_ID} through mlnode's TorchEngine on "
                     f"the CPU, float32, temperature {TEMPERATURE}, seed {real.seed}; torch "
                     f"{version('torch')}, transformers {version('transformers')}")
    return lines


def ratio(binary: float, text: float) -> str:
    return f"{binary / text:.2f}"


def bytes_table(rows: Sequence[SizeRow]) -> list[str]:
    cells = []
    for row in rows:
        m = row.mean
        cells.append([
            row.label, f"{row.pairs}", f"{m.prompt_tokens:.0f}", f"{m.output_tokens:.0f}",
            f"{m.in_top_k:.0%}", f"{m.start_tx:,.0f} B", f"{m.finish_tx:,.0f} B",
            f"{(m.start_tx + m.finish_tx) / m.output_tokens:.1f} B", f"{m.artifact:,.0f} B",
            f"{m.artifact / m.output_tokens:.1f} B"])
    return section(
        f"On-chain bytes per inference (k = {TOP_K}; signed TxRaw, SIGN_MODE_DIRECT, one "
        "message per tx)",
        table(["artifact", "pairs", "prompt tokens", "output tokens", "token in top-5",
               "MsgStartInference tx", "MsgFinishInference tx", "both txs / output token",
               "artifact", "artifact / output token"], cells),
        "Means over the pairs, every one executed with code 0. Synthetic artifacts: "
        f"top-{TOP_K} logprobs uniform in [-3, 0], most likely first; the token is a "
        f"top-{TOP_K} entry {IN_TOP_K:.0%} of the time (rank weights "
        f"{'/'.join(map(str, RANK_WEIGHTS))}), else an unlisted, less likely one; ids "
        f"log-uniform over [64, {VOCAB:,}). Prompt ids are drawn the same way.")


def json_table(rows: Sequence[SizeRow]) -> list[str]:
    cells = []
    for row in rows:
        m = row.mean
        cells.append([
            row.label, f"{m.output_tokens:.0f}", f"{m.artifact:,.0f}", f"{m.artifact_json:,.0f}",
            ratio(m.artifact, m.artifact_json), f"{m.start_proto:,.0f}", f"{m.start_json:,.0f}",
            ratio(m.start_proto, m.start_json), f"{m.finish_proto:,.0f}",
            f"{m.finish_json:,.0f}", ratio(m.finish_proto, m.finish_json)])
    return section(
        "Binary against JSON (same data; mean bytes)",
        table(["artifact", "output tokens", "artifact", "as JSON", "binary/JSON",
               "MsgStartInference", "as JSON", "binary/JSON", "MsgFinishInference", "as JSON",
               "binary/JSON"], cells),
        "Binary: the artifact codec (chain/inference/artifact.py) and the messages' protobuf "
        "encoding. JSON: `artifact.json_size` (compact, full float repr) and the messages in "
        "proto3 JSON (`json_format`, compact), the finish's artifact field holding the "
        "artifact as JSON instead of base64.")


def throughput_table(timings: Sequence[BlockTiming]) -> list[str]:
    """Medians per kind of block; the ratios are a pair's (or send's) time over a MsgSend tx's
    time in a block not checked first, and a checked block's time over the same kind's
    unchecked one."""
    cells = []
    send_s = None
    for length in (None, *LENGTHS):
        unchecked_s = None
        for checked in (False, True):
            group = [t for t in timings if t.length == length and t.checked == checked]
            # CPU time: the app runs on one thread, and on a shared machine wall time also
            # counts the time other processes held the core.
            finalize_s = statistics.median(t.finalize_cpu_s for t in group)
            items = group[0].txs if length is None else group[0].txs // 2
            per_item = finalize_s / items
            send_s = send_s or per_item
            unchecked_s = unchecked_s or per_item
            name = (f"{items} bank MsgSend" if length is None
                    else f"{items} pairs, {length} output tokens")
            unit = "tx" if length is None else "pair"
            on_cpu = statistics.median(t.finalize_cpu_s / t.finalize_s for t in group)
            cells.append([name, "yes" if checked else "no", f"{group[0].txs}", f"{len(group)}",
                          f"{finalize_s * 1000:.1f} ms", f"{per_item * 1000:.2f} ms",
                          f"{1 / per_item:,.0f} {unit}s/s", f"{per_item / send_s:.2f}×",
                          f"{per_item / unchecked_s:.2f}×", f"{on_cpu:.0%}"])
    return section(
        f"FinalizeBlock in-process, one core ({PARTICIPANTS} participants, all txs code 0)",
        table(["block", "CheckTx first", "txs", "blocks timed", "FinalizeBlock CPU",
               "per pair / per tx", "pairs/s or txs/s", "× a MsgSend's time",
               "× not checked first", "on CPU"], cells, text_columns=2),
        "Medians over the blocks, send and pair blocks interleaved in the same run. A pair is "
        "MsgStartInference then MsgFinishInference of the same inference in the same block "
        "(100-token prompt, synthetic artifact). CheckTx first: every tx of the block went "
        "through CheckTx before FinalizeBlock (untimed), as on a node whose mempool received "
        "it, so its signatures that verified are not verified again (chain/verified_signatures"
        ".py); without it, the block verifies every signature itself, as a node that never "
        "saw the txs does. Times are this process's CPU time in FinalizeBlock (the app is one "
        "thread; on a shared machine wall time also counts other processes' turns). × a "
        "MsgSend's time is over one unchecked send's. On CPU is CPU time over wall time.")


def network_size_table(timings: dict[int, list[float]]) -> list[str]:
    baseline = None
    cells = []
    for size, cpus in timings.items():
        rate = PAIRS_PER_BLOCK / statistics.median(cpus)
        baseline = baseline or rate
        cells.append([f"{size}", f"{len(cpus)}", f"{statistics.median(cpus) * 1000:.1f} ms",
                      f"{rate:,.0f}", f"{rate / baseline:.2f}×"])
    return section(
        f"Pairs/s by network size (FinalizeBlock, one core, {PAIRS_PER_BLOCK} pairs of "
        f"{LENGTHS[0]} output tokens, checked first)",
        table(["participants", "blocks timed", "FinalizeBlock CPU", "pairs/s",
               f"vs {NETWORK_SIZES[0]}"], cells),
        "Medians of CPU time, the networks' blocks interleaved in the same run; every "
        "participant is a genesis participant serving the model, and every pair is drawn "
        "from all of them. A start reads the draw's pool (built once per draw-weights "
        "record) and the participants it picks, so a pair costs the same on a larger network.")


def codec_table(rows: Sequence[CodecTiming]) -> list[str]:
    cells = [[f"{r.length}", f"{r.decode_s * 1e6:,.0f} µs", f"{r.token_ids_s * 1e6:,.0f} µs",
              f"{r.decode_s / r.token_ids_s:.1f}×"] for r in rows]
    return section(
        f"Reading an artifact (k = {TOP_K}): the reference decoder against the chain's reader",
        table(["output tokens", "artifact.decode", "artifact.token_ids", "speed-up"], cells),
        f"CPU time per artifact, medians of {PAIRS_PER_BLOCK}-artifact rounds, both readers "
        "interleaved in the same run over the same synthetic artifacts (checked to give the "
        "same ids). A finish's check ran artifact.decode before; it runs token_ids now, which "
        "accepts exactly the same bytes (tests/test_artifact_token_ids.py).")


def main(argv: Sequence[str] | None = None) -> None:
    settings, out = parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="inference-bench-") as tmp, \
            Store.open(Path(tmp) / "app.sqlite") as store, \
            Store.open(Path(tmp) / "large.sqlite") as large_store:
        chain = BenchChain(store)
        timings, sizes = throughput(chain, settings)
        by_size = network_size_timings(
            {NETWORK_SIZES[0]: chain, NETWORK_SIZES[1]: BenchChain(large_store, NETWORK_SIZES[1])},
            settings)
        progress("timing the artifact readers")
        codec = codec_timings(settings)
        rows = [mean_size("synthetic", sizes[n]) for n in LENGTHS]
        profile = None
        if settings.profile:
            progress(f"profiling one block of {PAIRS_PER_BLOCK} {LENGTHS[1]}-token pairs")
            profile = chain.profile_block(chain.pair_block(random.Random(1), LENGTHS[1])[0])
        real = None
        files = cached_model()
        if files is not None:
            real = generate_real(files, settings.real_length)
            start_tx, finish_tx, size = chain.pair(real.prompt_ids, real.steps)
            chain.run_block([start_tx, finish_tx])
            rows.append(mean_size(f"real ({DEFAULT_MODEL_ID.split('/')[-1]})", [size]))
    lines = [*inference_environment(load_before, real), "", *bytes_table(rows), "",
             *json_table(rows), "", *throughput_table(timings), "",
             *network_size_table(by_size), "", *codec_table(codec)]
    if profile is not None:
        lines += ["", *profile_section(
            f"cProfile of one FinalizeBlock of {PAIRS_PER_BLOCK} pairs, {LENGTHS[1]} output "
            f"tokens: top {PROFILE_TOP} chain/ functions by cumulative time", profile,
            own_time=True)]
    publish(lines, out)


if __name__ == "__main__":
    main()
