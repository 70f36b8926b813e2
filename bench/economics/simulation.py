"""The strategies played on the chain's own state machine, in process, epoch after epoch.

One `Application` (tests/inference_net.py's `Net`) executes every block as CometBFT would:
real signed transactions through the ante handler and the message handlers (starts, relayed
starts, finishes, refusals, seed commitments and reveals, validation reports and ballots,
each sealed when its member decides it and opened as soon as the chain takes the opening),
and the real block steps (task windows, votes, canaries, judging, reputation, INVALID, epoch
settlement). Nothing of the chain is modelled here: only what each participant chooses to
send. Executors' outputs are not generated: whether a cheated output fails an honest
re-score is drawn from the calibrated detection rate of its cheat (`rates.py`), and an honest
validator reports what that re-score would measure. Executors plant their canaries as the API
node does (the artifact shifted, chain/validation/canary.py), which every honest re-score
fails, and claim each once its checks are over; the members whose reports failed it then open
their scores, which the chain measures against the real artifact (the real output's truth is
the executor's own play), and the vote closes on them unless they fail it, its voters waiting
for them as the API node's do.

Every scenario runs twice from the same genesis and the same random draws: once with every
participant honest (the baseline) and once with the deviants playing their strategy, so the
deviant's margin is measured against the honest profit of the very same seat in the same
run. Profit = balance change (rewards, work, validator fee shares, less every tx fee it paid)
− the compute it spent (inference at ``cost_share`` × fee, less a cheat's saving; a re-score at
``score_over_generate`` of that). After every block `Ledger` checks that coins are conserved.
"""

import functools
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.economics import rates
from bench.economics.model import START_TX_GAS
from chain.inference import artifact, payload, start_rules
from chain.inference.params import InferenceParams
from chain.query import QueryError
from chain.scales import PPM
from chain.validation import canary, logprob_scores
from chain.validation.logprob_scores import PositionScores
from chain.validation.sampling import CheckShares, seed_hash
from chain.validation.seals import (
    awaits_scores,
    opening_heights,
    scores_open_until,
    scores_openers,
)
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import MsgGrantAllowance, MsgRelayStart
from inferchain_pb.inference.v1.validation_pb2 import (
    FAILED,
    IN_VOTE,
    OPEN,
    MsgClaimCanary,
    MsgClaimRewards,
    MsgCommitSeed,
    MsgOpenScores,
    MsgValidation,
    ValidationTask,
)

ROOT = Path(__file__).resolve().parents[2]
# The in-process chain driver and its actors (real keys, real signed txs) live with the
# tests, which are not a package; bench/inference_bench.py imports them the same way.
sys.path.insert(0, str(ROOT / "tests"))
from coin_ledger import Ledger  # noqa: E402
from inference_actors import (  # noqa: E402
    AGENT_FEE,
    Actor,
    canary_steps,
    delivery_signature,
    finish_msg,
    key_commitment,
    pass_notice,
    request_id,
    seal_of,
    start_msg,
    validation_msg,
)
from inference_net import T0, Net  # noqa: E402

PROMPT_TOKENS = 136
OUTPUT_TOKENS = 64  # prompt + output = 200 tokens, the model's Economy
# The default registry's longest measured output not above OUTPUT_TOKENS: detection grows
# with length, so the shorter row favours the cheater.
DETECTION_TOKENS = max(n for n in rates.DEFAULT_REGISTRY.lengths if n <= OUTPUT_TOKENS)
PASS_DISTANCE, FAIL_DISTANCE = 1_000, 3_000_000  # micro-nats: well under / over 0.15
# Gas limits the actors sign for. A start's is the model's START_TX_GAS (it uses about
# 107,000; the API node signs for 1.3 × that; one passing picks, about 170,000), since its
# fee against the transfer agent's decides what withholding starts saves; a relay that lands
# first settles nothing but carries the delivery. A reveal settles every vote bond its
# member locked in the epoch (one per vote it opened): with a canary behind every inference
# that is dozens, past 200k gas (the API node simulates). A report is two txs: its seal
# (under 65,000: the task is rewritten with one more hash) and its opening, signed for what a
# report was, since it is the report (up to 230,000 when it closes a vote); so is an opening
# of scores, which may close a canary's vote.
GAS = {"start": START_TX_GAS, "relay": 200_000, "finish": 400_000, "report": 300_000,
       "scores": 300_000,
       "seal": 100_000, "seed": 200_000, "reveal": 2_000_000, "claim": 400_000,
       "commit": 400_000, "notice": 400_000, "start_passing": 250_000}
# Variants of one API-key request a favouring agent commits at most, one after another.
FAVOUR_TRIES = 4


@dataclass(frozen=True)
class Play:
    """What the deviants do; a default `Play` is every participant honest."""

    name: str = "honest"
    deviants: tuple[int, ...] = ()
    cheat: str = ""  # cheat class served on a share `f` of the deviants' inferences
    f: float = 0.0
    lazy: str = ""  # skip | blind-pass | copy, on a share `g` of owed checks
    g: float = 0.0
    coalition: str = ""  # against | shield: the deviants vote as one
    serving: str = ""  # silent | refuse: free riding on every draw that names a deviant
    agent: str = ""  # drop | withhold-start | favour-accomplice: as transfer agent

    def is_deviant(self, index: int) -> bool:
        return index in self.deviants


@dataclass(frozen=True)
class Setup:
    """The network the scenarios run on: a few members, short epochs, default economics."""

    members: int = 5
    epochs: int = 4
    epoch_length: int = 20
    inferences_per_block: int = 2
    regime: str = "launch"  # "late": no emission, only work coins at stake
    cost_share: float = 0.9
    score_over_generate: float = rates.SCORE_OVER_GENERATE
    canary_rate_ppm: int = 5_000
    seed: int = 1
    reputation_ppm: int = 0  # every member's at genesis
    request_window_s: int = 0  # the inference param request_time_window_s; 0: its default
    # The epochs param settled_epochs_kept; 0: every epoch of the run, whose validator
    # records the run's outcome reads at the end.
    settled_epochs_kept: int = 0
    # Every request an API-key request: the developer grants each agent an allowance, and
    # each agent commits its requests on chain, then starts each at the block after the
    # commitment's (docs/design.md §3.3). Otherwise the developer signs every request.
    key_requests: bool = False

    def genesis_state(self) -> dict:
        """Epoch and validation windows shortened to fit the short epochs; every economic
        parameter (rewards, fee share, reputation, INVALID) stays at the chain's default,
        except the emission, which the late regime sets to 0. Seals open for one block, and
        the reveal window is as long as the windows, the votes, their openings and the
        canary claims together, as the chain requires."""
        epochs = {"epoch_length_blocks": self.epoch_length, "poc_window_blocks": 0,
                  "poc_validation_window_blocks": 0,
                  "settled_epochs_kept": self.settled_epochs_kept or self.epochs + 1}
        if self.regime == "late":
            epochs["initial_epoch_reward"] = 0
        return {"epochs": {"params": epochs},
                "validation": {"params": {"validation_window_blocks": 3,
                                          "voting_period_blocks": 3,
                                          "opening_blocks": 1,
                                          "canary_claim_blocks": 2,
                                          "reveal_window_blocks": 10,
                                          "canary_rate_ppm": self.canary_rate_ppm}}}


@dataclass(frozen=True)
class Committed:
    """An API-key request its agent committed: started once its draw block exists."""

    agent_index: int
    label: str  # the request's own; a variant's adds its try
    timestamp: int
    draw_height: int
    tries: int  # variants committed so far, this one included


@dataclass
class Seat:
    """What one participant spent off chain, beside its balance on chain."""

    compute: float = 0.0


@dataclass
class Run:
    """One scenario's outcome: each participant's profit, and what the chain recorded."""

    play: Play
    profits: list[float]
    per_epoch: list[list[float]]
    heights: int
    invalidated: int = 0
    lazy_epochs: int = 0
    invalid_epochs: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    # Each participant's reputation at the end: what a short run's profit leaves out is the
    # climb a seat made or failed to make, which pays (or costs) in the epochs after it.
    reputations: list[int] = field(default_factory=list)


def epoch_seed(index: int, epoch: int) -> bytes:
    return bytes([index + 1, epoch % 256]) * 16


def ballot_key(task: ValidationTask) -> str:
    """What a member reports on once: a task, and again the vote its canary claim opened."""
    return task.inference_id + ("/canary" if task.canary_key else "")


class Simulation:
    """Plays one `Play` on a fresh chain; `run()` returns the profits."""

    def __init__(self, setup: Setup, play: Play) -> None:
        self.setup, self.play = setup, play
        self.net = Net(setup.members, expiration_blocks=10, extra_state=setup.genesis_state(),
                       reputation_ppm=setup.reputation_ppm, inference_params={
                           "request_time_window_s": setup.request_window_s}
                       if setup.request_window_s else None)
        self.ledger = Ledger(self.net, setup.epoch_length)
        self.parts = self.net.parts
        self.index = {p.address: i for i, p in enumerate(self.parts)}
        self.seats = [Seat() for _ in self.parts]
        self.start_balances = [self.net.balance(p) for p in self.parts]
        self.rng = random.Random(setup.seed)  # the same draws in the baseline and the play
        self.lazy_rng = random.Random(setup.seed + 1)  # the deviants' own coin flips
        self.deferred: list[tuple[int, str]] = []  # copiers waiting for a report to copy
        # Each member's sealed reports and ballots not opened yet: the opening, and the
        # ballot key of what it was sealed on.
        self.openings: list[list[tuple[MsgValidation, str]]] = [[] for _ in self.parts]
        self.truth: dict[str, str] = {}  # inference id → good | hidden | caught | canary
        self.canaries: dict[str, tuple[bytes, str]] = {}  # unclaimed: key, real truth
        self.real_artifacts: dict[str, bytes] = {}  # each canary's, as served
        # Scores committed by failing reports on canaries, opened once a claim lands.
        self.scores: dict[tuple[int, str], bytes] = {}
        self.ours: set[str] = set()
        self.reported: set[tuple[str, int]] = set()
        self.requests = 0
        self.committed: list[Committed] = []
        # Starts waiting for their passes' claim windows: the height they are sent after.
        self.passing: list[tuple[int, Callable[[], list[bytes]]]] = []
        self.claim_blocks = InferenceParams().pass_claim_blocks
        # Blocks a claimed canary's checkers have to open their scores.
        self.scores_blocks = setup.genesis_state()["validation"]["params"]["canary_claim_blocks"]
        self.notes: dict[str, int] = {}
        detection = rates.DEFAULT_REGISTRY.detection(play.cheat, DETECTION_TOKENS) \
            if play.cheat else None
        self.detect_rate = detection.rate if detection else 0.0
        self.saving = next((c.saving for c in rates.CHEATS if c.name == play.cheat), 0.0)
        self.fee = (PROMPT_TOKENS + OUTPUT_TOKENS) * 100
        self.model = self.net.query("Models", q.QueryModelsRequest()).models[0]

    # -- blocks ------------------------------------------------------------------------

    def block(self, txs: Sequence[bytes]) -> list:
        """Every tx a participant sends is one the chain takes."""
        results = self.ledger.block(list(txs))
        failed = [r.log for r in results if r.code]
        assert not failed, f"height {self.net.height}: {failed}"
        return results

    def run(self, after_epoch: Callable[[int], None] | None = None) -> Run:
        """Plays every epoch; ``after_epoch(epoch)`` runs once each epoch's blocks are in."""
        s = self.setup
        per_epoch = []
        last = [self.net.balance(p) for p in self.parts]
        spent = [0.0] * len(self.parts)
        self.commit(0)
        if s.key_requests:
            self.block([self.net.developer.tx(MsgGrantAllowance(
                creator=self.net.developer.address, transfer_agent=p.address, limit=10**15))
                for p in self.parts])
        for epoch in range(s.epochs):
            first = 1 + epoch * s.epoch_length
            while self.net.height < first + s.epoch_length - 1:
                height = self.net.height + 1
                txs: list[bytes] = []
                if height == first + s.epoch_length - 3:
                    txs += self.commit_txs(epoch + 1)
                if epoch and height == first + 1:
                    txs += self.claim_txs(epoch - 1)
                txs += self.committed_starts() + self.passed_starts()
                if first + 1 < height < first + s.epoch_length - 8:
                    txs += self.inference_txs(s.inferences_per_block)
                txs += self.report_txs(epoch) + self.canary_claims() + self.scores_txs()
                self.block(txs)
            now = [self.net.balance(p) for p in self.parts]
            compute = [seat.compute for seat in self.seats]
            per_epoch.append([n - b - (c - sp) for n, b, c, sp in
                              zip(now, last, compute, spent, strict=True)])
            last, spent = now, compute
            if after_epoch is not None:
                after_epoch(epoch)
        # Reveal the last epoch and let it settle.
        self.block(self.claim_txs(s.epochs - 1))
        while self.net.height < s.epochs * s.epoch_length + 10:
            self.block(self.committed_starts() + self.passed_starts() +
                       self.report_txs(s.epochs) +
                       self.canary_claims() + self.scores_txs())
        profits = [self.net.balance(p) - b - seat.compute
                   for p, b, seat in zip(self.parts, self.start_balances, self.seats,
                                         strict=True)]
        return Run(self.play, profits, per_epoch, self.ledger.heights_checked,
                   invalidated=sum(t == "caught" for t in self.truth.values()),
                   lazy_epochs=self.count_records("lazy"),
                   invalid_epochs=self.count_records("invalid"), notes=self.notes,
                   reputations=[self.net.query("ExecutorStats", q.QueryExecutorStatsRequest(
                       address=p.address)).stats.reputation_ppm for p in self.parts])

    def count_records(self, flag: str) -> int:
        found = 0
        for epoch in range(self.setup.epochs):
            for i in self.play.deviants:
                record = self.net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
                    address=self.parts[i].address, epoch=epoch)).record
                found += bool(getattr(record, flag))
        return found

    # -- seeds -------------------------------------------------------------------------

    def commit(self, epoch: int) -> None:
        self.block(self.commit_txs(epoch))

    def commit_txs(self, epoch: int) -> list[bytes]:
        return [p.tx(MsgCommitSeed(creator=p.address, epoch=epoch,
                                   seed_hash=seed_hash(epoch_seed(i, epoch))),
                     gas_limit=GAS["seed"]) for i, p in enumerate(self.parts)]

    def claim_txs(self, epoch: int) -> list[bytes]:
        return [p.tx(MsgClaimRewards(creator=p.address, epoch=epoch,
                                     seed=epoch_seed(i, epoch)), gas_limit=GAS["reveal"])
                for i, p in enumerate(self.parts)]

    # -- inferences --------------------------------------------------------------------

    def inference_txs(self, count: int) -> list[bytes]:
        """This block's new requests: started at once when signed, committed when API-key
        requests (``committed_starts`` starts them two blocks on)."""
        if self.setup.key_requests:
            return self.commitments([self.new_request() for _ in range(count)])
        txs = []
        for _ in range(count):
            agent_index, label = self.new_request()
            txs += self.serve(agent_index, label, T0 + self.net.height, self.net.height)
        return txs

    def new_request(self) -> tuple[int, str]:
        """One developer request: its agent (round robin, a dropping agent passes it on)
        and its label."""
        self.requests += 1
        agent_index = self.requests % len(self.parts)
        while self.play.agent == "drop" and self.play.is_deviant(agent_index):
            self.notes["dropped"] = self.notes.get("dropped", 0) + 1
            agent_index = (agent_index + 1) % len(self.parts)
        return agent_index, f"r{self.requests}"

    def commitments(self, requests: list[tuple[int, str]], tries: int = 1) -> list[bytes]:
        """Each agent's commitment of its requests (variant ``tries`` of each), landing in
        the next block: their draws are at the block after it."""
        draw_height = self.net.height + 2
        by_agent: dict[int, list[Committed]] = {}
        for agent_index, label in requests:
            by_agent.setdefault(agent_index, []).append(Committed(
                agent_index, label, T0 + self.net.height, draw_height, tries))
        txs = []
        for agent_index, batch in by_agent.items():
            agent = self.parts[agent_index]
            txs.append(agent.tx(key_commitment(agent, [self.key_id(c) for c in batch],
                                               self.fee + AGENT_FEE), gas_limit=GAS["commit"]))
            self.committed += batch
        return txs

    def key_id(self, committed: Committed) -> str:
        return request_id(self.parts[committed.agent_index], self.net.developer,
                          committed.label, committed.timestamp, signed=False)

    def committed_starts(self) -> list[bytes]:
        """The committed requests whose draw block is the last one: each is started and
        finished, but a favouring agent drops a variant whose draw does not name an
        accomplice first and commits another (its forfeit burns once its window passed),
        up to FAVOUR_TRIES variants."""
        due = [c for c in self.committed if c.draw_height == self.net.height]
        self.committed = [c for c in self.committed if c.draw_height != self.net.height]
        txs, again = [], []
        for c in due:
            agent = self.parts[c.agent_index]
            if self.play.agent == "favour-accomplice" and self.play.is_deviant(c.agent_index):
                first = self.order(agent, c.label, c.timestamp, c.draw_height, False)[0]
                if first not in self.accomplices(agent) and c.tries < FAVOUR_TRIES:
                    self.notes["variants dropped"] = self.notes.get("variants dropped", 0) + 1
                    again.append(c)
                    continue
                if first in self.accomplices(agent):
                    self.notes["favoured"] = self.notes.get("favoured", 0) + 1
            txs += self.serve(c.agent_index, c.label, c.timestamp, c.draw_height, signed=False)
        for c in again:
            txs += self.commitments([(c.agent_index, f"{c.label.split('/')[0]}/{c.tries}")],
                                    c.tries + 1)
        return txs

    def accomplices(self, agent: Actor) -> set[str]:
        return {p.address for i, p in enumerate(self.parts)
                if self.play.is_deviant(i) and p is not agent}

    def serve(self, agent_index: int, label: str, timestamp: int, draw_height: int,
              signed: bool = True) -> list[bytes]:
        """The request ``label`` of ``agent_index``: the chain's draw at ``draw_height``, and
        what the drawn executor does with it."""
        agent = self.parts[agent_index]
        order = self.order(agent, label, timestamp, draw_height, signed)
        attempt, refusals = 0, ()
        while attempt < len(order) - 1:
            if order[attempt] == agent.address and len(refusals) < attempt:
                # The agent serves itself past a pick only on that pick's signed refusal
                # (the API node passes itself over too).
                attempt += 1
                continue
            if not (self.play.serving and self.play.is_deviant(self.index[order[attempt]])):
                break
            if self.play.serving == "refuse":
                inference_id = request_id(agent, self.net.developer, label, timestamp,
                                          signed=signed)
                refusals = (*refusals, self.parts[self.index[order[attempt]]].node_key.sign(
                    payload.refusal_payload(inference_id, attempt, order[attempt])).signature)
            self.notes["skipped"] = self.notes.get("skipped", 0) + 1
            attempt += 1
        # Both draws are made for every request, when it comes, so the baseline sees the
        # same stream.
        draws = self.rng.random() < self.play.f, self.rng.random() < self.detect_rate
        begin = functools.partial(self.begin, agent_index, label, timestamp, draw_height,
                                  signed, order[attempt], attempt, refusals, draws)
        passed = [(j, order[j]) for j in range(attempt)
                  if j >= len(refusals) or not refusals[j]]
        if not passed:
            return begin()
        # A pick passed without its refusal needs the agent's notice, unclaimed through the
        # claim window (a silent deviant claims nothing): the start comes after it.
        start = start_msg(agent, self.net.developer, label, order[attempt], draw_height,
                          timestamp, [], signed_request=signed)
        self.passing.append((self.net.height + 1 + self.claim_blocks, begin))
        return [agent.tx(pass_notice(agent, [(start, j, pick) for j, pick in passed]),
                         gas_limit=GAS["notice"])]

    def passed_starts(self) -> list[bytes]:
        """The starts whose passes' claim windows end with the last block."""
        due = [begin for height, begin in self.passing if height <= self.net.height]
        self.passing = [(h, b) for h, b in self.passing if h > self.net.height]
        return [tx for begin in due for tx in begin()]

    def begin(self, agent_index: int, label: str, timestamp: int, draw_height: int,
              signed: bool, executor_address: str, attempt: int, refusals: tuple[bytes, ...],
              draws: tuple[bool, bool]) -> list[bytes]:
        """The start and finish of a request, its executor's coin flips ``draws`` (cheats,
        caught) made when it came."""
        agent = self.parts[agent_index]
        executor_index = self.index[executor_address]
        executor = self.parts[executor_index]
        start = start_msg(agent, self.net.developer, label, executor.address, draw_height,
                          timestamp, list(range(1, PROMPT_TOKENS + 1)),
                          max_tokens=OUTPUT_TOKENS, attempt=attempt, refusals=refusals,
                          signed_request=signed)
        self.ours.add(start.inference_id)
        cheats, caught = draws
        cheated = bool(self.play.cheat) and self.play.is_deviant(executor_index) and cheats
        self.truth[start.inference_id] = ("caught" if caught else "hidden") if cheated \
            else "good"
        seat = self.seats[executor_index]
        seat.compute += self.setup.cost_share * self.fee * (1 - (self.saving if cheated else 0))
        output = [7 + t % 90 for t in range(OUTPUT_TOKENS)]
        steps = None
        key = canary.key(epoch_seed(executor_index, (draw_height - 1) //
                                    self.setup.epoch_length), start.inference_id)
        if self.setup.canary_rate_ppm and canary.is_canary(key, self.setup.canary_rate_ppm):
            self.canaries[start.inference_id] = (key, self.truth[start.inference_id])
            self.truth[start.inference_id] = "canary"
            real = finish_msg(executor, start, output).artifact
            self.real_artifacts[start.inference_id] = real
            steps = canary_steps(real, key, self.model)
        if self.play.agent == "withhold-start" and self.play.is_deviant(agent_index) and \
                agent is not executor:
            # The executor relays once its output reached the developer, with the agent's
            # signature that it did.
            begun = executor.tx(MsgRelayStart(
                creator=executor.address, start=start,
                delivered_hash=payload.ids_hash(output),
                delivery_signature=delivery_signature(start, output)), gas_limit=GAS["relay"])
        else:
            # A start passing picks reads their notices and returns their bonds.
            passes = attempt > sum(1 for r in refusals if r)
            begun = agent.tx(start, gas_limit=GAS["start_passing" if passes else "start"])
        # Signed after the start: when the agent is its own executor, the sequences follow.
        return [begun, executor.tx(finish_msg(executor, start, output, steps=steps),
                                   gas_limit=GAS["finish"])]

    def canary_claims(self) -> list[bytes]:
        """Each executor claims its canaries whose checks are over: the vote that follows
        re-scores the real artifact, whose truth is the executor's own play."""
        txs = []
        for inference_id, (key, real) in list(self.canaries.items()):
            try:
                task = self.net.query("ValidationTask", q.QueryValidationTaskRequest(
                    inference_id=inference_id)).task
            except QueryError:
                continue  # not finished yet (its start came in this block)
            if task.state == OPEN or self.net.height + 1 <= task.open_until:
                continue  # its window's seals may still be opened: a claim would tell
            del self.canaries[inference_id]
            self.truth[inference_id] = real
            if task.state != FAILED:
                executor = self.parts[self.index[task.executor]]
                txs.append(executor.tx(MsgClaimCanary(creator=executor.address,
                                                      inference_id=inference_id, key=key),
                                       gas_limit=GAS["claim"]))
        return txs

    def scores_txs(self) -> list[bytes]:
        """Each member whose report failed a claimed canary opens the scores it committed,
        while the chain takes them; scores of a canary not claimed yet wait."""
        txs = []
        following = self.net.height + 1
        for (i, inference_id), scores in list(self.scores.items()):
            if inference_id in self.canaries:
                continue  # not claimed yet
            task = self.net.query("ValidationTask", q.QueryValidationTaskRequest(
                inference_id=inference_id)).task
            if not task.canary_key and task.state != FAILED:
                continue  # its claim lands in the block being made
            del self.scores[(i, inference_id)]
            member = self.parts[i]
            if task.state == IN_VOTE and member.address in scores_openers(task) and \
                    following <= scores_open_until(task, self.scores_blocks):
                txs.append(member.tx(MsgOpenScores(
                    creator=member.address, inference_id=inference_id, scores=scores),
                    gas_limit=GAS["scores"]))
                self.notes["scores opened"] = self.notes.get("scores opened", 0) + 1
        return txs

    def canary_scores(self, inference_id: str) -> bytes:
        """An honest member's scores of a canary's output: the real artifact's logprobs
        where the executor served honestly (or its cheat hides), a nat off where its cheat
        fails a re-score."""
        _, steps = artifact.decode(self.real_artifacts[inference_id])
        off = PPM if self.canaries[inference_id][1] == "caught" else 0
        return logprob_scores.encode([
            PositionScores(p.sampled - off, p.floor - off, tuple(t - off for t in p.tops))
            for p in logprob_scores.of_artifact(steps)])

    def order(self, agent: Actor, label: str, timestamp: int, draw_height: int,
              signed: bool) -> list[str]:
        """The executor order of the request: an API-key request's leaves its agent out
        (start_rules)."""
        inference_id = request_id(agent, self.net.developer, label, timestamp, signed=signed)
        return start_rules.executor_order(self.net.draw_at(inference_id, draw_height),
                                          agent.address, signed)

    # -- validation --------------------------------------------------------------------

    def report_txs(self, epoch: int) -> list[bytes]:
        """The openings due in the next block, then the seals: of reports on the tasks of
        the last block (the members their seeds assign) and of ballots in open votes, each
        member as its play says."""
        txs = self.opening_txs()
        txs += self.copied_txs()  # the copiers of the block before
        height = self.net.height
        tasks = self.net.query("ValidationTasks", q.QueryValidationTasksRequest(
            from_height=height, to_height=height)).tasks
        shares: dict[int, CheckShares] = {}
        for task in tasks:
            if task.epoch not in shares:
                shares[task.epoch] = CheckShares(self.net.query(
                    "Epoch", q.QueryEpochRequest(epoch=task.epoch)).members)
            for i, member in enumerate(self.parts):
                if not shares[task.epoch].owes(epoch_seed(i, task.epoch), task, member.address):
                    continue
                verdict = self.verdict(i, task, ballot=False)
                if verdict is not None:
                    txs.append(self.seal(i, task, verdict))
        for i, member in enumerate(self.parts):
            for task in self.net.query("PendingVotes", q.QueryPendingVotesRequest(
                    voter=member.address)).tasks:
                if (ballot_key(task), i) in self.reported or \
                        awaits_scores(task, height + 1, self.scores_blocks):
                    continue
                verdict = self.verdict(i, task, ballot=True)
                if verdict is not None:
                    txs.append(self.seal(i, task, verdict))
        return txs

    def copied_txs(self) -> list[bytes]:
        """A copier, a block later, still inside the window: the first report on the task
        if one came, its own re-score otherwise, sealed."""
        txs = []
        waiting, self.deferred = self.deferred, []
        for i, inference_id in waiting:
            task = self.net.query("ValidationTask", q.QueryValidationTaskRequest(
                inference_id=inference_id)).task
            if task.reports:
                self.notes["copied"] = self.notes.get("copied", 0) + 1
                passed = task.reports[0].passed
            else:
                passed = self.rescore(i, self.truth[inference_id] in ("good", "hidden"))
            txs.append(self.seal(i, task, passed))
        return txs

    def opening_txs(self) -> list[bytes]:
        """Each member opens its seals at the first height the chain takes them: a window's
        once its sealing is over, a ballot once the vote's is or every drawn voter has
        sealed or reported. A ballot sealed on a vote its executor then claimed as a canary
        was dropped with that vote (the executor's claim voids it); nothing else is."""
        txs = []
        following = self.net.height + 1
        for i, member in enumerate(self.parts):
            waiting, self.openings[i] = self.openings[i], []
            for opening, key in waiting:
                task = self.net.query("ValidationTask", q.QueryValidationTaskRequest(
                    inference_id=opening.inference_id)).task
                if ballot_key(task) != key:
                    continue  # a ballot on the shifted artifact, void with its vote
                seal = next(s for s in task.seals if s.validator == member.address)
                first, last = opening_heights(task, seal)
                assert following <= last, (member.address, opening.inference_id, task)
                if following < first:
                    self.openings[i].append((opening, key))
                else:
                    txs.append(member.tx(opening, gas_limit=GAS["report"]))
        return txs

    def verdict(self, i: int, task, ballot: bool) -> bool | None:
        """Whether member ``i`` reports a pass (True), a fail (False) or nothing (None), and
        whether it pays for a re-score to know."""
        truth = self.truth[task.inference_id]
        honest = truth in ("good", "hidden")  # what an honest re-score says
        play = self.play
        self.reported.add((ballot_key(task), i))
        if play.is_deviant(i) and play.coalition:
            executor_is_ours = play.is_deviant(self.index[task.executor])
            if play.coalition == "shield" and executor_is_ours:
                return True
            if play.coalition == "against" and not executor_is_ours and truth != "canary":
                return False
        if play.is_deviant(i) and play.lazy and not ballot and self.lazy_rng.random() < play.g:
            if play.lazy == "skip":
                return None
            if play.lazy == "blind-pass":
                return True
            if play.lazy == "copy":
                self.deferred.append((i, task.inference_id))
                return None
        return self.rescore(i, honest)

    def rescore(self, i: int, honest: bool) -> bool:
        """Member ``i`` re-scores an output (paying for it) and reports what it measured."""
        self.seats[i].compute += self.setup.score_over_generate * self.setup.cost_share * \
            self.fee
        return honest

    def seal(self, i: int, task: ValidationTask, passed: bool) -> bytes:
        """Member ``i``'s sealed report on ``task``; its opening waits until it opens."""
        member = self.parts[i]
        try:
            inference = self.net.inference(task.inference_id)
        except QueryError:
            raise AssertionError(f"task without inference {task.inference_id}") from None
        scores = b""
        if not passed and not task.canary_key and task.inference_id in self.canaries:
            scores = self.canary_scores(task.inference_id)  # the canary's shift failed it
            self.scores[(i, task.inference_id)] = scores
        opening = validation_msg(member, inference, distance_micro=PASS_DISTANCE
                                 if passed else FAIL_DISTANCE, scores=scores)
        self.openings[i].append((opening, ballot_key(task)))
        return member.tx(seal_of(opening), gas_limit=GAS["seal"])


@dataclass(frozen=True)
class Margin:
    """A play against the honest baseline of the same run, for the deviants' seats."""

    play: Play
    honest: float
    deviant: float
    per_epoch_sd: float
    heights: int
    run: Run
    baseline: Run

    @property
    def margin(self) -> float:
        return self.deviant - self.honest

    @property
    def reputation(self) -> tuple[int, int]:
        """The deviants' lowest reputation at the end of the run, and the same seats' in
        the honest run."""
        seats = self.play.deviants
        return (min(self.run.reputations[i] for i in seats),
                min(self.baseline.reputations[i] for i in seats))


def compare(setup: Setup, play: Play, baseline: Run | None = None) -> Margin:
    """Runs ``play`` and, unless given, the honest baseline from the same genesis and draws;
    the deviants' summed profit in each."""
    baseline = baseline or Simulation(setup, Play()).run()
    played = Simulation(setup, play).run()
    seats = play.deviants
    honest = sum(baseline.profits[i] for i in seats)
    deviant = sum(played.profits[i] for i in seats)
    diffs = [sum(p[i] for i in seats) - sum(b[i] for i in seats)
             for p, b in zip(played.per_epoch, baseline.per_epoch, strict=True)]
    mean = sum(diffs) / len(diffs)
    sd = (sum((d - mean) ** 2 for d in diffs) / max(1, len(diffs) - 1)) ** 0.5
    return Margin(play, honest, deviant, sd, played.heights, played, baseline)
