"""Verification end to end on a local network: real chain, API node and ML node processes,
the official openai client, and validator workers that re-score on their own ML nodes.

- A participant whose ML node cheats is caught: its inferences are invalidated, the developer
  is refunded, it becomes INVALID and gets no more traffic, while honest participants are
  never invalidated, even with a validator that lies in every report and vote.
- A newcomer's every inference is checked; a participant with full reputation about 1%.
- A validator that skips its checks is found at seed reveal; one that passes everything is
  caught by a canary.
- A participant serving an int8 copy whose every output passes its check alone is caught by
  its evidence accumulated across the epoch, while honest fp32 participants never are.
- Under the fp32 registry's own thresholds, a forgery of int8 tokens with the real model's
  logprobs (an honest distance) fails on the sampling rule alone, which fp32 holds without
  half precision's slack, and its participant is INVALID within the epoch; honest
  participants serving the same weights registered in bfloat16 check only each other's
  inferences and are never flagged.
"""

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import openai
import pytest
from chain_client import broadcast_raw, ledger
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from inference_actors import (
    WEIGHTS,
    Actor,
    developer_charge,
    finish_msg,
    genesis_models,
    request_id,
    start_msg,
)
from local_network import MODEL, LocalNetwork, MlNodes, poll

from chain.inference.artifact import ArtifactStep
from chain.inference.keeper import invalid_now
from chain.inference.model import (
    DEFAULT_REFERENCES,
    DEFAULT_RULES,
    DEFAULT_THRESHOLDS,
    RULE_FIELDS,
)
from chain.scales import PPM
from chain.validation.params import ValidationParams
from chain.validation.sampling import expected_checks_ppm
from genesis.account_keys import AccountKey, generate_account_keys
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import INVALIDATED, VALIDATED
from inferchain_pb.inference.v1.validation_pb2 import (
    FAILED,
    IN_VOTE,
    OPEN,
    PASSED,
    UNCHECKED,
    ValidationTask,
)
from inferchain_pb.mlnode.v1 import mlnode_pb2 as ml
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc

# Prefill forgery: tokens from a cheaper model (every other layer skipped), logprobs from the
# real one, so the distance looks honest and only the seeded sampling rule gives it away. A
# forger still validates with the real model, so its reports on others are honest.
CHEAT = "forge-prefill"
FAST_WORKER = {"validator_interval_s": 0.5}
# The int8 forger's outputs: 32 tokens, of which the calibration saw 10 in 15 break the fp32
# rule. It is asked until INVALID or until it served FORGED of them (a quarter of the draws):
# 20 leave it with fewer than 5 failures and never 2 in a row about once in 100,000 runs at
# 2 in 3 failing (3 in 1,000 at 1 in 2).
FORGED, FORGED_TOKENS, FORGERY_ROUNDS = 20, 32, 80
# A second registry entry for the default weights, served in bfloat16 under half precision's
# own calibration; BF16_CHATS of its inferences run beside the fp32 ones.
BF16_MODEL = f"{MODEL}/bf16"
BF16_CHATS = 6
# No epoch boundary during the test: INVALID lasts until the epoch ends.
# Windows of minutes: a newcomer is checked by every member, and on two CPU cores the checks
# queue behind generation.
# Three checks owed per newcomer inference instead of two: each of up to three other members
# of equal weight then checks every inference, which `all_checked` and the verdicts below count
# on (two leave one in 27 unchecked among three equal members; the rule itself is tested in
# test_validation_module.py and measured by bench/verification_overhead.py).
ONE_LONG_EPOCH = {"epochs": {"epoch_length_blocks": 100_000},
                  "validation": {"validation_window_blocks": 600, "voting_period_blocks": 300,
                                 "opening_blocks": 20, "reveal_window_blocks": 940,
                                 "canary_rate_ppm": 0,
                                 "invalid_after_consecutive": 2,
                                 "max_expected_checks_ppm": 3_000_000}}
# Open-ended asks, so that answers run to max_tokens: a forged output's rule violations grow
# with its length (calibration: every forgery of 32 tokens caught; 8 tokens can slip).
PROMPTS = ["Write a story about a fox.", "Describe a walk through a market.",
           "Explain how a bicycle works.", "Describe the sea at night.",
           "Write a letter to a friend.", "Tell me about bread."]


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(honest port, cheating port): API nodes of honest participants share the honest one."""
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 2, cheats=[None, CHEAT])
    yield nodes.ports[0], nodes.ports[1]
    nodes.close()


@pytest.fixture(scope="module")
def forge_int8_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An ML node whose tokens come from fake-int8 weights and whose logprobs from one prefill
    of the real model, claiming the registered fp32 model."""
    nodes = MlNodes(tmp_path_factory.mktemp("forge-int8"), 1, cheats=["forge-prefill-int8"])
    yield nodes.ports[0]
    nodes.close()


@pytest.fixture(scope="module")
def bf16_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Two honest ML nodes computing in bfloat16, serving the same weights as BF16_MODEL."""
    nodes = MlNodes(tmp_path_factory.mktemp("bf16"), 2, dtype="bfloat16", model_id=BF16_MODEL)
    yield nodes.ports
    nodes.close()


@pytest.fixture(scope="module")
def int8_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An ML node serving fake-int8 weights while claiming the registered fp32 model."""
    nodes = MlNodes(tmp_path_factory.mktemp("int8"), 1, cheats=["int8"])
    yield nodes.ports[0]
    nodes.close()




def chat(net: LocalNetwork, node_index: int, n: int, max_tokens: int = 16,
         model: str = MODEL) -> str:
    reply = net.client(net.nodes[node_index]).chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPTS[n % len(PROMPTS)]}],
        max_tokens=max_tokens, temperature=0.7, seed=1000 + n)
    return reply.model_extra["inference_id"]


def chat_until_drawn(net: LocalNetwork, cheater: str, agents: list[int], needed: int,
                     rounds: int) -> list[str]:
    """Inference ids of chats sent two at a time through the API nodes ``agents`` until the
    draw gave ``cheater`` ``needed`` of them and every participant one (at most ``rounds``
    pairs)."""
    ids: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        for round_ in range(rounds):
            ids += pool.map(lambda n: chat(net, agents[n % len(agents)], n),
                            range(2 * round_, 2 * round_ + 2))
            executors = [net.finished(i).executor for i in ids]
            if executors.count(cheater) >= needed and len(set(executors)) == len(net.nodes):
                break
    assert executors.count(cheater) >= needed, executors
    return ids


def wait_for_seeds(net: LocalNetwork, epoch: int) -> None:
    def committed() -> bool | None:
        for node in net.nodes:
            try:
                net.query("SeedCommitment", q.QuerySeedCommitmentRequest(
                    address=node.address, epoch=epoch), q.QuerySeedCommitmentResponse)
            except grpc.RpcError:
                return None
        return True
    poll(committed, f"every validator's seed for epoch {epoch}", 60, 0.3)


def height(net: LocalNetwork) -> int:
    return net.query("Status", q.QueryStatusRequest(), q.QueryStatusResponse).height


def all_checked(net: LocalNetwork, ids: list[str]) -> dict[str, ValidationTask]:
    """Waits until every member serving the inference's model but the executor reported on
    each inference (a newcomer's is owed three checks under ONE_LONG_EPOCH, one by each of up
    to three equal others), and nobody else did, and no vote is open; returns the tasks."""
    members = net.query("Epoch", q.QueryEpochRequest(), q.QueryEpochResponse).members.members

    def done() -> dict[str, ValidationTask] | None:
        tasks = {i: net.task(i) for i in ids}
        for found in tasks.values():
            serving = {m.address for m in members if found.model_id in m.model_ids}
            if {r.validator for r in found.reports} != serving - {found.executor} or \
                    found.state == IN_VOTE:
                return None
        return tasks
    return poll(done, "every inference checked by every other member", 600, 1.0)


def test_a_cheating_executor_is_caught_while_honest_ones_never_are(mlnodes, tmp_path):
    """Four participants: a forger, a validator that lies in every report (and so in every
    vote it is drawn for), and two honest ones. Every vote has three voters, one a liar."""
    honest_port, cheat_port = mlnodes
    net = LocalNetwork(tmp_path, [cheat_port, *[honest_port] * 3], params=ONE_LONG_EPOCH,
                       in_genesis=True,
                       node_settings=[FAST_WORKER, {**FAST_WORKER, "validator_fault": "lie"},
                                      FAST_WORKER, FAST_WORKER])
    try:
        cheater, liar = net.nodes[0].address, net.nodes[1].address
        wait_for_seeds(net, 0)
        before = net.account(net.developer.address).balance
        # Two caught forgeries in a row make the cheater INVALID. The draw gives it a quarter
        # of the requests: 48 leave it fewer than two about once in 60,000 runs (16 left it
        # fewer once in 16).
        ids = chat_until_drawn(net, cheater, [2, 3], 2, 24)

        tasks = all_checked(net, ids)
        inferences = {i: net.inference(i) for i in ids}
        for inference_id, found in tasks.items():
            status = inferences[inference_id].status
            if found.executor == cheater:
                assert (found.state, status) == (FAILED, INVALIDATED), inference_id
            else:
                assert found.state in (OPEN, PASSED) and status == VALIDATED, inference_id
        # The liar failed every honest output it checked and passed the cheater's: votes
        # among the others kept every outcome.
        honest_tasks = [t for t in tasks.values() if t.executor != cheater]
        lied = [t for t in honest_tasks if t.executor != liar and
                any(r.validator == liar and not r.passed for r in t.reports)]
        assert lied and all(t.voters for t in lied)
        for address in {t.executor for t in honest_tasks}:
            stats = net.query("ExecutorStats", q.QueryExecutorStatsRequest(address=address),
                              q.QueryExecutorStatsResponse).stats
            assert stats.invalidations == 0, address
        # Developers pay for what was not invalidated, and are refunded what was.
        paid = developer_charge(inferences[i] for i in ids)
        account = net.account(net.developer.address)
        assert (before - account.balance, account.escrow) == (paid, 0)

        assert invalid_now(net.participant(cheater))
        later = [chat(net, 2 + n % 2, 100 + n) for n in range(4)]
        assert cheater not in {net.finished(i).executor for i in later}
        for n in range(20):
            order = net.query("Draw", q.QueryDrawRequest(inference_id=f"probe-{n}",
                                                         model_id=MODEL),
                              q.QueryDrawResponse).order
            assert cheater not in order
    finally:
        net.close()


def honest_artifact(port: int) -> tuple[list[int], list[ArtifactStep]]:
    """A real greedy answer of the default model: prompt ids and the executor's steps."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ml_grpc.MLNodeStub(channel)
        prompt = list(stub.Tokenize(ml.TokenizeRequest(chat=ml.ChatMessages(messages=[
            ml.ChatMessage(role="user", content="Name a colour.")])), timeout=30).token_ids)
        chunks = stub.Generate(ml.GenerateRequest(
            prompt_ids=prompt, top_logprobs=5,
            sampling=ml.SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2, seed=42)),
            timeout=60)
        steps = [ArtifactStep(c.step.token_id, c.step.logprob,
                              tuple(t.token_id for t in c.step.top),
                              tuple(t.logprob for t in c.step.top))
                 for c in chunks if c.HasField("step")]
    return prompt, steps


def closed_tasks(net: LocalNetwork, ids: list[str], timeout: float) -> list[ValidationTask]:
    """The tasks once every window has closed (no more checks can come)."""
    def closed() -> list[ValidationTask] | None:
        tasks = [net.task(i) for i in ids]
        return tasks if all(t.state in (PASSED, FAILED, UNCHECKED) for t in tasks) else None
    return poll(closed, "every validation window closed", timeout, 1.0)


def execute_as(net: LocalNetwork, executor: Actor, prefix: str, count: int,
               artifact: tuple[list[int], list[ArtifactStep]]) -> list[str]:
    """``count`` inferences the draw gives ``executor``, started and finished by its own
    signed transactions (many per tx) with a real honest answer; their ids once on chain."""
    prompt, steps = artifact
    output = [s.token_id for s in steps]
    client = ledger(net.chain.grpc_port)
    executor.account_number = client.query_account(executor.wallet.address()).number
    executor.sequence = client.query_account(executor.wallet.address()).sequence
    developer = Actor(LocalWallet(PrivateKey(bytes.fromhex(net.developer.private_key_hex)),
                                  prefix="infer"))
    ids: list[str] = []
    n = 0
    while len(ids) < count:
        stamp = int(time.time())
        draw_height = net.request_draw(
            request_id(executor, developer, f"{prefix}-0", stamp), stamp)[1]
        batch = []
        while len(batch) < 200 and len(ids) + len(batch) // 2 < count:
            n += 1
            label = f"{prefix}-{n}"
            inference_id = request_id(executor, developer, label, stamp)
            if net.draw(inference_id, draw_height)[0] != executor.address:
                continue
            start = start_msg(executor, developer, label, executor.address,
                              draw_height, stamp, prompt, max_tokens=2, temperature=0.0)
            batch += [start, finish_msg(executor, start, output, steps=steps)]
        code, log, _ = broadcast_raw(client, executor.tx(*batch, gas_limit=100_000_000))
        assert code == 0, log
        last = batch[-1].inference_id
        poll(lambda last=last: net.inference(last), f"batch ending {last}", 60, 0.3)
        ids += [m.inference_id for m in batch[::2]]
    return ids


def own_participant(weight: int) -> tuple[Actor, AccountKey, dict]:
    """A participant a test drives itself: its actor, funded key, genesis entry."""
    key, = generate_account_keys(1)
    actor = Actor(LocalWallet(PrivateKey(bytes.fromhex(key.private_key_hex)), prefix="infer"))
    return actor, key, {"address": actor.address, "url": "http://127.0.0.1:1",
                        "node_pubkey": bytes(actor.node_key.verify_key).hex(),
                        "weight": weight,
                        "models": [{"model_id": MODEL, "weights_sha256": WEIGHTS}]}


TRUSTED_RUNS = 2000
P_MIN = 0.01


def test_a_trusted_executor_is_checked_about_one_percent_of_the_time(mlnodes, tmp_path):
    """A participant with full reputation executes many inferences (its own signed
    transactions, carrying a real honest output of the model); the real validator workers
    decide with their secret seeds which to check, and the observed share must be p_min."""
    honest_port, _ = mlnodes
    trusted, trusted_key, entry = own_participant(1_000_000)
    # Registered in genesis with a large weight, so the draw picks it for nearly every id;
    # the three validators' weights are equal, so each gets a third of the checks.
    net = LocalNetwork(tmp_path, [honest_port] * 3, in_genesis=True,
                       extra_accounts=[trusted_key],
                       extra_participants=[entry],
                       reputations={trusted_key.address: 1_000_000},
                       node_settings=[FAST_WORKER] * 3,
                       params={"epochs": {"epoch_length_blocks": 100_000},
                               "validation": {"validation_window_blocks": 200,
                                              "voting_period_blocks": 20,
                                              "opening_blocks": 20,
                                              "reveal_window_blocks": 260,
                                              "canary_rate_ppm": 0}})
    try:
        artifact = honest_artifact(honest_port)
        wait_for_seeds(net, 0)  # the validators' seeds are fixed before any of these
        ids = execute_as(net, trusted, "trusted", TRUSTED_RUNS, artifact)
        tasks = closed_tasks(net, ids, 300)
        assert {t.p_ppm for t in tasks} == {10_000}
        checked = [t for t in tasks if t.reports]
        sigma = (TRUSTED_RUNS * P_MIN * (1 - P_MIN)) ** 0.5
        assert abs(len(checked) - TRUSTED_RUNS * P_MIN) < 4 * sigma, len(checked)
        assert all(t.state == PASSED for t in checked)  # an honest output passes
        print(f"full reputation: {len(checked)} of {TRUSTED_RUNS} inferences checked "
              f"(p = {P_MIN}); {sum(len(t.reports) for t in tasks)} checks in all")
    finally:
        net.close()


# Reputation from 0 to full in two clean epochs: p = 1, then 0.505, then p_min = 0.01. At
# p = 1 the three workers make about 80 checks (two per inference) on one shared CPU ML node:
# a window of 90 s.
RISING_EPOCHS = {"epochs": {"epoch_length_blocks": 150},
                 "validation": {"epochs_to_max": 2, "validation_window_blocks": 300,
                                "voting_period_blocks": 20, "opening_blocks": 20,
                                "reveal_window_blocks": 360,
                                "canary_rate_ppm": 0}}
RISING_RUNS = 40


def test_reputation_rises_over_clean_epochs_and_the_checks_fall_with_it(mlnodes, tmp_path):
    """A newcomer (reputation 0) executes 40 honest inferences in each of three epochs; the
    three validator workers check what their seeds tell them to. Observed: two checks per
    inference in the first epoch (the cap, not one per member), −ln(1 − 0.505) ≈ 0.70 in the
    second, about 0.01 in the third, each member a third of them; and the share checked by
    anyone is 1 − (1 − m/3)^3 of that m: 96%, 55%, 1%."""
    honest_port, _ = mlnodes
    rising, key, entry = own_participant(1_000_000)
    net = LocalNetwork(tmp_path, [honest_port] * 3, in_genesis=True, extra_accounts=[key],
                       extra_participants=[entry], node_settings=[FAST_WORKER] * 3,
                       params=RISING_EPOCHS)
    try:
        artifact = honest_artifact(honest_port)
        observed = []
        first = net.query("Epoch", q.QueryEpochRequest(), q.QueryEpochResponse).current
        for epoch in range(first.number, first.number + 3):
            start = first.start_height + (epoch - first.number) * first.length
            poll(lambda start=start: height(net) >= start or None, f"epoch {epoch}", 300, 0.5)
            wait_for_seeds(net, epoch)
            reputation = net.query("ExecutorStats", q.QueryExecutorStatsRequest(
                address=rising.address), q.QueryExecutorStatsResponse).stats.reputation_ppm
            ids = execute_as(net, rising, f"rising-{epoch}", RISING_RUNS, artifact)
            tasks = [net.task(i) for i in ids]
            assert all(t.epoch == epoch for t in tasks), "a batch crossed an epoch boundary"
            observed.append((reputation, {t.p_ppm for t in tasks}, ids))
        assert [r for r, _, _ in observed] == [0, 500_000, 1_000_000]
        assert [p for _, p, _ in observed] == [{1_000_000}, {505_000}, {10_000}]
        cap = ValidationParams().max_expected_checks_ppm
        for reputation, p_values, ids in observed:
            tasks = closed_tasks(net, ids, 600)
            checks_ppm, = {t.expected_checks_ppm for t in tasks}
            assert checks_ppm == expected_checks_ppm(min(p_values), cap)
            checked = [t for t in tasks if t.reports]
            assert all(t.state == PASSED for t in checked)
            # Each of the three equal members checks an inference with probability m / 3.
            each = min(1.0, checks_ppm / PPM / 3)
            checks = sum(len(t.reports) for t in tasks)
            assert abs(checks - 3 * each * RISING_RUNS) <= 4 * math.sqrt(
                3 * RISING_RUNS * each * (1 - each)) + 2, (reputation, checks)
            anyone = 1 - (1 - each) ** 3
            assert abs(len(checked) - anyone * RISING_RUNS) <= 4 * math.sqrt(
                RISING_RUNS * anyone * (1 - anyone)) + 2, (reputation, len(checked))
            print(f"reputation {reputation / 1e6:.2f}: p = {min(p_values) / 1e6:.3f}, "
                  f"{checks / RISING_RUNS:.2f} checks per inference (m = {checks_ppm / PPM:.3f}), "
                  f"{len(checked)} of {RISING_RUNS} checked")
    finally:
        net.close()


# Short enough to see an epoch end and be judged, long enough (90 s at 300 ms blocks) for the
# network to start and a few generations and their checks on two busy CPU cores. Every
# finished inference is a canary its executor planted, so the blind validator is certain to
# meet one; the executors have 20 blocks (6 s) to claim each once its checks are over.
# Four checks owed per newcomer inference, so each of the other four members (equal weights)
# checks every one: with the default two, each checks an inference with probability 1/2, and a
# member that served two of the four was required no check at all in about one run in four,
# which the required > 0 below cannot allow.
SHORT_EPOCHS = {"epochs": {"epoch_length_blocks": 300},
                "validation": {"validation_window_blocks": 60, "voting_period_blocks": 30,
                               "opening_blocks": 20, "reveal_window_blocks": 150,
                               "canary_rate_ppm": 1_000_000,
                               "canary_claim_blocks": 20,
                               "max_expected_checks_ppm": 4_000_000}}


def test_lazy_validators_are_caught_at_reveal_and_by_canaries(mlnodes, tmp_path):
    """Five participants on one honest ML node: three honest validators, one that commits and
    reveals its seed but checks nothing, one that reports every check as clean. Every
    inference is a canary its executor planted and claims: the blind member passes them and
    is lazy, the honest ones fail them and then open their scores of the outputs, which pass
    the real artifacts: the claims' votes close on them, no voter re-scoring."""
    honest_port, _ = mlnodes
    faults = ["", "", "", "skip-checks", "always-pass"]
    net = LocalNetwork(tmp_path, [honest_port] * 5, params=SHORT_EPOCHS, in_genesis=True,
                       node_settings=[{**FAST_WORKER, "validator_fault": f} for f in faults])
    try:
        epoch = net.query("Epoch", q.QueryEpochRequest(), q.QueryEpochResponse).current
        judged, start = epoch.number, epoch.start_height
        wait_for_seeds(net, judged)  # committed before any of the epoch's inferences
        with ThreadPoolExecutor(3) as pool:
            ids = list(pool.map(lambda n: chat(net, n % 3, n), range(4)))
        finished = [net.finished(i) for i in ids]
        assert all(i.finish_height < start + epoch.length for i in finished), \
            "the inferences must finish inside the judged epoch"
        # Each canary's vote closed on the scores of the honest members that caught it: every
        # report on the real artifact is one the chain measured from scores, no voter's ballot.
        for task in closed_tasks(net, ids, 300):
            assert task.state == PASSED and task.canary_key, task
            assert task.reports and all(r.from_scores and r.passed for r in task.reports), task

        def records() -> list | None:
            found = [net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
                address=node.address, epoch=judged), q.QueryValidatorRecordResponse).record
                for node in net.nodes]
            return found if all(r.settled for r in found) else None
        *honest, skipper, blind = poll(records, f"validators of epoch {judged} judged", 300, 1.0)
        for record in honest:
            assert record.revealed and record.required == record.done > 0, record
            assert not record.lazy and record.canaries_passed == 0, record
        assert honest[0].canaries_caught + honest[1].canaries_caught + \
            honest[2].canaries_caught > 0
        # Honest members fail every canary at once, so the votes they open take over the
        # skipper's checks (a vote is the check); it is drawn for some and casts no ballot.
        assert skipper.revealed and skipper.done == 0, skipper
        assert skipper.missed + skipper.missed_votes > 0 and skipper.lazy, skipper
        assert blind.revealed and blind.canaries_passed > 0 and blind.lazy, blind
        assert "opens its scores" in "".join(node.log() for node in net.nodes[:3])
    finally:
        net.close()


def test_an_int8_substitute_passes_every_check_alone_and_is_caught_by_its_epoch_evidence(
        mlnodes, int8_port, tmp_path):
    """The registry keeps bf16's per-inference slack (D = 0.15 nats and half precision's
    sampling rule), which an int8 copy's outputs (about 0.09 nats from fp32) pass one by one;
    its evidence, bet against the fp32 honest reference, crosses 1/α within the epoch. Honest
    fp32 executors never do. (Under fp32's own thresholds each output fails alone.)"""
    honest_port, _ = mlnodes
    reference, bet = DEFAULT_REFERENCES["float32"]
    # Each of the substitute's checks, at about 300 times μ0, is clipped at 4 μ0: it multiplies
    # the evidence by 1 + 3b, and 1/α = 1,000 is reached after this many.
    factor = 1 + 3 * bet / 1_000_000
    checks_to_cross = next(n for n in range(1, 100) if factor ** n >= 1_000)
    half_rule = dict(zip(RULE_FIELDS, DEFAULT_RULES["bfloat16"], strict=True))
    model = {**genesis_models()[0], "validation_threshold": "0.15", **half_rule,
             "reference_distance_micro": reference, "evidence_bet_ppm": bet}
    net = LocalNetwork(tmp_path, [int8_port, *[honest_port] * 3], params=ONE_LONG_EPOCH,
                       in_genesis=True,
                       node_settings=[FAST_WORKER] * 4, models=[model])
    try:
        cheater = net.nodes[0].address
        wait_for_seeds(net, 0)
        ids = chat_until_drawn(net, cheater, [1, 2, 3], checks_to_cross, 40)
        all_checked(net, ids)
        tasks = closed_tasks(net, ids, 900)
        # Every one of the substitute's outputs passed its checks alone.
        assert all(t.state == PASSED for t in tasks), [(t.executor, t.state) for t in tasks]
        records = {node.address: net.query(
            "ValidatorRecord", q.QueryValidatorRecordRequest(address=node.address, epoch=0),
            q.QueryValidatorRecordResponse).record for node in net.nodes}
        caught = records[cheater]
        assert caught.evidence_crossed and caught.invalid, caught
        assert caught.evidence_distance_micro > caught.evidence_checks * reference
        assert invalid_now(net.participant(cheater))
        for address, record in records.items():
            if address != cheater:
                assert not record.evidence_crossed and not record.invalid, record
                assert record.evidence_checks == 0 or \
                    record.evidence_distance_micro < record.evidence_checks * reference
        assert sum(r.evidence_checks for a, r in records.items() if a != cheater) >= 3
    finally:
        net.close()


def test_an_int8_forgery_with_honest_logprobs_fails_the_fp32_rule_alone(
        mlnodes, forge_int8_port, bf16_ports, tmp_path):
    """The registry as shipped for the default model: fp32, D = 0.00048 nats, the sampling
    rule at a tolerance of 0.001 with no violation forgiven. The forger's logprobs are the
    real model's, so every report finds its distance honest; its tokens, sampled from int8
    weights, break the rule at a few positions, and one such position fails the output. Two
    failures in a row make it INVALID; honest fp32 outputs break the rule nowhere.

    Beside them two honest participants serve the same weights registered in bfloat16 with
    half precision's calibration: they check only each other's inferences (the fp32 members
    owe none of them, having no bf16 ML node), pass them all, and are never flagged."""
    honest_port, _ = mlnodes
    model = {**genesis_models()[0], "validation_threshold": DEFAULT_THRESHOLDS["float32"]}
    bf16 = {**{k: v for k, v in genesis_models()[0].items() if k != "reference_distance_micro"},
            "id": BF16_MODEL, "serving_dtype": "bfloat16",
            "validation_threshold": DEFAULT_THRESHOLDS["bfloat16"]}
    net = LocalNetwork(tmp_path, [forge_int8_port, *[honest_port] * 3, *bf16_ports],
                       params=ONE_LONG_EPOCH, in_genesis=True, node_settings=[FAST_WORKER] * 6,
                       models=[model, bf16], serves=[0, 0, 0, 0, 1, 1])
    try:
        forger = net.nodes[0].address
        registered = net.query("Models", q.QueryModelsRequest(), q.QueryModelsResponse).models
        assert tuple(getattr(registered[0], name) for name in RULE_FIELDS) == \
            DEFAULT_RULES["float32"]
        wait_for_seeds(net, 0)
        ids: list[str] = []
        with ThreadPoolExecutor(2) as pool:
            for round_ in range(FORGERY_ROUNDS):  # INVALID draws no more: stop there
                ids += pool.map(lambda n: chat(net, 1 + n % 3, n, FORGED_TOKENS),
                                range(2 * round_, 2 * round_ + 2))
                served = [net.finished(i).executor for i in ids].count(forger)
                if served >= FORGED or invalid_now(net.participant(forger)):
                    break
            half = list(pool.map(lambda n: chat(net, 4 + n % 2, n, model=BF16_MODEL),
                                 range(BF16_CHATS)))
        bf16_members = {node.address for node in net.nodes[4:]}
        assert {net.finished(i).executor for i in half} <= bf16_members
        tasks = all_checked(net, ids + half)
        bf16_threshold = round(float(bf16["validation_threshold"]) * PPM)
        for inference_id in half:
            task = tasks.pop(inference_id)
            assert task.state in (OPEN, PASSED), task
            assert {r.validator for r in task.reports} == bf16_members - {task.executor}
            assert all(r.passed and r.ids_match and r.distance_micro <= bf16_threshold
                       for r in task.reports), task
        for address in bf16_members:
            record = net.query("ValidatorRecord", q.QueryValidatorRecordRequest(
                address=address, epoch=0), q.QueryValidatorRecordResponse).record
            assert not record.evidence_crossed and not record.invalid, record
            assert not invalid_now(net.participant(address))
        poll(lambda: invalid_now(net.participant(forger)) or None,
             "the forger made INVALID", 300, 1.0)
        threshold = round(float(model["validation_threshold"]) * PPM)
        forged = [t for t in tasks.values() if t.executor == forger]
        failed = [t for t in forged if t.state == FAILED]
        assert failed, [(t.inference_id, t.state) for t in forged]
        for task in failed:
            # Caught by the rule: the honest validators found its distance within D.
            honest_reports = [r for r in task.reports if r.validator != forger]
            assert all(r.ids_match and r.distance_micro <= threshold and r.rule_violations > 0
                       for r in honest_reports), honest_reports
        for task in tasks.values():
            if task.executor != forger:
                assert task.state in (OPEN, PASSED), task
                assert all(r.rule_violations == 0 and r.distance_micro <= threshold
                           for r in task.reports), task
    finally:
        net.close()


def test_a_model_one_member_serves_is_refused_to_developers_saying_why(mlnodes, bf16_ports,
                                                                      tmp_path):
    """Only a model's servers check its inferences, so a model one member serves would be
    checked by nobody: the chain's draw names nobody for it, so no API node lists it in
    /v1/models and each answers a request for it with OpenAI's 503 `no_executor` and the
    chain's reason, charging nothing, while the model two members serve is answered."""
    honest_port, _ = mlnodes
    model = {**genesis_models()[0], "validation_threshold": DEFAULT_THRESHOLDS["float32"]}
    bf16 = {**{k: v for k, v in genesis_models()[0].items() if k != "reference_distance_micro"},
            "id": BF16_MODEL, "serving_dtype": "bfloat16",
            "validation_threshold": DEFAULT_THRESHOLDS["bfloat16"]}
    net = LocalNetwork(tmp_path, [honest_port, honest_port, bf16_ports[0]], in_genesis=True,
                       models=[model, bf16], serves=[0, 0, 1])
    try:
        funds = net.account(net.developer.address).balance
        for node in net.nodes:
            assert [m.id for m in net.client(node).models.list()] == [MODEL]
            with pytest.raises(openai.APIStatusError) as refused:
                net.client(node).chat.completions.create(
                    model=BF16_MODEL, max_tokens=4,
                    messages=[{"role": "user", "content": PROMPTS[0]}])
            assert refused.value.status_code == 503
            assert refused.value.body["code"] == "no_executor", refused.value.body
            assert "too few validators" in refused.value.body["message"], refused.value.body
        assert net.account(net.developer.address).balance == funds
        assert net.finished(chat(net, 2, 0, 4)).executor in {n.address for n in net.nodes[:2]}
    finally:
        net.close()

