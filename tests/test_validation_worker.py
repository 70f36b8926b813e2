"""The validator worker's own logic: seed storage, which tasks it checks, what it queues.

The chain and the ML node are fakes that answer like the real ones (the same protobuf
messages and client dataclasses), and a fake delivery applies queued seed commits, seals and
openings to the fake chain, which fails the test on an opening the chain would refuse; the
real chain, API node and ML node together are the end-to-end tests' job.
"""

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Iterator

import grpc
import pytest
from inference_actors import seal_of
from nacl.signing import SigningKey

from apinode.chain_queries import ChainUnavailable, EpochInfo
from apinode.mlnode_client import MlNodeUnavailable
from apinode.outbox import Entry, Outbox, type_url
from apinode.store import Database, OutboxState
from apinode.validation.seeds import SeedStore
from apinode.validation.worker import EpochDuty, ValidatorWorker
from chain.inference import artifact, payload
from chain.inference.artifact import ArtifactStep
from chain.inference.delivery import Delivered
from chain.scales import PPM
from chain.validation.params import ValidationParams
from chain.validation.query import MAX_HEIGHTS, MAX_TASKS
from chain.validation.sampling import CheckShares, expected_checks_ppm, must_check
from chain.validation.seals import opening_heights, sealed_or_reported
from inferchain_pb.inference.v1.epochs_pb2 import Epoch
from inferchain_pb.inference.v1.inference_pb2 import Inference, Model, Participant
from inferchain_pb.inference.v1.validation_pb2 import (
    EpochMember,
    EpochMembers,
    MsgClaimRewards,
    MsgCommitSeed,
    MsgOpenScores,
    MsgSealValidation,
    MsgValidation,
    ReportSeal,
    SeedCommitment,
    TaskState,
    ValidationReport,
    ValidationTask,
)
from mlnode.rule_check import RuleCheck
from mlnode.types import EngineInfo, ScoredPosition, TokenStep

ME, EXECUTOR, OTHER, AGENT = "infer1me", "infer1executor", "infer1other", "infer1agent"
AGENT_KEY = SigningKey(bytes(range(1, 33)))
MODEL = "test/model"
EOS = 2
LENGTH = 10  # blocks per epoch: epoch e is heights [1 + 10e, 10(e + 1)]
CHECKS_PPM = ValidationParams().max_expected_checks_ppm
PARAMS = {"validation_window_blocks": 20, "reveal_window_blocks": 5, "voting_period_blocks": 5,
          "canary_claim_blocks": 10, "opening_blocks": 5,
          "p_min_ppm": 10_000}


@pytest.fixture
def open_db(tmp_path) -> Iterator[Callable[[], Database]]:
    """Opens Databases on one SQLite file; each call is a new engine, as a new process has."""
    opened: list[Database] = []

    def open_() -> Database:
        opened.append(Database.open(f"sqlite:///{tmp_path / 'node.db'}"))
        return opened[-1]

    yield open_
    for db in opened:
        db.close()


class FakeChain:
    """The queries the worker makes, answered from plain fields the test sets."""

    def __init__(self, height: int) -> None:
        self.height = height
        self.weights = {ME: 30, EXECUTOR: 50, OTHER: 20}
        self.commitments: dict[tuple[str, int], SeedCommitment] = {}
        self.tasks: list[ValidationTask] = []
        self.votes: list[ValidationTask] = []
        self.inferences: dict[str, Inference] = {}
        self.task_queries: list[tuple[int, int, int]] = []
        self.one_task_queries: list[str] = []

    async def latest_height(self) -> int:
        return self.height

    async def epoch(self, number: int | None = None) -> EpochInfo:
        current = (self.height - 1) // LENGTH
        members = [EpochMember(address=a, weight=w, model_ids=[MODEL])
                   for a, w in self.weights.items()]
        return EpochInfo(
            Epoch(number=current, start_height=1 + current * LENGTH, length=LENGTH),
            EpochMembers(epoch=current if number is None else number, members=members,
                         total_weight=sum(self.weights.values())))

    async def params(self, module: str) -> dict:
        assert module == "validation"
        return PARAMS

    async def seed_commitment(self, address: str, epoch: int) -> SeedCommitment | None:
        return self.commitments.get((address, epoch))

    async def validation_tasks(self, from_height: int, to_height: int,
                               limit: int) -> list[ValidationTask]:
        self.task_queries.append((from_height, to_height, limit))
        to_height = min(to_height or self.height, from_height + MAX_HEIGHTS - 1)
        limit = min(limit or MAX_TASKS, MAX_TASKS)
        tasks = sorted((t for t in self.tasks if from_height <= t.finish_height <= to_height),
                       key=lambda t: (t.finish_height, t.inference_id))
        return tasks[:limit]

    async def validation_task(self, inference_id: str) -> ValidationTask | None:
        self.one_task_queries.append(inference_id)
        return self.task(inference_id)

    async def pending_votes(self, voter: str) -> list[ValidationTask]:
        return [t for t in self.votes if voter in t.voters and voter not in sealed_or_reported(t)]

    async def inference(self, inference_id: str) -> Inference | None:
        return self.inferences.get(inference_id)

    async def model(self, model_id: str) -> Model | None:
        return Model(id=model_id, validation_threshold="0.05", top_k=2, serving_dtype="float32",
                     rule_tolerance_micro=100, greedy_tolerance_micro=100)

    async def participant(self, address: str) -> Participant | None:
        if address != AGENT:
            return None
        return Participant(address=AGENT, node_pubkey=bytes(AGENT_KEY.verify_key))

    def open_vote(self, task: ValidationTask) -> None:
        """A vote on ``task`` drawing OTHER and this validator, sealed until height 25 and
        opened until 30; the task's window is over (as if it had ended at its finish: a vote
        opens only once the window's reports are opened) and it leaves the feed."""
        self.tasks.remove(task)
        task.deadline = task.finish_height
        task.open_until = task.deadline + PARAMS["opening_blocks"]
        task.state = TaskState.IN_VOTE
        task.voters.extend([OTHER, ME])
        task.vote_deadline = 25
        task.vote_open_until = 25 + PARAMS["opening_blocks"]
        self.votes.append(task)

    def task(self, inference_id: str) -> ValidationTask | None:
        return next((t for t in [*self.tasks, *self.votes] if t.inference_id == inference_id),
                    None)

    def seal(self, msg: MsgSealValidation) -> None:
        """Takes a seal at the current height; a second one is refused."""
        task = self.task(msg.inference_id)
        if msg.creator not in sealed_or_reported(task):
            task.seals.append(ReportSeal(validator=msg.creator, seal=msg.seal,
                                         height=self.height))

    def open(self, msg: MsgValidation) -> None:
        """Opens the sender's seal into a report, failing the test where the chain would
        refuse: a report that is not the sealed one, or an opening out of its time."""
        task = self.task(msg.inference_id)
        seal = next(s for s in task.seals if s.validator == msg.creator)
        assert seal.seal == seal_of(msg).seal
        first, last = opening_heights(task, seal)
        assert first <= self.height <= last
        task.seals.remove(seal)
        task.reports.append(ValidationReport(
            validator=msg.creator, distance_micro=msg.distance_micro,
            rule_violations=msg.rule_violations, ids_match=msg.ids_match, height=self.height,
            sealed_height=seal.height, scores_sha256=msg.scores_sha256))

    def add(self, inference_id: str, finish_height: int, *, executor: str = EXECUTOR,
            p_ppm: int = PPM, output_ids: tuple[int, ...] = (11, 12, EOS),
            delivered: Delivered = Delivered.WHOLE) -> ValidationTask:
        """A finished inference, honest, and its open validation task; ``delivered``: what
        its transfer agent signed of the output."""
        steps = [ArtifactStep(t, -0.125, (t, 7 if t != 7 else 8), (-0.125, -2.5))
                 for t in output_ids]
        signed = (payload.delivery_payload if delivered is Delivered.WHOLE
                  else payload.prefix_delivery_payload)(
            inference_id, payload.ids_hash(output_ids), AGENT, executor)
        self.inferences[inference_id] = Inference(
            id=inference_id, model_id=MODEL, executor=executor, prompt_ids=[1, 5, 9],
            output_ids=output_ids, artifact=artifact.encode(steps, 2),
            output_hash=payload.ids_hash(output_ids), max_tokens=8, seed=42,
            temperature=0.5, top_p=1.0, transfer_agent=AGENT,
            delivery_signature=AGENT_KEY.sign(signed).signature)
        task = ValidationTask(
            inference_id=inference_id, model_id=MODEL, executor=executor,
            epoch=(finish_height - 1) // LENGTH, p_ppm=p_ppm,
            expected_checks_ppm=expected_checks_ppm(p_ppm, CHECKS_PPM),
            finish_height=finish_height,
            deadline=finish_height + PARAMS["validation_window_blocks"], state=TaskState.OPEN)
        task.open_until = task.deadline + PARAMS["opening_blocks"]
        self.tasks.append(task)
        return task


class FakeMlNode:
    """Scores an output as the executor recorded it, shifted by ``shift`` nats; ``down``
    makes every call fail as an unreachable ML node does."""

    def __init__(self, chain: FakeChain) -> None:
        self.chain = chain
        self.shift = 0.0
        self.down = False
        self.attempts: list[tuple[int, ...]] = []
        self.scored: list[tuple[int, ...]] = []

    async def info(self) -> EngineInfo:
        return EngineInfo(MODEL, "ab" * 32, "float32", "cpu", "fake", 2048, 100, 20, EOS)

    async def score(self, prompt_ids, output_ids, top_logprobs, sampling) -> list[ScoredPosition]:
        self.attempts.append(tuple(output_ids))
        if self.down:
            raise MlNodeUnavailable("ML node Score: UNAVAILABLE: down")
        assert (top_logprobs, sampling.seed, sampling.top_k) == (20, 42, 0)
        inference = next(i for i in self.chain.inferences.values()
                         if list(i.output_ids) == list(output_ids))
        self.scored.append(tuple(output_ids))
        return [ScoredPosition(TokenStep(s.token_id, s.logprob + self.shift, s.top_ids,
                                         tuple(lp + self.shift for lp in s.top_logprobs)),
                               RuleCheck(cdf_low=0.25, cdf_high=0.75, u=0.5, argmax_gap=0.0))
                for s in artifact.decode(inference.artifact)[1]]

    async def detokenize(self, token_ids) -> list[str]:
        return [f"<{t}>" for t in token_ids]


NODE_KEY = SigningKey(bytes(range(32)))


def make_worker(db: Database, chain: FakeChain, ml: FakeMlNode, **kwargs) -> ValidatorWorker:
    return ValidatorWorker(ME, NODE_KEY, chain, ml, SeedStore(db, ME), Outbox(db), **kwargs)


def deliver(outbox: Outbox, chain: FakeChain) -> list[Entry]:
    """What the outbox worker and the chain would do: commits land at the current height,
    those for an epoch already begun are refused (epoch 0's only once a task exists); seals
    and openings land at the current height."""
    entries = outbox.claim_batch(1000)
    current = (chain.height - 1) // LENGTH
    for entry in entries:
        if entry.type_url == type_url(MsgSealValidation):
            chain.seal(MsgSealValidation.FromString(entry.payload))
        elif entry.type_url == type_url(MsgValidation):
            chain.open(MsgValidation.FromString(entry.payload))
        elif entry.type_url == type_url(MsgCommitSeed):
            msg = MsgCommitSeed.FromString(entry.payload)
            if msg.epoch != current + 1 and (msg.epoch, current, chain.tasks) != (0, 0, []):
                continue
            chain.commitments[(msg.creator, msg.epoch)] = SeedCommitment(
                address=msg.creator, epoch=msg.epoch, seed_hash=msg.seed_hash,
                commit_height=chain.height)
    outbox.mark_committed([e.id for e in entries])
    return entries


def committed_in_epoch_zero(db: Database, chain: FakeChain, ml: FakeMlNode,
                            **kwargs) -> ValidatorWorker:
    """A worker whose seeds for epochs 0 and 1 landed at height 5; the chain then moves to
    height 15, in epoch 1."""
    chain.height = 5
    worker = make_worker(db, chain, ml, **kwargs)
    asyncio.run(worker.step())
    deliver(Outbox(db), chain)
    chain.height = 15
    return worker


def checking_worker(db: Database, chain: FakeChain, ml: FakeMlNode) -> ValidatorWorker:
    """``committed_in_epoch_zero`` with its first step at height 15 taken and delivered: a
    worker with nothing queued, ready for the tasks a test adds."""
    worker = committed_in_epoch_zero(db, chain, ml)
    asyncio.run(worker.step())
    deliver(Outbox(db), chain)
    return worker


def validations(outbox: Outbox, chain: FakeChain) -> dict[str, MsgValidation]:
    """The reports sealed in what the outbox delivers, by the seal's key: each seal's opening,
    held back in the outbox, and checked to be the report sealed."""
    found = {}
    for entry in deliver(outbox, chain):
        if entry.type_url != type_url(MsgSealValidation):
            continue
        opening = outbox.get(f"{entry.key}:open")
        assert opening.state == OutboxState.HELD
        report = MsgValidation.FromString(opening.payload)
        assert MsgSealValidation.FromString(entry.payload).seal == seal_of(report).seal
        assert len(report.salt) == payload.SALT_BYTES
        found[entry.key] = report
    return found


def openings(outbox: Outbox, chain: FakeChain) -> set[str]:
    """The keys of the openings the outbox delivers (the fake chain checks each)."""
    return {e.key for e in deliver(outbox, chain) if e.type_url == type_url(MsgValidation)}


# --- seeds ----------------------------------------------------------------------------------

def test_a_stored_seed_survives_reopening_the_database(open_db) -> None:
    seed = SeedStore(open_db(), ME).seed(3)
    assert len(seed) == 32
    store = SeedStore(open_db(), ME)
    assert store.get(3) == seed
    assert store.seed(3) == seed  # never replaced
    assert store.seed(4) != seed
    assert store.get(5) is None
    assert SeedStore(open_db(), OTHER).seed(3) != seed  # seeds are per validator
    assert store.epochs(0, 10) == [3, 4]
    assert store.epochs(4, 4) == [4]


def test_seeds_are_committed_before_their_epoch_and_reused_after_a_restart(open_db) -> None:
    chain = FakeChain(height=5)  # epoch 0, which no block precedes: its seed and epoch 1's
    db = open_db()
    asyncio.run(make_worker(db, chain, FakeMlNode(chain)).step())
    outbox = Outbox(db)
    store = SeedStore(db, ME)
    for epoch in (0, 1):
        msg = MsgCommitSeed.FromString(outbox.get(f"commit_seed:{epoch}").payload)
        assert (msg.creator, msg.epoch) == (ME, epoch)
        assert msg.seed_hash == hashlib.sha256(store.get(epoch)).digest()
    assert store.epochs(0, 100) == [0, 1]
    seeds = {epoch: store.get(epoch) for epoch in (0, 1)}

    # A new process on the same database: the committed seeds are the ones it uses.
    db = open_db()
    asyncio.run(make_worker(db, chain, FakeMlNode(chain)).step())
    assert {e: SeedStore(db, ME).get(e) for e in (0, 1)} == seeds
    entries = deliver(Outbox(db), chain)
    assert sorted(e.key for e in entries) == ["commit_seed:0", "commit_seed:1"]

    chain.height = 11  # epoch 1's first block: epoch 2's commit is queued
    asyncio.run(make_worker(db, chain, FakeMlNode(chain)).step())
    assert {e.key for e in deliver(Outbox(db), chain)} == {"commit_seed:2"}
    # Epoch 0 is revealed two blocks on (half the reveal window, shorter than a validation
    # window): its last inferences' canaries stay secret while their checks may be open.
    chain.height = 13
    asyncio.run(make_worker(db, chain, FakeMlNode(chain)).step())
    entries = {e.key: e for e in deliver(Outbox(db), chain)}
    assert set(entries) == {"claim_rewards:0"}
    reveal = MsgClaimRewards.FromString(entries["claim_rewards:0"].payload)
    assert (reveal.creator, reveal.epoch, reveal.seed) == (ME, 0, seeds[0])
    assert chain.commitments[(ME, 2)].commit_height < 21

    # A validator first started in epoch 2 commits for epoch 3 only: epoch 2 has begun.
    chain.height = 25
    other = ValidatorWorker(OTHER, NODE_KEY, chain, FakeMlNode(chain), SeedStore(db, OTHER),
                            Outbox(db))
    asyncio.run(other.step())
    assert {e.key for e in deliver(Outbox(db), chain)} == {"commit_seed:3"}


def test_no_reveal_once_the_window_closed_or_without_a_commitment(open_db) -> None:
    chain = FakeChain(height=15)
    db = open_db()
    worker = committed_in_epoch_zero(db, chain, FakeMlNode(chain))
    asyncio.run(worker.step())
    deliver(Outbox(db), chain)  # epoch 2's commit lands
    del chain.commitments[(ME, 2)]
    chain.height = 36  # epoch 3; epoch 1's window closed at 21 + 5, epoch 2's is open
    asyncio.run(make_worker(db, chain, FakeMlNode(chain)).step())
    assert Outbox(db).get("claim_rewards:1") is None
    assert Outbox(db).get("claim_rewards:2") is None  # never landed: nothing to reveal
    # Epoch 4 is committed; epoch 3 has begun, and nothing for epoch 2 is retried this late.
    assert {e.key for e in deliver(Outbox(db), chain)} == {"commit_seed:4"}


# --- which tasks ----------------------------------------------------------------------------

def duty_of(seed: bytes, models: dict[str, list[str]]) -> EpochDuty:
    weights = {ME: 30, EXECUTOR: 50, OTHER: 20}
    return EpochDuty(epoch=4, seed=seed, shares=CheckShares(EpochMembers(epoch=4, members=[
        EpochMember(address=a, weight=w, model_ids=models.get(a, [MODEL]))
        for a, w in weights.items()], total_weight=100)))


def task_of(inference_id: str, executor: str = EXECUTOR, epoch: int = 4,
            checks_ppm: int = 2 * PPM, height: int = 45, model: str = MODEL) -> ValidationTask:
    return ValidationTask(inference_id=inference_id, executor=executor, epoch=epoch,
                          expected_checks_ppm=checks_ppm, finish_height=height, model_id=model)


def test_assignment_is_the_chains_rule_with_the_executor_left_out_of_the_total() -> None:
    rng = random.Random(7)
    seed = rng.randbytes(32)
    duty = duty_of(seed, {})
    decisions = []
    for i in range(400):
        task = task_of(f"inf-{i}", checks_ppm=300_000, height=41 + i % 9)
        decisions.append(duty.assigned(task, ME))
        assert decisions[-1] == must_check(seed, task.inference_id, 300_000, 30, 50)
    assert 0 < sum(decisions) < 400

    # Two checks at p = 1: a member of 60% of the others' weight owes each one.
    certain = task_of("x")
    assert duty.assigned(certain, ME)
    assert not duty.assigned(task_of("x", executor=ME), ME)  # never its own
    assert duty.assigned(task_of("x", height=41), ME)  # the epoch's first height
    assert not duty.assigned(task_of("x", epoch=5), ME)  # another epoch
    assert not duty.assigned(certain, "infer1stranger")  # not a member
    # An executor outside the epoch takes nothing off the total.
    outsider = [task_of(f"o-{i}", executor="infer1new", checks_ppm=300_000, height=50)
                for i in range(200)]
    assert [duty.assigned(t, ME) for t in outsider] == [
        must_check(seed, t.inference_id, 300_000, 30, 100) for t in outsider]


def test_only_members_serving_the_model_owe_its_checks_and_share_them_by_weight() -> None:
    """A member whose ML node serves another model owes none of this model's checks (it could
    not score them), and the members that serve it share them by their weight alone."""
    rng = random.Random(8)
    seed = rng.randbytes(32)
    duty = duty_of(seed, {OTHER: ["other/model"]})
    tasks = [task_of(f"inf-{i}", checks_ppm=300_000) for i in range(300)]
    assert not any(duty.assigned(t, OTHER) for t in tasks)
    # ME alone (30) serves the model among the executor's others: it owes every check its
    # share of the whole 0.3 gives it, as if OTHER were not a member.
    assert [duty.assigned(t, ME) for t in tasks] == [
        must_check(seed, t.inference_id, 300_000, 30, 30) for t in tasks]
    assert duty.assigned(task_of("y", model="other/model", executor=ME), OTHER)
    assert not duty.assigned(task_of("y", model="other/model"), ME)


def test_step_checks_assigned_tasks_and_queues_signed_figures(open_db) -> None:
    chain = FakeChain(height=15)
    db = open_db()
    ml = FakeMlNode(chain)
    worker = committed_in_epoch_zero(db, chain, ml)
    chain.add("epoch-start", finish_height=11)  # owed: the seed was committed before
    asyncio.run(worker.step())
    assert set(validations(Outbox(db), chain)) == {"validation:epoch-start"}

    chain.add("mine", finish_height=16, executor=ME)
    chain.add("honest", finish_height=16)
    chain.add("greedy-length", finish_height=17, output_ids=(30, 31, 32, 33, 34, 35, 36, 37))
    chain.inferences["greedy-length"].temperature = 0.0
    chain.add("long", finish_height=17, output_ids=(40, 41, 42, 43, 44, 45, 46, 47, 48))
    reported = chain.add("reported", finish_height=17)
    reported.reports.append(ValidationReport(validator=ME))
    chain.add("in-vote", finish_height=17).state = TaskState.IN_VOTE
    chain.height = 18
    asyncio.run(worker.step())
    queued = validations(Outbox(db), chain)
    # A vote opened on a task does not close its window: the assigned check is still owed.
    assert set(queued) == {"validation:honest", "validation:greedy-length", "validation:long",
                           "validation:in-vote"}

    honest = queued["validation:honest"]
    assert (honest.creator, honest.ids_match, honest.distance_micro, honest.rule_violations,
            honest.positions) == (ME, True, 0, 0, 3)
    assert honest.output_hash == payload.ids_hash([11, 12, EOS])
    assert len(honest.scores_sha256) == 32  # the scores it measured from, committed
    NODE_KEY.verify_key.verify(payload.validation_payload(
        "honest", honest.output_hash, 0, 0, True, 3, ME, honest.scores_sha256),
        honest.validator_signature)
    assert queued["validation:greedy-length"].ids_match  # ends at max_tokens
    # Nine tokens for max_tokens 8: the length is not what the request allows.
    assert (queued["validation:long"].ids_match, queued["validation:long"].positions) == (
        False, 9)

    # Another validator's logprobs: the distance is measured, not judged here.
    ml.shift = -0.5
    chain.add("shifted", finish_height=19)
    chain.height = 19
    asyncio.run(worker.step())
    shifted = validations(Outbox(db), chain)["validation:shifted"]
    assert (shifted.ids_match, shifted.distance_micro) == (True, 500_000)


def test_an_output_its_transfer_agent_signed_as_a_prefix_may_end_early(open_db) -> None:
    """An output cut short because its transfer agent stopped signing is honest; the same
    output signed as whole ends before EOS, a stop sequence or max_tokens, and fails."""
    chain = FakeChain(height=15)
    db = open_db()
    worker = committed_in_epoch_zero(db, chain, FakeMlNode(chain))
    chain.add("prefix", finish_height=16, output_ids=(11, 12, 13), delivered=Delivered.PREFIX)
    chain.add("cut", finish_height=16, output_ids=(21, 22, 23))
    chain.add("past-eos", finish_height=16, output_ids=(31, EOS, 33),
              delivered=Delivered.PREFIX)
    chain.height = 17
    asyncio.run(worker.step())
    queued = validations(Outbox(db), chain)
    assert (queued["validation:prefix"].ids_match, queued["validation:prefix"].positions) == (
        True, 3)
    assert not queued["validation:cut"].ids_match
    # A prefix still may not go on past its EOS.
    assert not queued["validation:past-eos"].ids_match


def test_a_restarted_worker_rescans_the_window_without_checking_twice(open_db) -> None:
    chain = FakeChain(height=15)
    db = open_db()
    ml = FakeMlNode(chain)
    asyncio.run(committed_in_epoch_zero(db, chain, ml).step())
    deliver(Outbox(db), chain)
    chain.add("a", finish_height=16)
    chain.height = 17
    asyncio.run(make_worker(db, chain, ml).step())
    assert set(validations(Outbox(db), chain)) == {"validation:a"}
    chain.add("b", finish_height=18)
    chain.height = 19
    chain.task_queries.clear()
    asyncio.run(make_worker(db, chain, ml).step())  # a new worker: rescans from 19 - 20 - 10
    assert chain.task_queries[0][:2] == (1, 19)
    assert set(validations(Outbox(db), chain)) == {"validation:b"}
    assert ml.scored.count((11, 12, EOS)) == 2  # a once, b once


def test_a_failed_check_is_retried_on_the_next_step(open_db) -> None:
    chain = FakeChain(height=15)
    db = open_db()
    ml = FakeMlNode(chain)
    worker = checking_worker(db, chain, ml)
    chain.add("a", finish_height=16)
    chain.height = 17
    ml.down = True
    asyncio.run(worker.step())  # logs, does not raise
    assert validations(Outbox(db), chain) == {}
    ml.down = False
    chain.height = 18
    asyncio.run(worker.step())
    assert set(validations(Outbox(db), chain)) == {"validation:a"}
    # Retried while the ML node stays down, then dropped once past its deadline.
    chain.add("b", finish_height=19, output_ids=(70, EOS))
    ml.down = True
    for chain.height in (19, 20):
        asyncio.run(worker.step())
    assert ml.attempts.count((70, EOS)) == 2
    ml.down = False
    chain.height = 19 + PARAMS["validation_window_blocks"] + 1
    asyncio.run(worker.step())
    assert ml.attempts.count((70, EOS)) == 2
    assert validations(Outbox(db), chain) == {}


def test_many_tasks_at_one_height_are_paged_through(open_db) -> None:
    chain = FakeChain(height=15)
    db = open_db()
    worker = committed_in_epoch_zero(db, chain, FakeMlNode(chain), page_size=2,
                                     concurrency=3)
    asyncio.run(worker.step())
    deliver(Outbox(db), chain)
    for i in range(5):
        chain.add(f"same-{i}", finish_height=16, output_ids=(50 + i, EOS))
    for i in range(3):
        chain.add(f"next-{i}", finish_height=17 + i, output_ids=(60 + i, EOS))
    chain.height = 20
    asyncio.run(worker.step())
    assert set(validations(Outbox(db), chain)) == (
        {f"validation:same-{i}" for i in range(5)} | {f"validation:next-{i}" for i in range(3)})
    chain.task_queries.clear()
    asyncio.run(worker.step())  # no new block: nothing to ask
    chain.height = 21
    asyncio.run(worker.step())  # one new block: one query from where the feed stopped
    assert chain.task_queries == [(21, 21, 2)]


def test_a_long_gap_is_read_in_spans_the_chain_answers(open_db) -> None:
    chain = FakeChain(height=15)
    db = open_db()
    worker = make_worker(db, chain, FakeMlNode(chain))
    asyncio.run(worker.step())  # the feed stops at 15; the next step is 2,000 blocks later
    chain.commitments[(ME, 200)] = SeedCommitment(
        address=ME, epoch=200, commit_height=1999,
        seed_hash=hashlib.sha256(SeedStore(db, ME).seed(200)).digest())
    chain.add("late", finish_height=2005)
    chain.height = 2010
    asyncio.run(worker.step())
    assert set(validations(Outbox(db), chain)) == {"validation:late"}
    assert all(to - start < MAX_HEIGHTS for start, to, _ in chain.task_queries)


def test_votes_are_rescored_once_under_their_own_key(open_db) -> None:
    chain = FakeChain(height=15)
    db = open_db()
    ml = FakeMlNode(chain)
    worker = checking_worker(db, chain, ml)
    chain.open_vote(chain.add("disputed", finish_height=16))  # only the vote path sees it
    chain.height = 17
    asyncio.run(worker.step())
    assert Outbox(db).get("validation:disputed:vote").state == OutboxState.PENDING
    asyncio.run(worker.step())  # still listed until the vote lands: not scored again
    assert ml.scored == [(11, 12, EOS)]
    assert validations(Outbox(db), chain)["validation:disputed:vote"].ids_match


def test_a_vote_whose_report_is_on_its_way_is_not_scored_twice(open_db) -> None:
    """A vote drawn while this validator's own seal on the task is still queued: the seal
    counts as the ballot once it lands, so nothing more is queued; if that seal fails, the
    vote is scored and sealed under its own key, and the failed seal's opening is given up
    on in the same step: no seal of it can reach the chain any more."""
    chain = FakeChain(height=15)
    db = open_db()
    ml = FakeMlNode(chain)
    worker = checking_worker(db, chain, ml)
    task = chain.add("disputed", finish_height=16)
    chain.height = 17
    asyncio.run(worker.step())
    outbox = Outbox(db)
    assert outbox.get("validation:disputed").state == OutboxState.PENDING
    # Another member's failing report opens a vote that draws this one before its report lands.
    chain.open_vote(task)
    chain.height = 18
    asyncio.run(worker.step())
    assert outbox.get("validation:disputed:vote") is None
    assert ml.scored == [(11, 12, EOS)]
    entry, = outbox.claim_batch(10)
    outbox.mark_sent([entry.id], "AB" * 32)
    asyncio.run(worker.step())
    assert outbox.get("validation:disputed:vote") is None
    Outbox(db, max_attempts=1).mark_retry([entry.id], "tx failed in its block")
    chain.height = 19
    asyncio.run(worker.step())
    assert outbox.get("validation:disputed:vote").state == OutboxState.PENDING
    assert ml.scored == [(11, 12, EOS)] * 2
    assert set(validations(outbox, chain)) == {"validation:disputed:vote"}
    lost = outbox.get("validation:disputed:open")
    assert (lost.state, lost.last_error) == (
        OutboxState.FAILED, "never opened: its seal never reached the chain")
    task.seals.append(ReportSeal(validator=OTHER, seal=b"x" * 32, height=19))
    chain.height = 20
    asyncio.run(worker.step())
    assert openings(outbox, chain) == {"validation:disputed:vote:open"}


def test_a_task_seen_as_assigned_and_as_a_vote_in_one_step_is_scored_once(open_db) -> None:
    """A vote can open on a task before this validator got to its assigned check: the step
    that finds both makes the vote only, so no second report on the task is queued."""
    chain = FakeChain(height=15)
    db = open_db()
    ml = FakeMlNode(chain)
    worker = checking_worker(db, chain, ml)
    task = chain.add("disputed", finish_height=16)
    chain.open_vote(task)
    chain.tasks.append(task)  # still in the feed of finished tasks
    chain.height = 17
    asyncio.run(worker.step())
    assert set(validations(Outbox(db), chain)) == {"validation:disputed:vote"}
    assert ml.scored == [(11, 12, EOS)]


# --- sealing and opening --------------------------------------------------------------------

def test_a_report_is_sealed_and_opened_only_once_the_window_closed(open_db, caplog) -> None:
    """The check queues the seal and holds the matching opening; while the window takes
    seals, each step asks the chain whether every checker has sealed (here one never does),
    and the opening is released once the task's deadline passed and its seal is on chain,
    with no query for the task then."""
    chain = FakeChain(height=15)
    db = open_db()
    outbox = Outbox(db)
    worker = checking_worker(db, chain, FakeMlNode(chain))
    task = chain.add("a", finish_height=16)  # sealed until 36, opened until 41
    chain.height = 17
    caplog.set_level(logging.INFO, logger="apinode.validation.worker")
    asyncio.run(worker.step())
    assert ("sealed its report (MsgSealValidation queued), opens after height 36, or once "
            "every member that checks the model has sealed") in caplog.text
    assert outbox.get("validation:a").type_url == type_url(MsgSealValidation)
    report = validations(outbox, chain)["validation:a"]  # the seal only: the opening is held
    assert [s.height for s in task.seals] == [17] and not task.reports
    assert (report.creator, report.ids_match, report.positions) == (ME, True, 3)
    NODE_KEY.verify_key.verify(payload.validation_payload(
        "a", report.output_hash, 0, 0, True, 3, ME, report.scores_sha256),
        report.validator_signature)

    chain.one_task_queries.clear()
    for chain.height in (20, 36):
        asyncio.run(worker.step())
        assert outbox.get("validation:a:open").state == OutboxState.HELD
        assert openings(outbox, chain) == set()
    assert chain.one_task_queries == ["a", "a"]
    chain.one_task_queries.clear()
    chain.height = 37
    asyncio.run(worker.step())
    assert openings(outbox, chain) == {"validation:a:open"}
    assert (task.reports[0].validator, task.reports[0].sealed_height) == (ME, 17)
    assert not task.seals
    assert chain.one_task_queries == []  # the deadline kept from the check decided it


def test_an_opening_whose_seal_is_not_on_chain_yet_costs_no_query(open_db) -> None:
    """Until the outbox has the seal committed the opening would only be refused, so the
    worker does not ask the chain about its task; once it is, each step asks again."""
    chain = FakeChain(height=15)
    db = open_db()
    outbox = Outbox(db)
    worker = checking_worker(db, chain, FakeMlNode(chain))
    chain.add("pending", finish_height=16)  # sealed until 36
    chain.height = 17
    asyncio.run(worker.step())
    assert outbox.get("validation:pending").state == OutboxState.PENDING
    chain.one_task_queries.clear()
    for chain.height in (18, 19):
        asyncio.run(worker.step())
    assert chain.one_task_queries == []
    assert set(validations(outbox, chain)) == {"validation:pending"}
    chain.height = 20
    asyncio.run(worker.step())
    assert chain.one_task_queries == ["pending"]
    assert outbox.get("validation:pending:open").state == OutboxState.HELD


def test_a_report_opens_early_once_every_member_that_checks_the_model_sealed(open_db) -> None:
    """The chain marks the window sealed by every checker (``window_sealed_height``): nobody
    is left to copy, so the held opening is released in the step that sees it, long before
    the deadline."""
    chain = FakeChain(height=15)
    db = open_db()
    outbox = Outbox(db)
    worker = checking_worker(db, chain, FakeMlNode(chain))
    task = chain.add("early", finish_height=16)  # sealed until 36
    chain.height = 17
    asyncio.run(worker.step())
    chain.height = 18
    asyncio.run(worker.step())
    assert outbox.get("validation:early:open").state == OutboxState.HELD
    task.seals.append(ReportSeal(validator=OTHER, seal=b"x" * 32, height=19))
    task.window_sealed_height = 19
    chain.height = 19
    asyncio.run(worker.step())
    assert openings(outbox, chain) == set()  # opens from 20: the next block
    chain.height = 20
    asyncio.run(worker.step())
    assert openings(outbox, chain) == {"validation:early:open"}
    assert (task.reports[0].validator, task.reports[0].height) == (ME, 20)


def test_a_ballot_opens_once_every_voter_sealed_or_its_deadline_passed(open_db) -> None:
    chain = FakeChain(height=15)
    db = open_db()
    outbox = Outbox(db)
    worker = checking_worker(db, chain, FakeMlNode(chain))
    answered = chain.add("answered", finish_height=16)
    silent = chain.add("silent", finish_height=16, output_ids=(21, EOS))
    chain.open_vote(answered)  # both sealed until 25, opened until 30
    chain.open_vote(silent)
    chain.height = 17
    asyncio.run(worker.step())
    assert set(validations(outbox, chain)) == {"validation:answered:vote",
                                               "validation:silent:vote"}
    assert asyncio.run(chain.pending_votes(ME)) == []  # sealed: no longer listed
    chain.height = 18
    asyncio.run(worker.step())
    assert openings(outbox, chain) == set()  # OTHER has not sealed either ballot
    answered.seals.append(ReportSeal(validator=OTHER, seal=b"x" * 32, height=18))
    chain.height = 19
    asyncio.run(worker.step())
    assert openings(outbox, chain) == {"validation:answered:vote:open"}
    assert [r.validator for r in answered.reports] == [ME]

    chain.height = 25
    asyncio.run(worker.step())
    assert outbox.get("validation:silent:vote:open").state == OutboxState.HELD
    chain.one_task_queries.clear()
    chain.height = 26
    asyncio.run(worker.step())
    assert openings(outbox, chain) == {"validation:silent:vote:open"}
    assert chain.one_task_queries == []  # past the vote's deadline: no need to ask


def test_a_restarted_worker_opens_what_the_last_one_sealed(open_db, caplog) -> None:
    """A new worker over the same outbox times the held openings by their tasks on chain; one
    whose task is gone, or whose time passed, is failed with a warning instead."""
    chain = FakeChain(height=15)
    db = open_db()
    outbox = Outbox(db)
    worker = checking_worker(db, chain, FakeMlNode(chain))
    chain.add("window", finish_height=16)  # sealed until 36
    chain.add("gone", finish_height=16, output_ids=(21, EOS))
    chain.open_vote(chain.add("voted", finish_height=16, output_ids=(22, EOS)))  # until 25
    chain.add("late", finish_height=16, output_ids=(23, EOS)).open_until = 19
    chain.height = 17
    asyncio.run(worker.step())
    assert len(validations(outbox, chain)) == 4
    chain.tasks.remove(chain.task("gone"))  # summarized

    chain.height = 20
    restarted = make_worker(db, chain, FakeMlNode(chain))
    caplog.set_level(logging.WARNING, logger="apinode.validation.worker")
    asyncio.run(restarted.step())
    # One look-up each to time them, and another each step until the deadline for the
    # ballot and the window, which may open early.
    assert sorted(chain.one_task_queries) == ["gone", "late", "voted", "voted", "window",
                                              "window"]
    assert outbox.get("validation:gone:open").state == OutboxState.FAILED
    assert outbox.get("validation:late:open").state == OutboxState.FAILED
    assert "the report sealed on gone cannot be opened" in caplog.text
    assert "the chain took its opening until height 19" in caplog.text
    assert openings(outbox, chain) == set()
    chain.one_task_queries.clear()
    chain.height = 26
    asyncio.run(restarted.step())
    assert openings(outbox, chain) == {"validation:voted:vote:open"}
    chain.height = 37
    asyncio.run(make_worker(db, chain, FakeMlNode(chain)).step())
    assert openings(outbox, chain) == {"validation:window:open"}
    # The second worker's step at 26, still in the window, and the third worker's look-up.
    assert chain.one_task_queries == ["window", "window"]


def test_a_task_this_validator_sealed_is_not_checked_again(open_db) -> None:
    """The chain's record of its seal is enough, whatever the outbox holds (say, a database
    restored from before the check): the task is neither re-scored nor sealed twice."""
    chain = FakeChain(height=15)
    db = open_db()
    ml = FakeMlNode(chain)
    worker = checking_worker(db, chain, ml)
    chain.add("sealed", finish_height=16).seals.append(
        ReportSeal(validator=ME, seal=b"s" * 32, height=16))
    chain.add("sealed-by-other", finish_height=16, output_ids=(21, EOS)).seals.append(
        ReportSeal(validator=OTHER, seal=b"o" * 32, height=16))
    chain.height = 17
    asyncio.run(worker.step())
    assert set(validations(Outbox(db), chain)) == {"validation:sealed-by-other"}
    assert ml.scored == [(21, EOS)]


def test_a_faulty_validator_seals_the_figures_it_fakes(open_db) -> None:
    """A fault changes the figures, not the protocol: what it seals is what it opens."""
    chain = FakeChain(height=15)
    db = open_db()
    ml = FakeMlNode(chain)
    committed_in_epoch_zero(db, chain, ml)
    chain.add("lied", finish_height=16)
    chain.height = 17
    asyncio.run(make_worker(db, chain, ml, fault="lie").step())
    lied = validations(Outbox(db), chain)["validation:lied"]
    assert (lied.ids_match, lied.distance_micro, lied.rule_violations) == (True, 5_000_000, 3)
    chain.add("passed", finish_height=17, output_ids=(21, EOS))
    chain.height = 18
    asyncio.run(make_worker(db, chain, ml, fault="always-pass").step())
    passed = validations(Outbox(db), chain)["validation:passed"]
    assert (passed.ids_match, passed.distance_micro, passed.positions) == (True, 0, 2)
    chain.add("skipped", finish_height=18, output_ids=(22, EOS))
    chain.height = 19
    asyncio.run(make_worker(db, chain, ml, fault="skip-checks").step())
    assert validations(Outbox(db), chain) == {}
    assert ml.scored == [(11, 12, EOS)]  # only the liar measured


def claim_as_canary(task: ValidationTask, height: int, openers: list[str]) -> None:
    """What an executor's canary claim does to ``task`` at ``height``: its reports so far
    (``openers`` failed it, their scores committed) are kept apart, a fresh vote drawing
    OTHER and this validator opens."""
    task.canary_key, task.canary_claim_height = b"k" * 32, height
    task.canary_reports.extend(ValidationReport(validator=v, passed=False,
                                                scores_sha256=b"h" * 32) for v in openers)
    task.state = TaskState.IN_VOTE
    del task.reports[:]
    task.voters[:] = [OTHER, ME]
    task.vote_deadline = height + 20
    task.vote_open_until = task.vote_deadline + PARAMS["opening_blocks"]


def test_a_failing_report_keeps_its_scores_for_a_canary_claim(open_db) -> None:
    """A report that fails keeps the scores it committed, held beside its seal; once the
    inference is claimed as a canary they are opened, and where no claim came they are
    dropped. A passing report keeps none."""
    chain = FakeChain(height=15)
    db = open_db()
    outbox = Outbox(db)
    ml = FakeMlNode(chain)
    worker = checking_worker(db, chain, ml)
    chain.add("plain", finish_height=16)
    chain.height = 16
    asyncio.run(worker.step())
    assert set(validations(outbox, chain)) == {"validation:plain"}
    assert outbox.get("validation:plain:scores") is None
    ml.shift = -0.5  # another model's logprobs: every report from here fails
    claimed = chain.add("claimed", finish_height=17)
    unclaimed = chain.add("unclaimed", finish_height=17)
    claimed.canary_rate_ppm = unclaimed.canary_rate_ppm = 5_000  # either may be a canary
    chain.height = 17
    asyncio.run(worker.step())
    reports = validations(outbox, chain)
    for name in ("claimed", "unclaimed"):
        held = outbox.get(f"validation:{name}:scores")
        assert held.state == OutboxState.HELD
        scores = MsgOpenScores.FromString(held.payload)
        assert (scores.creator, scores.inference_id) == (ME, name)
        assert reports[f"validation:{name}"].scores_sha256 == \
            hashlib.sha256(scores.scores).digest()

    chain.height = 40
    claim_as_canary(claimed, 40, [ME])
    chain.tasks.remove(claimed)
    chain.votes.append(claimed)
    asyncio.run(worker.step())
    assert outbox.get("validation:claimed:scores").state == OutboxState.PENDING
    # Its scores will be its ballot: it does not re-score the vote it was drawn for.
    assert outbox.get("validation:claimed:canary-vote") is None
    assert outbox.get("validation:unclaimed:scores").state == OutboxState.HELD
    chain.height = unclaimed.open_until + PARAMS["canary_claim_blocks"] + 1
    asyncio.run(worker.step())
    assert outbox.get("validation:unclaimed:scores") is None


def test_scores_open_for_a_claim_that_comes_before_the_deadline(open_db) -> None:
    """Once every checker sealed and opened, the executor may claim long before the window's
    deadline: the scores open in the step that sees the claim. While the report's own
    opening is held no claim can come, and the scores ask the chain nothing."""
    chain = FakeChain(height=15)
    db = open_db()
    outbox = Outbox(db)
    ml = FakeMlNode(chain)
    worker = checking_worker(db, chain, ml)
    ml.shift = -0.5  # every report fails
    task = chain.add("early", finish_height=16)  # sealed until 36
    task.canary_rate_ppm = 5_000
    chain.height = 17
    asyncio.run(worker.step())
    assert validations(outbox, chain)["validation:early"].scores_sha256
    chain.one_task_queries.clear()
    chain.height = 18
    asyncio.run(worker.step())
    assert chain.one_task_queries == ["early"]  # the opening's question only
    task.seals.append(ReportSeal(validator=OTHER, seal=b"x" * 32, height=19))
    task.window_sealed_height = chain.height = 19
    asyncio.run(worker.step())
    assert openings(outbox, chain) == set()
    chain.height = 20
    asyncio.run(worker.step())
    assert openings(outbox, chain) == {"validation:early:open"}
    assert outbox.get("validation:early:scores").state == OutboxState.HELD
    chain.height = 22
    claim_as_canary(task, 22, [ME])
    chain.tasks.remove(task)
    chain.votes.append(task)
    asyncio.run(worker.step())
    assert chain.height < task.deadline
    assert outbox.get("validation:early:scores").state == OutboxState.PENDING


def test_a_claimed_canarys_voter_waits_for_its_checkers_scores(open_db) -> None:
    """Drawn for a claimed canary's vote that another member's scores may settle, the
    validator re-scores nothing until the scores' time is over, then votes if it is still
    drawn."""
    chain = FakeChain(height=15)
    db = open_db()
    outbox = Outbox(db)
    ml = FakeMlNode(chain)
    worker = checking_worker(db, chain, ml)
    task = chain.add("drawn", finish_height=16)
    chain.tasks.remove(task)
    claim_as_canary(task, 18, [OTHER])
    chain.votes.append(task)
    for chain.height in (19, 18 + PARAMS["canary_claim_blocks"]):
        asyncio.run(worker.step())
        assert outbox.get("validation:drawn:canary-vote") is None
        assert ml.scored == []
    chain.height = 19 + PARAMS["canary_claim_blocks"]
    asyncio.run(worker.step())
    assert outbox.get("validation:drawn:canary-vote").state == OutboxState.PENDING
    assert ml.scored == [(11, 12, EOS)]


def test_held_entries_wait_for_their_release(open_db) -> None:
    """The outbox side: a held entry is stored, counted as owed and listed, but never claimed
    until released; one given up on fails with its reason."""
    db = open_db()
    outbox = Outbox(db)
    report = MsgValidation(inference_id="a")
    with db.session() as session:  # a seal and its opening, one transaction
        assert outbox.enqueue("validation:a", MsgSealValidation(inference_id="a"),
                              session=session)
        assert outbox.enqueue("validation:a:open", report, session=session, held=True)
    assert outbox.enqueue("validation:b:open", report, held=True)
    assert not outbox.enqueue("validation:b:open", report)  # the key is taken, held or not
    assert [e.key for e in outbox.claim_batch(10)] == ["validation:a"]
    assert outbox.claim_batch(10) == []
    assert outbox.pending_count() == 3
    counts, _ = outbox.depth()
    assert counts[OutboxState.HELD] == 2
    assert [e.key for e in outbox.with_prefix("validation:", OutboxState.HELD)] == [
        "validation:a:open", "validation:b:open"]

    assert outbox.release("validation:a:open")
    assert not outbox.release("validation:a:open")  # pending now, not held
    assert not outbox.abandon("validation:a:open", "too late")
    due, = outbox.claim_batch(10)
    assert (due.key, due.payload) == ("validation:a:open", report.SerializeToString())
    assert outbox.abandon("validation:b:open", "too late")
    failed = outbox.get("validation:b:open")
    assert (failed.state, failed.last_error) == (OutboxState.FAILED, "too late")
    assert not outbox.release("validation:b:open")
    assert not outbox.release("validation:none:open")


def test_run_outlives_chain_failures_and_stops(open_db) -> None:
    class FlakyChain(FakeChain):
        failures = 3

        async def latest_height(self) -> int:
            if self.failures:
                self.failures -= 1
                raise ChainUnavailable("GetLatestBlock", grpc.StatusCode.UNAVAILABLE, "down")
            return self.height

    chain = FlakyChain(height=15)
    db = open_db()
    worker = make_worker(db, chain, FakeMlNode(chain), interval_s=0.01)

    async def scenario() -> None:
        running = asyncio.create_task(worker.run())
        while Outbox(db).get("commit_seed:2") is None:
            await asyncio.sleep(0.01)
        worker.stop()
        await asyncio.wait_for(running, 5)

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert chain.failures == 0
