"""The validator worker's own logic: seed storage, which tasks it checks, what it queues.

The chain and the ML node are fakes that answer like the real ones (the same protobuf
messages and client dataclasses), and a fake delivery applies queued seed commits to the fake
chain; the real chain, API node and ML node together are the end-to-end tests' job.
"""

import asyncio
import hashlib
import random
from collections.abc import Callable, Iterator

import grpc
import pytest
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
from inferchain_pb.inference.v1.epochs_pb2 import Epoch
from inferchain_pb.inference.v1.inference_pb2 import Inference, Model, Participant
from inferchain_pb.inference.v1.validation_pb2 import (
    EpochMember,
    EpochMembers,
    MsgClaimRewards,
    MsgCommitSeed,
    MsgValidation,
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
          "canary_claim_blocks": 10,
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

    async def pending_votes(self, voter: str) -> list[ValidationTask]:
        return [t for t in self.votes if voter in t.voters]

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
        """A vote on ``task`` drawing OTHER and this validator, open until height 25; the task
        then leaves the feed of open tasks."""
        self.tasks.remove(task)
        task.state = TaskState.IN_VOTE
        task.voters.extend([OTHER, ME])
        task.vote_deadline = 25
        self.votes.append(task)

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
    those for an epoch already begun are refused (epoch 0's only once a task exists)."""
    entries = outbox.claim_batch(1000)
    current = (chain.height - 1) // LENGTH
    for entry in entries:
        if entry.type_url == type_url(MsgCommitSeed):
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
    return {e.key: MsgValidation.FromString(e.payload) for e in deliver(outbox, chain)
            if e.type_url == type_url(MsgValidation)}


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
    NODE_KEY.verify_key.verify(payload.validation_payload(
        "honest", honest.output_hash, 0, 0, True, 3, ME), honest.validator_signature)
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
    """A vote drawn while this validator's own report on the task is still queued: the report
    counts as the vote once it lands, so nothing more is queued; if that report fails, the
    vote is scored and queued under its own key."""
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
