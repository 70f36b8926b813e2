"""The soak's fault schedule: which fault, on whom, in what order, drawn from a seed, and how
each is injected, repaired and recovered from. Every fault stays on this machine's loopback
network and the soak's own processes, databases and filesystem.

Each fault records when it was injected, when it was repaired (the process restarted or
resumed, the disk freed) and when the network had recovered (the process ready again, a chain
node caught up with the others), so the report can give recovery time per fault class and
compare latency during faults with the fault-free run.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import openai
import psycopg

from bench.chaos.draws import skipped_picks
from bench.chaos.load import MAX_TOKENS, Load, Outcome
from bench.chaos.network import MODEL, ChaosNetwork
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.validation_pb2 import OPEN

CORRUPT_PAYLOAD = b"\xffnot a protobuf message\xff"
DISK_FREED_CATCH_UP_S = 30  # a chain node that wrote nothing while full catches up in this


@dataclass
class Fault:
    """One injected fault and its timeline (time.monotonic())."""

    kind: str
    target: str
    injected: float
    repaired: float = 0.0
    recovered: float = 0.0
    note: str = ""
    skips: list[float] = field(default_factory=list)  # a paused node skipped: latencies
    height: int = 0  # the chain's height when the fault's turn came, to place it among blocks

    @property
    def recovery_s(self) -> float:
        return self.recovered - self.repaired if self.recovered else float("nan")


class Schedule:
    """Injects faults one after another, each class in a seeded order and on seeded
    targets, with ``gap_s`` of quiet between two faults."""

    def __init__(self, network: ChaosNetwork, load: Load, seed: int, gap_s: float,
                 say: Callable[[str], None]) -> None:
        self.network = network
        self.load = load
        self.rng = random.Random(f"{seed}/faults")
        self.gap_s = gap_s
        self.say = say
        self.faults: list[Fault] = []
        self.stop_s = 1.5 * network.first_token_timeout_s  # a slow node, past the timeout

    @property
    def classes(self) -> dict[str, Callable[[], Fault]]:
        classes = {
            "kill ML node": lambda: self._kill(["ml"]),
            "kill API node": lambda: self._kill(["api"]),
            "kill chain node": lambda: self._kill(["chain"]),
            "kill ML + API node": lambda: self._kill(["ml", "api"]),
            "kill chain + ML node": lambda: self._kill(["chain", "ml"]),
            "stop ML node": lambda: self._pause("ml"),
            "stop API node": lambda: self._pause("api"),
            "restart PostgreSQL": self._restart_postgres,
            "corrupt outbox row": self._corrupt_outbox,
            "kill TA mid-stream": self._kill_mid_stream,
            "kill mid-PoC window": self._kill_mid_poc,
            "kill mid-validation": self._kill_mid_validation,
            "kill at epoch boundary": self._kill_at_epoch_boundary,
        }
        if self.network.small_fs is not None:
            classes["fill chain disk"] = self._fill_disk
        return classes

    def run_round(self, until: float) -> None:
        """Every fault class once, in a seeded order, while time is left before ``until``."""
        order = list(self.classes.items())
        self.rng.shuffle(order)
        for name, inject in order:
            if time.monotonic() >= until:
                return
            height = self.network.height()
            self.say(f"fault: {name} at height {height}")
            exits = len(self.network.exited)
            try:
                fault = inject()
            except TimeoutError as exc:  # a process that did not come back: a finding
                fault = Fault("", "", time.monotonic(), note=f"not recovered: {exc}")
            fault.kind, fault.height = name, height
            fault.note += "".join(
                f"; {exited} ({count}× while awaited, restarted each time)"
                for exited, count in Counter(self.network.exited[exits:]).items())
            self.faults.append(fault)
            self.say(f"fault: {name} on {fault.target}: recovered in {fault.recovery_s:.1f}s"
                     + (f" ({fault.note})" if fault.note else ""))
            time.sleep(self.gap_s)

    # Kills and pauses.

    def _targets(self, kinds: list[str]) -> list[int]:
        """Distinct participants, one per kind."""
        return self.rng.sample(range(self.network.participants), len(kinds))

    def _kill(self, kinds: list[str], targets: list[int] | None = None) -> Fault:
        targets = targets or self._targets(kinds)
        fault = Fault("", ", ".join(self.network.service_name(k, i)
                                    for k, i in zip(kinds, targets, strict=True)),
                      time.monotonic())
        for kind, i in zip(kinds, targets, strict=True):
            self.network.signal(kind, i, signal.SIGKILL)
        time.sleep(1.0)
        return self._restart(fault, kinds, targets)

    def _restart(self, fault: Fault, kinds: list[str], targets: list[int]) -> Fault:
        """Restarts what is not running and waits for all of it; the repair is now, unless
        the fault already had one (a disk freed)."""
        fault.repaired = fault.repaired or time.monotonic()
        for kind, i in zip(kinds, targets, strict=True):
            if not self.network.running(kind, i):
                self.network.restart(kind, i)
        for kind, i in zip(kinds, targets, strict=True):
            self.network.wait_ready(kind, i)
        fault.recovered = time.monotonic()
        return fault

    def _pause(self, kind: str) -> Fault:
        """SIGSTOP for longer than the first-token timeout, then SIGCONT: a slow node."""
        i, = self._targets([kind])
        fault = Fault("", self.network.service_name(kind, i), time.monotonic())
        self.network.signal(kind, i, signal.SIGSTOP)
        try:
            time.sleep(self.stop_s)
        finally:
            self.network.signal(kind, i, signal.SIGCONT)
        fault.repaired = time.monotonic()
        self.network.wait_ready(kind, i)
        fault.recovered = time.monotonic()
        fault.skips = self._skips_of(self.network.addresses[i], fault)
        return fault

    def _skips_of(self, stopped: str, fault: Fault) -> list[float]:
        """Latencies of the answered requests sent while ``stopped`` was paused that a later
        pick served after the draw had named it first. Read now: the chain answers a draw only
        while it is young (``max_draw_age_blocks``)."""
        latencies = []
        for outcome in self.load.snapshot():
            if outcome.result != "answered" or not outcome.inference_id or \
                    not fault.injected <= outcome.started <= fault.repaired:
                continue
            try:
                inference = self.network.query("Inference", q.QueryInferenceRequest(
                    id=outcome.inference_id), q.QueryInferenceResponse).inference
                if inference.attempt and stopped in skipped_picks(self.network, inference):
                    latencies.append(outcome.latency)
            except grpc.RpcError:  # not on chain yet, or its draw already too old
                continue
        return latencies

    # Storage.

    def _restart_postgres(self) -> Fault:
        fault = Fault("", "PostgreSQL (every API node's store)", time.monotonic())
        self.network.postgres.crash_restart()
        fault.repaired = time.monotonic()
        for i in range(self.network.participants):
            if not self.network.running("api", i):  # an API node that died of it restarts
                fault.note += f"API node {i} exited; "
                self.network.restart("api", i)
            self.network.wait_ready("api", i)
        fault.recovered = time.monotonic()
        return fault

    def _fill_disk(self) -> Fault:
        """Fills the small filesystem under one validator's home until it refuses, holds it
        full, frees it; a chain node that died of it is restarted."""
        small_fs = self.network.small_fs
        assert small_fs is not None
        node = int(small_fs.path.name.removeprefix("val"))
        fault = Fault("", f"chain node val{node}'s disk ({small_fs.size_mb} MB tmpfs)",
                      time.monotonic())
        written = small_fs.fill()
        time.sleep(self.stop_s)
        small_fs.free()
        fault.repaired = time.monotonic()
        fault.note = f"{written / 2**20:.1f} MB written before ENOSPC"
        if not self.network.running("chain", node):
            fault.note += "; the chain node exited on the full disk"
        else:
            try:
                self.network.wait_ready("chain", node, DISK_FREED_CATCH_UP_S)
            except TimeoutError:
                # CometBFT halts its consensus for good on a failed block-store write
                # ("CONSENSUS FAILURE"): the operator's remedy is a restart.
                fault.note += "; its CometBFT halted on the failed write: restarted"
                self.network.signal("chain", node, signal.SIGKILL)
        return self._restart(fault, ["chain"], [node])

    def _corrupt_outbox(self) -> Fault:
        """Overwrites the payload of the newest row in one API node's outbox (a pending one
        when there is one) with bytes that are no protobuf message."""
        i, = self._targets(["api"])
        fault = Fault("", f"API node {i}'s outbox", time.monotonic())
        with psycopg.connect(self.network.database_url(i), autocommit=True) as db:
            give_up = time.monotonic() + 30
            while True:  # a pending row lives for a block or two: look for one a while
                row = db.execute("SELECT id, key, state FROM outbox ORDER BY (state = "
                                 "'pending') DESC, id DESC LIMIT 1").fetchone()
                if row is None or row[2] == "pending" or time.monotonic() > give_up:
                    break
                time.sleep(0.05)
            if row is None:
                fault.note = "the outbox was empty"
            else:
                db.execute("UPDATE outbox SET payload = %s WHERE id = %s",
                           (CORRUPT_PAYLOAD, row[0]))
                fault.note = f"row {row[1]} ({row[2]})"
        fault.repaired = time.monotonic()
        time.sleep(self.stop_s)  # long enough for the outbox worker to meet it
        if not self.network.running("api", i):
            fault.note += "; the API node exited"
            self.network.restart("api", i)
        self.network.wait_ready("api", i)
        fault.recovered = time.monotonic()
        return fault

    # Kills timed to the protocol's moments.

    def _kill_mid_stream(self) -> Fault:
        """Streams a request through TA i and SIGKILLs that API node after the first token:
        the developer's stream is cut; the outcome joins the load's for the audit."""
        i, = self._targets(["api"])
        outcome = Outcome(ta=i, stream=True, signed=False, started=time.monotonic())
        first_token = threading.Event()
        client = openai.OpenAI(base_url=f"{self.network.api_url(i)}/v1",
                               api_key=self.network.api_keys[i], max_retries=0, timeout=120)

        def stream() -> None:
            try:
                for chunk in client.chat.completions.create(
                        model=MODEL, max_tokens=4 * MAX_TOKENS, stream=True,
                        messages=[{"role": "user", "content": "Tell a long story."}]):
                    for choice in chunk.choices:
                        outcome.inference_id = outcome.inference_id or (
                            choice.model_extra or {}).get("inference_id", "")
                        if choice.delta.content:
                            outcome.tokens += 1
                            first_token.set()
                outcome.result = "answered"
            except openai.APIStatusError as exc:
                outcome.result, outcome.error = "refused", f"{exc.status_code} {exc.message}"
            except Exception as exc:
                outcome.result = "cut" if outcome.tokens else "dropped"
                outcome.error = repr(exc)
            finally:
                outcome.ended = time.monotonic()
                first_token.set()

        reader = threading.Thread(target=stream, daemon=True)
        reader.start()
        first_token.wait(120)
        fault = Fault("", f"API node {i} (TA of a stream after {outcome.tokens} tokens)",
                      time.monotonic())
        self.network.signal("api", i, signal.SIGKILL)
        reader.join(60)
        self.load.record(outcome)
        fault.note = f"developer saw: {outcome.result}"
        return self._restart(fault, ["api"], [i])

    def _wait_height(self, ready: Callable[[int], bool], timeout: float = 600) -> int:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            height = self.network.height()
            if ready(height):
                return height
            time.sleep(0.2)
        raise TimeoutError("the chain did not reach the height the fault waits for")

    def _epoch_length(self) -> tuple[int, int]:
        """(epoch_length_blocks, poc_window_blocks) from the chain's params."""
        params = self.network.params("epochs")
        return int(params["epoch_length_blocks"]), int(params["poc_window_blocks"])

    def _kill_mid_poc(self) -> Fault:
        """Kills an API node (which runs its participant's proof of compute) a few blocks
        into an epoch's PoC window."""
        length, window = self._epoch_length()
        into = max(1, window // 3)
        height = self._wait_height(lambda h: (h - 1) % length == into)
        fault = self._kill(["api"])
        fault.note = f"at height {height}, block {into} of a {window}-block PoC window"
        return fault

    def _kill_at_epoch_boundary(self) -> Fault:
        """Kills a chain node on the last block of an epoch, so it restarts across the
        boundary (the epoch's settlement and the next draw weights)."""
        length, _ = self._epoch_length()
        height = self._wait_height(lambda h: h % length == 0)
        fault = self._kill(["chain"])
        fault.note = f"at height {height}, the last block of an epoch"
        return fault

    def _kill_mid_validation(self) -> Fault:
        """Kills the API node of a validator while a finished inference's validation window
        is open and it has not sealed a report on it yet."""
        def open_task() -> tuple[str, int] | None:
            height = self.network.height()
            tasks = self.network.query("ValidationTasks", q.QueryValidationTasksRequest(
                from_height=max(1, height - 60), to_height=height),
                q.QueryValidationTasksResponse).tasks
            for task in tasks:
                reported = {r.validator for r in task.reports} | \
                    {s.validator for s in task.seals}
                if task.state == OPEN and height <= task.deadline:
                    for i, address in enumerate(self.network.addresses):
                        if address not in reported and address != task.executor:
                            return task.inference_id, i
            return None

        started = time.monotonic()
        while (found := open_task()) is None:
            if time.monotonic() - started > 600:
                raise TimeoutError("no open validation task in 10 minutes")
            time.sleep(0.5)
        inference_id, i = found
        fault = self._kill(["api"], [i])
        fault.note = f"validation of {inference_id[:12]}… open"
        return fault
