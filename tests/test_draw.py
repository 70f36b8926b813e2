"""The executor draw: deterministic, unsteerable by input order, and fair to weight."""

import hashlib
import math
import random

import pytest

from chain.inference.draw import Candidate, DrawPool, NoEligibleExecutor, draw_order

BLOCK = hashlib.sha256(b"block 42").digest()
PARTICIPANTS = [
    Candidate("infer1alice", 100, 1_000_000),
    Candidate("infer1bob", 300, 500_000),
    Candidate("infer1carol", 50, 1_000_000),
    Candidate("infer1dave", 1000, 0),  # unavailable
    Candidate("infer1erin", 0, 1_000_000),  # no weight this epoch
    Candidate("infer1frank", 7, 250_000),
]
ELIGIBLE = {"infer1alice", "infer1bob", "infer1carol", "infer1frank"}


def reference_order(inference_id: str, block_hash: bytes, candidates: list[Candidate]) -> list[str]:
    """The rule as docs/design.md §3.3 states it, rescanning the list after every pick."""
    remaining = sorted((c.address, c.weight * c.availability_ppm) for c in candidates
                       if c.weight * c.availability_ppm > 0)
    seed = hashlib.sha256(inference_id.encode() + block_hash).digest()
    order = []
    for j in range(len(remaining)):
        digest = hashlib.sha256(seed + j.to_bytes(8, "big")).digest()
        target = int.from_bytes(digest, "big") % sum(w for _, w in remaining)
        for index, (address, weight) in enumerate(remaining):
            if target < weight:
                order.append(address)
                del remaining[index]
                break
            target -= weight
    return order


def test_same_inputs_give_the_same_order_whatever_the_input_order():
    order = draw_order("inf-1", BLOCK, PARTICIPANTS)
    rng = random.Random(3)
    for _ in range(20):
        shuffled = rng.sample(PARTICIPANTS, len(PARTICIPANTS))
        assert draw_order("inf-1", BLOCK, shuffled) == order


def test_the_order_is_the_rule_as_designed():
    rng = random.Random(5)
    for i in range(200):
        candidates = [Candidate(f"infer1p{n}", rng.choice([0, rng.randrange(1, 10**12)]),
                                rng.choice([0, 1_000_000, rng.randrange(1_000_001)]))
                      for n in range(rng.randint(1, 40))]
        if not any(c.weight * c.availability_ppm for c in candidates):
            continue
        block = rng.randbytes(32)
        assert draw_order(f"inf-{i}", block, candidates) == reference_order(
            f"inf-{i}", block, candidates)


def test_one_pool_serves_many_draws_read_in_any_interleaving():
    """Orders from one pool are independent: reading one pick by pick while others are read
    gives the order a fresh draw gives, so a pool built once serves every start."""
    pool = DrawPool(PARTICIPANTS)
    orders = {f"inf-{i}": pool.order(f"inf-{i}", BLOCK) for i in range(30)}
    read: dict[str, list[str]] = {name: [] for name in orders}
    rng = random.Random(9)
    while orders:
        name = rng.choice(sorted(orders))
        pick = next(orders[name], None)
        if pick is None:
            del orders[name]
        else:
            read[name].append(pick)
    for name, order in read.items():
        assert order == reference_order(name, BLOCK, PARTICIPANTS)


def test_a_pool_computes_only_the_picks_read(monkeypatch):
    """Reading the first pick of a 20,000-candidate pool hashes the seed and one pick, not
    the whole order: a start pays for the picks it checks."""
    candidates = [Candidate(f"infer1p{n:05d}", 1 + n % 7, 1_000_000) for n in range(20_000)]
    expected = draw_order("inf-1", BLOCK, candidates)[:2]
    pool = DrawPool(candidates)
    hashed = []
    sha256 = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda data: hashed.append(data) or sha256(data))
    order = pool.order("inf-1", BLOCK)
    assert next(order) == expected[0]
    assert len(hashed) == 2  # the seed, pick 0
    assert next(order) == expected[1]
    assert len(hashed) == 3


def test_different_inference_ids_and_blocks_give_different_executors():
    firsts = {draw_order(f"inf-{i}", BLOCK, PARTICIPANTS)[0] for i in range(50)}
    assert {"infer1alice", "infer1bob", "infer1carol"} <= firsts
    by_block = {draw_order("inf-1", hashlib.sha256(bytes([b])).digest(), PARTICIPANTS)[0]
                for b in range(50)}
    assert len(by_block) > 1


def test_the_order_holds_every_eligible_participant_once():
    for i in range(100):
        order = draw_order(f"inf-{i}", BLOCK, PARTICIPANTS)
        assert len(order) == len(ELIGIBLE)
        assert set(order) == ELIGIBLE


def test_first_picks_follow_weight_times_availability():
    draws = 10_000
    counts = dict.fromkeys(ELIGIBLE, 0)
    for i in range(draws):
        counts[draw_order(f"inference-{i}", BLOCK, PARTICIPANTS)[0]] += 1
    effective = {c.address: c.weight * c.availability_ppm for c in PARTICIPANTS}
    total = sum(effective.values())
    for address, count in counts.items():
        p = effective[address] / total
        sd = math.sqrt(draws * p * (1 - p))
        assert abs(count - draws * p) <= 4 * sd, (address, count, draws * p)


def test_no_eligible_candidate():
    with pytest.raises(NoEligibleExecutor):
        draw_order("inf-1", BLOCK, [])
    with pytest.raises(NoEligibleExecutor):
        draw_order("inf-1", BLOCK, [Candidate("infer1a", 0, 1_000_000),
                                    Candidate("infer1b", 5, 0)])


@pytest.mark.parametrize(("candidates", "message"), [
    ([Candidate("infer1a", 1, 1), Candidate("infer1a", 2, 2)], "listed twice"),
    ([Candidate("infer1a", -1, 1_000_000)], "negative weight"),
    ([Candidate("infer1a", 1, 1_000_001)], "availability"),
    ([Candidate("infer1a", 1, -1)], "availability"),
])
def test_invalid_candidates_are_refused(candidates, message):
    with pytest.raises(ValueError, match=message):
        draw_order("inf-1", BLOCK, candidates)


def test_block_hash_must_be_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        draw_order("inf-1", BLOCK[:31], PARTICIPANTS)
