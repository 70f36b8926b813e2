"""Gateway benchmark: what the API node's path costs on top of the ML node it drives.

A developer reaches the model through the transfer agent and the executor (docs/design.md §1,
§3): a signed OpenAI request, the TA's checks and executor draw, the executor's admission
checks, the ML node's stream relayed as server-sent events, and the inference started and
finished on chain. This bench prices that path against the plain ML node, on a real local
network (a solo chain node, ONE participant's ML node and API node, each its own process),
so every gateway request runs on the very ML node the baseline calls directly:

- direct: the ML node's gRPC Generate stream (``grpc.aio``), prompt ids tokenized up front;
- gateway: streaming chat completions through the API node with the official ``openai``
  client (AsyncOpenAI, requests signed with ``apinode.openai_signing.SignedRequests``);
- gateway, API key: the same with a bearer API key (the developer granted the agent an
  allowance), which the agent commits on chain before its draw (docs/design.md §3.3): what
  that commitment adds to the first token is the third table.

Same chat prompts, same max_tokens, temperature 0 and a fixed seed, top-5 logprobs on both
(what the executor always asks its ML node for, the artifact's k), at 1 and 8 concurrent
clients. Each wave of direct requests runs right beside a gateway wave and an API-key wave of
the same prompts, in an order that rotates, so that drift and other processes on a shared
machine fall on all alike; the figures are medians and the ratios are of the same run.
A second table splits the CPU time per request between the processes, which says where the
gateway's cost goes. As a check that the gateway did the real work, each of its inferences
is looked up on chain: it must be FINISHED, by the one participant. Progress goes to stderr,
the report (markdown) to stdout. Run ``python bench/gateway_bench.py --help``.
"""

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import httpx
import openai
from cpu_time import machine_busy_s, process_cpu_s
from report import bench_parser, environment, parse_bench_args, progress, publish, section, table

from apinode.config import ApiNodeConfig, write_home
from apinode.openai_signing import SignedRequests
from apinode.tx_sender import TxSender
from genesis.account_keys import AccountKey, generate_account_keys
from genesis.cli import DEFAULT_TEMPLATE
from genesis.solo import layout_solo
from genesis.template import load_template, parse_template
from inferchain_pb.inference.v1 import query_pb2 as inference_query
from inferchain_pb.inference.v1.inference_pb2 import FINISHED, MsgGrantAllowance
from inferchain_pb.inference.v1.query_pb2_grpc import QueryStub
from inferchain_pb.mlnode.v1 import mlnode_pb2 as ml
from inferchain_pb.mlnode.v1.mlnode_pb2_grpc import MLNodeStub

ROOT = Path(__file__).resolve().parent.parent
CHAIN_ID = "inferchain-bench"
FUNDS = "1000000000000000ninfer"
MODELS = [dict(m) for m in load_template(DEFAULT_TEMPLATE).models]
MODEL = MODELS[0]["id"]
TOP_K = MODELS[0]["top_k"]  # the executor asks its ML node for max(model top_k, wanted)
CONCURRENCY = (1, 8)
SEED = 7
BLOCK_INTERVAL_MS = 300
# CPU generation is slow: an inference must not expire, nor its draw age, while it runs.
# The participant is in genesis, which gives it its weight, and no proof-of-compute window
# takes that away in the middle of a run.
PARAMS = {"inference": {"expiration_blocks": 2000, "max_draw_age_blocks": 200},
          "epochs": {"poc_window_blocks": 0}}
START_DEADLINE_S = 300  # the ML node loads (and on a first run converts) the model
FINISH_DEADLINE_S = 120  # a wave's inferences not FINISHED by then are reported, not waited on
POLL_S = 0.5
REQUEST_TIMEOUT_S = 600
DIRECT, GATEWAY, GATEWAY_KEY = "direct", "gateway", "gateway, API key"
PATHS = (DIRECT, GATEWAY, GATEWAY_KEY)

# Open-ended asks, so that the model at temperature 0 usually runs to max_tokens.
PROMPTS = (
    "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in great detail how a steam engine works, step by step, for a curious student.",
    "Describe a walk through a busy market in a faraway city, with every sound and smell.",
    "Write a long letter from a sailor to his family describing a year at sea.",
    "Give a thorough history of bread making, from ancient times to modern bakeries.",
    "Tell a long fairy tale about a fox, a crow and a stolen golden key.",
    "Describe, at length, how to plan and plant a vegetable garden through the seasons.",
    "Write a detailed travel diary of a train journey across a continent.",
)

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """What one run measures; ``--quick`` shrinks only the output length and repetitions."""

    max_tokens: int
    rounds: int


@dataclass(frozen=True)
class Prompt:
    """A chat prompt, and its ids as the ML node's chat template renders it (what the TA
    sends the executor for the same messages)."""

    index: int
    text: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Reply:
    """One request's stream as its client saw it.

    `ttft_s` runs from the call to the first chunk carrying text; `after_first_s` from there
    to the end of the stream (for the gateway, its closing usage chunk included).
    """

    prompt: int
    tokens: int
    ttft_s: float
    after_first_s: float
    text: str
    inference_id: str  # empty for direct calls

    @property
    def rate(self) -> float:
        """Tokens/s after the first: the streaming rate once generation runs."""
        return (self.tokens - 1) / self.after_first_s


@dataclass(frozen=True)
class Wave:
    """One path at one concurrency: that many clients send one request each, at once.

    The direct and the gateway wave of the same prompts run back to back and share `pair`,
    so that the two are measured under the same conditions on the machine.
    """

    path: str
    concurrency: int
    pair: int
    replies: list[Reply]
    wall_s: float

    @property
    def throughput(self) -> float:
        """All clients' tokens over the wave's wall time."""
        return sum(r.tokens for r in self.replies) / self.wall_s


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used so far by each process of the network, the bench's clients (this
    process) and the whole machine; differences over a wave say where the cores went."""

    mlnode: float
    apinode: float
    chain: float
    bench: float
    machine: float

    def __sub__(self, other: "Cpu") -> "Cpu":
        return Cpu(*(a - b for a, b in zip(vars(self).values(), vars(other).values(),
                                           strict=True)))

    def __add__(self, other: "Cpu") -> "Cpu":
        return Cpu(*(a + b for a, b in zip(vars(self).values(), vars(other).values(),
                                           strict=True)))


@dataclass(frozen=True)
class ChainRecord:
    """What the chain holds of the gateway's inferences by the end."""

    total: int
    finished: int  # FINISHED with the participant as executor
    lag_s: list[float]  # per gateway wave: its end until its last inference was FINISHED


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, Path | None]:
    args = parse_bench_args(bench_parser(__doc__),
                            "smoke run: 8 output tokens, 2 rounds of the prompts instead of 6",
                            argv)
    return Settings(max_tokens=8 if args.quick else 32, rounds=2 if args.quick else 6), args.out


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """One ``python -m ...`` child in its own session, so that stopping its process group
    also stops anything it started; its output goes to a log in the temp dir, shown when
    the run fails."""

    def __init__(self, name: str, args: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n"
                               f"{self.log_tail()}")

    def cpu_s(self) -> float:
        return process_cpu_s(self.process.pid)

    def stop(self) -> None:
        """SIGTERM to the group (the API node then sends what its outbox holds), SIGKILL if
        it does not end within 30 s."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def wait_for(service: Service, probe: Callable[[], T | None], what: str) -> T:
    """Polls `probe` until it answers something other than None; a probe that cannot connect
    yet (gRPC or socket error) counts as not ready."""
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        service.check_running()
        try:
            found = probe()
        except (grpc.RpcError, OSError):
            found = None
        if found is not None:
            return found
        time.sleep(POLL_S)
    raise TimeoutError(f"{service.name}: {what} not within {START_DEADLINE_S}s:\n"
                       f"{service.log_tail()}")


@dataclass(frozen=True)
class Network:
    """The running processes and where to reach them."""

    chain: Service
    mlnode: Service
    apinode: Service
    chain_grpc: str
    mlnode_grpc: str
    api_url: str
    agent: str  # the participant's address: the TA the developer signs for, and the executor
    developer: AccountKey
    mlnode_info: ml.InfoResponse

    def cpu(self) -> Cpu:
        own = os.times()
        return Cpu(self.mlnode.cpu_s(), self.apinode.cpu_s(), self.chain.cpu_s(),
                   own.user + own.system, machine_busy_s())

    def check_running(self) -> None:
        for service in (self.chain, self.mlnode, self.apinode):
            service.check_running()


def start_chain(workdir: Path, accounts: Sequence[AccountKey], participant: dict, port: int,
                stack: ExitStack) -> tuple[Service, str]:
    template = parse_template({
        "chain_id": CHAIN_ID, "validators": [{"name": "val0", "power": 10}],
        "accounts": [{"address": a.address, "coins": FUNDS} for a in accounts],
        "models": MODELS, "participants": [participant], "params": PARAMS})
    info = layout_solo(template, workdir / "chain", grpc_port=port,
                       block_interval_ms=BLOCK_INTERVAL_MS)
    service = Service("chain node", ["-m", "chain", "node", "start", "--home", str(info.home)],
                      workdir / "chain.log")
    stack.callback(service.stop)
    address = f"127.0.0.1:{port}"
    with grpc.insecure_channel(address) as channel:
        queries = QueryStub(channel)
        wait_for(service, lambda: queries.Status(inference_query.QueryStatusRequest(),
                                                 timeout=2).height >= 2 or None, "height 2")
    return service, address


def start_mlnode(workdir: Path, port: int, stack: ExitStack
                 ) -> tuple[Service, str, ml.InfoResponse]:
    service = Service("ML node", ["-m", "mlnode", "serve", "--port", str(port)],
                      workdir / "mlnode.log")
    stack.callback(service.stop)
    address = f"127.0.0.1:{port}"
    with grpc.insecure_channel(address) as channel:
        stub = MLNodeStub(channel)
        wait_for(service, lambda: stub.Health(ml.HealthRequest(), timeout=2).serving or None,
                 "serving")
        return service, address, stub.Info(ml.InfoRequest(), timeout=10)


def participant_home(workdir: Path, key: AccountKey, chain_port: int, mlnode_port: int
                     ) -> tuple[ApiNodeConfig, dict]:
    """The participant's API node home, and the participant as genesis names it (with the
    home's node key), so that it has weight from the first block."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = workdir / "participant"
    write_home(home, {"chain_id": CHAIN_ID, "listen": f"127.0.0.1:{port}", "public_url": url,
                      "chain_grpc": f"127.0.0.1:{chain_port}",
                      "mlnode": f"127.0.0.1:{mlnode_port}"}, key.private_key_hex)
    config = ApiNodeConfig.load(home)
    return config, {"address": key.address, "url": url,
                    "node_pubkey": bytes(config.node_key().verify_key).hex(),
                    "models": [{"model_id": m["id"], "weights_sha256": m["weights_sha256"]}
                               for m in MODELS]}


def start_apinode(workdir: Path, config: ApiNodeConfig, stack: ExitStack
                  ) -> tuple[Service, str, str]:
    """The participant's API node; its health answer means it follows the chain and can
    serve."""
    url, home = config.public_url, config.home
    service = Service("API node", ["-m", "apinode", "serve", "--home", str(home)],
                      workdir / "apinode.log")
    stack.callback(service.stop)

    def health() -> str:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return json.loads(reply.read())["address"]

    return service, url, wait_for(service, health, "/health")


@contextmanager
def local_network(workdir: Path) -> Iterator[Network]:
    """A solo chain with a funded developer and one participant; every process is stopped
    on exit, also when starting or the run fails, after its log's last lines are shown
    (the logs go with the temp dir)."""
    developer, participant = generate_account_keys(2)
    services: list[Service] = []
    with ExitStack() as stack:
        try:
            chain_port, mlnode_port = free_port(), free_port()
            config, genesis_participant = participant_home(workdir, participant, chain_port,
                                                           mlnode_port)
            progress("starting the chain node")
            chain, chain_grpc = start_chain(workdir, [developer, participant],
                                            genesis_participant, chain_port, stack)
            services.append(chain)
            progress("starting the ML node (loads the model)")
            mlnode, mlnode_grpc, info = start_mlnode(workdir, mlnode_port, stack)
            services.append(mlnode)
            progress("starting the API node")
            apinode, url, agent = start_apinode(workdir, config, stack)
            services.append(apinode)
            yield Network(chain, mlnode, apinode, chain_grpc, mlnode_grpc, url, agent,
                          developer, info)
        except BaseException:
            for service in services:
                progress(f"{service.name} log, last lines:\n{service.log_tail()}")
            raise


# --- the two paths -----------------------------------------------------------------------


async def direct(stub: MLNodeStub, prompt: Prompt, settings: Settings) -> Reply:
    """One Generate stream, as the executor asks for it: the same sampling and top-k."""
    request = ml.GenerateRequest(
        prompt_ids=prompt.ids, top_logprobs=TOP_K,
        sampling=ml.SamplingParams(temperature=0.0, top_p=1.0, max_tokens=settings.max_tokens,
                                   seed=SEED))
    start = time.perf_counter()
    first = None
    tokens = 0
    pieces = []
    async for chunk in stub.Generate(request, timeout=REQUEST_TIMEOUT_S):
        if not chunk.HasField("step"):
            continue
        tokens += 1
        if chunk.step.text:
            first = first or time.perf_counter()
            pieces.append(chunk.step.text)
    end = time.perf_counter()
    if first is None:
        raise RuntimeError(f"direct: no text for prompt {prompt.index}")
    return Reply(prompt.index, tokens, first - start, end - first, "".join(pieces), "")


class Gateway:
    """Streaming chat completions through the API node; each request is signed with a nonce
    of its own (or carries the bearer key its client holds), so the same prompt may go out
    any number of times at once."""

    def __init__(self, client: openai.AsyncOpenAI, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    async def __call__(self, prompt: Prompt) -> Reply:
        start = time.perf_counter()
        stream = await self._client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt.text}],
            max_tokens=self._settings.max_tokens, temperature=0, seed=SEED, stream=True,
            stream_options={"include_usage": True})
        first = None
        tokens = 0
        inference_id = ""
        pieces = []
        async for chunk in stream:
            inference_id = inference_id or (chunk.model_extra or {}).get("inference_id", "")
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter()
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        end = time.perf_counter()
        if first is None or not tokens or not inference_id:
            raise RuntimeError(f"gateway: no text, usage or inference id for prompt "
                               f"{prompt.index}")
        return Reply(prompt.index, tokens, first - start, end - first, "".join(pieces),
                     inference_id)


async def api_key(network: Network, http: httpx.AsyncClient) -> str:
    """A bearer key for the developer (issued on its signed request), once it granted the
    agent an allowance on chain that covers every request of the run."""
    reply = await http.post(f"{network.api_url}/v1/inferchain/api-keys", content=b"{}")
    reply.raise_for_status()
    async with grpc.aio.insecure_channel(network.chain_grpc) as channel:
        sender = TxSender(channel, network.developer.private_key_hex, CHAIN_ID)
        granted = await sender.send([MsgGrantAllowance(
            creator=network.developer.address, transfer_agent=network.agent, limit=10**15)])
        deadline = time.monotonic() + FINISH_DEADLINE_S
        while await sender.tx_result(granted) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the allowance did not reach the chain")
            await asyncio.sleep(POLL_S)
    return reply.json()["api_key"]


async def run_wave(call: Callable[[Prompt], Awaitable[Reply]], path: str, pair: int,
                   prompts: Sequence[Prompt]) -> Wave:
    """One client per prompt, all started together."""
    start = time.perf_counter()
    replies = await asyncio.gather(*(call(p) for p in prompts))
    return Wave(path, len(prompts), pair, list(replies), time.perf_counter() - start)


async def finished_on_chain(queries: QueryStub, network: Network, ids: Sequence[str]
                            ) -> set[str]:
    """The inferences among `ids` that are FINISHED on chain with the participant as
    executor; one not started on chain yet is simply not among them."""
    done = set()
    for inference_id in ids:
        try:
            reply = await queries.Inference(
                inference_query.QueryInferenceRequest(id=inference_id), timeout=10)
        except grpc.aio.AioRpcError:
            continue
        found = reply.inference
        if found.status == FINISHED and found.executor == network.agent:
            done.add(inference_id)
    return done


async def await_finished(queries: QueryStub, network: Network, ids: Sequence[str]) -> None:
    """Waits until the chain has FINISHED the inferences, or FINISH_DEADLINE_S has passed
    (what is missing then shows in the final count)."""
    pending = set(ids)
    deadline = time.monotonic() + FINISH_DEADLINE_S
    while time.monotonic() < deadline:
        network.check_running()
        pending -= await finished_on_chain(queries, network, sorted(pending))
        if not pending:
            return
        await asyncio.sleep(POLL_S)


async def tokenize(stub: MLNodeStub) -> list[Prompt]:
    prompts = []
    for index, text in enumerate(PROMPTS):
        reply = await stub.Tokenize(ml.TokenizeRequest(chat=ml.ChatMessages(
            messages=[ml.ChatMessage(role="user", content=text)])), timeout=30)
        prompts.append(Prompt(index, text, tuple(reply.token_ids)))
    return prompts


def schedule(settings: Settings) -> list[tuple[int, int, list[int]]]:
    """(round, pair, prompt indices) of every set of waves (one a path): per round and
    concurrency, the prompts in groups of that many, one set per group. Within a set the
    order of the paths rotates, so that no path always follows another."""
    pairs = []
    for number in range(1, settings.rounds + 1):
        for concurrency in CONCURRENCY:
            for start in range(0, len(PROMPTS), concurrency):
                pairs.append((number, len(pairs),
                              list(range(start, min(start + concurrency, len(PROMPTS))))))
    return pairs


async def measure(network: Network, settings: Settings
                  ) -> tuple[list[Prompt], list[Wave], dict[tuple[str, int], Cpu], ChainRecord]:
    """A warm-up wave of each path at the top concurrency (not counted: connections, code
    paths and the batcher warm up), then the scheduled pairs of waves. After each gateway
    wave the bench waits until the chain has FINISHED its inferences, so the chain's work on
    their txs never falls on a direct wave."""
    auth = SignedRequests(bytes.fromhex(network.developer.private_key_hex), network.agent,
                          CHAIN_ID)
    async with grpc.aio.insecure_channel(network.mlnode_grpc) as ml_channel, \
            grpc.aio.insecure_channel(network.chain_grpc) as chain_channel, \
            httpx.AsyncClient(auth=auth, timeout=REQUEST_TIMEOUT_S) as http:
        stub = MLNodeStub(ml_channel)
        queries = QueryStub(chain_channel)
        client = openai.AsyncOpenAI(base_url=f"{network.api_url}/v1", api_key="unused",
                                    max_retries=0, http_client=http)
        keyed = openai.AsyncOpenAI(base_url=f"{network.api_url}/v1",
                                   api_key=await api_key(network, http), max_retries=0,
                                   timeout=REQUEST_TIMEOUT_S)
        paths = {DIRECT: lambda p: direct(stub, p, settings), GATEWAY: Gateway(client, settings),
                 GATEWAY_KEY: Gateway(keyed, settings)}
        prompts = await tokenize(stub)
        waves: list[Wave] = []
        cpu: dict[tuple[str, int], Cpu] = {}
        ids: list[str] = []
        lags: list[float] = []
        warm_up = [(0, -1, list(range(CONCURRENCY[-1])))]
        for number, pair, group in warm_up + schedule(settings):
            if pair < 0 or group[0] == 0:
                label = "warm-up" if pair < 0 else f"round {number}/{settings.rounds}"
                progress(f"{label}: {len(group)} concurrent")
            turn = pair % len(PATHS)
            for path in PATHS[turn:] + PATHS[:turn]:
                before = network.cpu()
                wave = await run_wave(paths[path], path, pair, [prompts[i] for i in group])
                if path != DIRECT:
                    ended = time.perf_counter()
                    new = [r.inference_id for r in wave.replies]
                    ids += new
                    await await_finished(queries, network, new)
                    lags.append(time.perf_counter() - ended)
                network.check_running()
                if pair >= 0:
                    used = network.cpu() - before
                    key = (path, wave.concurrency)
                    cpu[key] = cpu[key] + used if key in cpu else used
                    waves.append(wave)
        finished = await finished_on_chain(queries, network, ids)
    return prompts, waves, cpu, ChainRecord(len(ids), len(finished), lags)


# --- report ------------------------------------------------------------------------------


def of(waves: Sequence[Wave], path: str, concurrency: int) -> list[Wave]:
    return [w for w in waves if w.path == path and w.concurrency == concurrency]


def replies(waves: Sequence[Wave]) -> list[Reply]:
    return [reply for w in waves for reply in w.replies]


# What the main table reports of a set of waves, each a median: time to first token (s),
# tokens/s per request after its first, and tokens/s of all clients of a wave together.
MEASURES: tuple[tuple[str, str, float, Callable[[Sequence[Wave]], float]], ...] = (
    ("time to first token", "ms", 1000,
     lambda ws: statistics.median(r.ttft_s for r in replies(ws))),
    ("tokens/s per request after the first", "tok/s", 1,
     lambda ws: statistics.median(r.rate for r in replies(ws))),
    ("tokens/s, all clients together", "tok/s", 1,
     lambda ws: statistics.median(w.throughput for w in ws)),
)


@dataclass(frozen=True)
class Compared:
    """One measure of one path against a baseline path at one concurrency: each path's
    median, and the median over sets of each set's own ratio."""

    concurrency: int
    name: str
    unit: str
    scale: float
    base: float
    other: float
    paired: float


def compared(waves: Sequence[Wave], base: str, other: str) -> Iterator[Compared]:
    for concurrency in CONCURRENCY:
        base_waves = of(waves, base, concurrency)
        other_waves = of(waves, other, concurrency)
        twins = {w.pair: w for w in base_waves}
        for name, unit, scale, figure in MEASURES:
            yield Compared(concurrency, name, unit, scale, figure(base_waves),
                           figure(other_waves),
                           statistics.median(figure([w]) / figure([twins[w.pair]])
                                             for w in other_waves))


def main_table(waves: Sequence[Wave], settings: Settings) -> list[str]:
    rows = [[f"{c.concurrency}", c.name, f"{c.base * c.scale:,.1f} {c.unit}",
             f"{c.other * c.scale:,.1f} {c.unit}", f"{c.other / c.base:.2f}×",
             f"{c.paired:.2f}×"] for c in compared(waves, DIRECT, GATEWAY)]
    per_path = len(PROMPTS) * settings.rounds
    return section(
        f"Gateway (TA → executor → ML node) against the ML node directly, {MODEL}, "
        f"max_tokens {settings.max_tokens}",
        table(["clients", "measure", "direct (gRPC Generate)", "gateway (openai client)",
               "gateway / direct", "paired"], rows, text_columns=2),
        f"{per_path} requests per path and concurrency ({settings.rounds} rounds × "
        f"{len(PROMPTS)} prompts), as waves of that many clients sending one request each; "
        "a direct, a gateway and an API-key wave of the same prompts run back to back (a "
        "set), in an order that rotates. Direct and gateway (signed requests) are medians "
        "over requests (over waves for all clients together); gateway / direct is the ratio "
        "of those medians, paired the median over sets of each set's own ratio, which drift "
        "in the machine's load moves less. First token is the first chunk carrying text; "
        "tokens/s per request is (tokens − 1) over the time from it to the stream's end. "
        "Ratio above 1: the gateway takes longer (first token) or streams faster (tokens/s). "
        f"Temperature 0, seed {SEED}, top-{TOP_K} logprobs per token on every path.")


def key_table(waves: Sequence[Wave]) -> list[str]:
    """What committing an API-key request on chain adds to its first token, against the
    same request signed by the developer."""
    rows = [[f"{c.concurrency}", c.name, f"{c.base * c.scale:,.1f} {c.unit}",
             f"{c.other * c.scale:,.1f} {c.unit}",
             f"{(c.other - c.base) * c.scale:+,.1f} {c.unit}", f"{c.other / c.base:.2f}×",
             f"{c.paired:.2f}×"] for c in compared(waves, GATEWAY, GATEWAY_KEY)]
    return section(
        "API-key requests against signed ones through the gateway",
        table(["clients", "measure", "signed", "API key", "API key − signed",
               "API key / signed", "paired"], rows, text_columns=2),
        "The same waves as above: the signed request draws at the first block at or after "
        "its timestamp; the API-key request is first committed on chain (its agent's "
        "MsgCommitKeyRequests) and draws at the block after the commitment's, so it waits "
        f"for up to two blocks ({BLOCK_INTERVAL_MS} ms each here) where the signed one waits "
        "for up to one. Medians over requests (over waves for all clients together); paired "
        "is the median over sets of each set's own ratio.")


def cpu_table(waves: Sequence[Wave], cpu: dict[tuple[str, int], Cpu]) -> list[str]:
    """CPU milliseconds per request, by process."""
    rows = []
    for concurrency in CONCURRENCY:
        for path in PATHS:
            used = cpu[(path, concurrency)]
            count = len(replies(of(waves, path, concurrency)))
            rest = max(0.0, used.machine - used.mlnode - used.apinode - used.chain - used.bench)
            cells = (used.mlnode, used.apinode, used.chain, used.bench, rest, used.machine)
            rows.append([f"{concurrency}", path, *(f"{c / count * 1000:,.0f}" for c in cells)])
    return section(
        f"CPU time per request by process (ms; {os.cpu_count()} logical CPUs shared by all)",
        table(["clients", "path", "ML node", "API node", "chain node", "bench clients",
               "anything else", "machine busy"], rows, text_columns=2),
        "From /proc: each process's CPU seconds over its waves, divided by the requests. "
        "Bench clients is this process (grpc.aio for direct, the openai client for gateway). "
        "Gateway rows (both) include the wait after each gateway wave until its inferences "
        "were FINISHED on chain (the start and finish txs, and an API-key request's "
        "commitment), which no direct wave pays. Anything "
        "else includes other processes, kernel threads and hypervisor steal; it grows with "
        "a wave's wall time when other processes load the machine.")


def checks(prompts: Sequence[Prompt], waves: Sequence[Wave], on_chain: ChainRecord,
           settings: Settings) -> list[str]:
    """That both paths did the same work: same outputs, full lengths, and the gateway's
    inferences FINISHED on chain."""
    texts = {(w.pair, r.prompt): r.text for w in waves if w.path == DIRECT for r in w.replies}
    gateway = [(w.pair, r) for w in waves if w.path != DIRECT for r in w.replies]
    same = sum(r.text == texts[pair, r.prompt] for pair, r in gateway)
    every = replies(waves)
    full = sum(r.tokens == settings.max_tokens for r in every)
    lengths = sorted(len(p.ids) for p in prompts)
    return [
        f"- prompts: {len(prompts)} chat prompts of {lengths[0]}–{lengths[-1]} tokens once "
        "templated; the TA tokenizes them through the same ML node",
        f"- outputs: {full} of {len(every)} requests ran to max_tokens; {same} of "
        f"{len(gateway)} gateway outputs (signed and API key) are the same text as the direct "
        "output of the same prompt in the same set",
        f"- on chain: {on_chain.finished} of {on_chain.total} gateway inferences (warm-up "
        f"included) FINISHED with the participant as executor; a wave's last one was "
        f"FINISHED a median {statistics.median(on_chain.lag_s):.1f} s after its last response",
    ]


def report_lines(network: Network, prompts: Sequence[Prompt], waves: Sequence[Wave],
                 cpu: dict[tuple[str, int], Cpu], on_chain: ChainRecord, settings: Settings,
                 load_before: float) -> list[str]:
    info = network.mlnode_info
    return [
        *environment(load_before, ("torch", "transformers", "grpcio", "aiohttp", "openai",
                                   "httpx")),
        f"- ML node: {info.engine} engine, {info.model_id}, {info.dtype} on {info.device}; "
        f"one participant (ML node + API node), solo chain, a block every "
        f"{BLOCK_INTERVAL_MS} ms; each a separate process on this machine",
        "",
        *main_table(waves, settings), "",
        *key_table(waves), "",
        *cpu_table(waves, cpu), "",
        "### Checks", "",
        *checks(prompts, waves, on_chain, settings),
    ]


def exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM would end Python without unwinding; as SystemExit, the cleanup still stops
    every process this bench started and removes its temp dir."""
    sys.exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> None:
    settings, out = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp, \
            local_network(Path(tmp)) as network:
        prompts, waves, cpu, on_chain = asyncio.run(measure(network, settings))
        lines = report_lines(network, prompts, waves, cpu, on_chain, settings, load_before)
    publish(lines, out)


if __name__ == "__main__":
    main()
