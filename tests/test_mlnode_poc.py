"""Proof of compute on the ML node: the generator, the transformer, nonces, verification,
and the two rpcs through a real ML node process. Tiny preset on the CPU throughout."""

import asyncio
import concurrent.futures
import math
import threading

import grpc
import pytest
import torch
from mlnode_client import chat_ids, generate

from inferchain_pb.mlnode.v1 import mlnode_pb2 as pb
from mlnode.poc import (
    DEFAULT_TARGETS,
    PRESETS,
    PocModel,
    compute,
    compute_batches,
    expected_acceptance,
    poc_seed,
    sample_claims,
    verify,
)
from mlnode.poc.counter_rng import hash32, uniform_tensor
from mlnode.poc.nonces import HALF_DEPTH_KEEP, Screen, distances, reference_screen
from mlnode.poc.runner import PocRunner
from mlnode.poc.target import target_for_acceptance
from mlnode.types import PocNonce

SPEC = PRESETS["tiny"]
TARGET = DEFAULT_TARGETS["tiny"]
BLOCK = bytes.fromhex("ab" * 32)
SEED = poc_seed(BLOCK, "gonka1alice")
OTHER_SEED = poc_seed(BLOCK, "gonka1bob")
SAMPLE_SEED = b"later block hash"
NONCES = 8192


def binomial_bounds(n: int, p: float, sigmas: float = 4.0) -> tuple[float, float]:
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


@pytest.fixture(scope="module")
def model() -> PocModel:
    return PocModel(SPEC, SEED)


@pytest.fixture(scope="module")
def accepted(model) -> list[PocNonce]:
    return compute(model, range(NONCES), TARGET)


def _lowbias32(x: int) -> int:
    """The integer mix in plain Python ints: what the tensor code must equal exactly."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_counter_hash_equals_exact_integer_reference():
    keys = (0xDEADBEEF, 0x01234567, 0xFFFFFFFF)
    counters = [0, 1, 2, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 123456789]
    got = hash32(torch.tensor([counters]), torch.tensor([keys])).tolist()[0]
    want = []
    for c in counters:
        for k in keys:
            c = _lowbias32(c ^ k)
        want.append(c)
    assert got == want


def test_uniform_stream_is_pinned_and_has_unit_variance():
    # Pinned values: a change to the generator would change every participant's weights.
    assert uniform_tensor(b"k" * 32, (3,), 1.0, "cpu").tolist() == [
        -0.46992790699005127, 1.289079189300537, -1.035569190979004]
    values = uniform_tensor(b"k" * 32, (100_000,), 1.0, "cpu")
    assert abs(values.mean().item()) < 0.02 and abs(values.std().item() - 1) < 0.01
    assert values.abs().max().item() < math.sqrt(3)


def test_same_seed_same_weights_and_outputs_other_key_different(model):
    again = PocModel(SPEC, SEED)
    other = PocModel(SPEC, OTHER_SEED)
    assert all(torch.equal(a, b) for la, lb in zip(model.layers, again.layers, strict=True)
               for a, b in zip(vars(la).values(), vars(lb).values(), strict=True))
    assert not torch.equal(model.layers[0].qkv, other.layers[0].qkv)
    nonces = list(range(64))
    assert distances(model, nonces) == distances(again, nonces)
    assert distances(model, nonces) != distances(other, nonces)
    assert poc_seed(BLOCK, "gonka1alice") == SEED != poc_seed(bytes(32), "gonka1alice")


def test_a_nonce_distance_does_not_depend_on_its_batch(model):
    together = distances(model, [5, 900, 77])
    alone = [distances(model, [n])[0] for n in (5, 900, 77)]
    assert max(abs(a - b) for a, b in zip(together, alone, strict=True)) < 1e-6


def test_accepted_nonces_are_under_target_at_the_rate_the_target_implies(model, accepted):
    assert accepted and all(c.distance < TARGET for c in accepted)
    recomputed = distances(model, [c.nonce for c in accepted[:50]])
    assert all(d < TARGET for d in recomputed)
    rate = expected_acceptance(TARGET, SPEC.hidden)
    assert 0.02 < rate < 0.04  # the default means "a few %"
    low, high = binomial_bounds(NONCES, rate)
    assert low < len(accepted) < high
    # Another seed has the same rate: each nonce's target is its own random direction.
    other = compute(PocModel(SPEC, OTHER_SEED), range(4096), TARGET)
    low, high = binomial_bounds(4096, rate)
    assert low < len(other) < high


def test_half_the_nonces_give_about_half_the_accepted(model, accepted):
    half = compute(model, range(NONCES // 2), TARGET, batch_size=100)
    assert [c.nonce for c in half] == [c.nonce for c in accepted if c.nonce < NONCES // 2]
    # The two halves are independent draws at the same rate: the first half's count is
    # Binomial(total, 1/2) given the total.
    low, high = binomial_bounds(len(accepted), 0.5)
    assert low < len(half) < high


def test_a_range_too_long_for_len_is_searched_batch_by_batch(model):
    """An open-ended sprint (all of uint64) works: nothing takes the range's len()."""
    batches = compute_batches(model, range(0, 2**64), TARGET, batch_size=64)
    first, second = next(batches), next(batches)
    assert (first[0], second[0]) == (64, 64)
    assert [n.nonce for n in first[1]] == [n.nonce for n in compute(model, range(64), TARGET)]


def test_the_reference_screen_finds_most_accepted_nonces_and_only_genuine_ones(model,
                                                                            accepted):
    """Screening by depth and precision trades a few accepted nonces for compute: what it
    finds is a subset of the exhaustive search, at the same float32 distances, most of it."""
    screen = reference_screen(model)
    assert screen.model.dtype == torch.bfloat16 and screen.half_depth_keep == HALF_DEPTH_KEEP[SPEC]
    found = compute(model, range(NONCES), TARGET, screen=screen)
    exhaustive = {c.nonce: c.distance for c in accepted}
    assert {c.nonce for c in found} <= set(exhaustive)
    assert len(found) >= 0.8 * len(exhaustive)
    assert all(abs(c.distance - exhaustive[c.nonce]) < 1e-6 for c in found)
    assert verify(model, found, TARGET, 16, SAMPLE_SEED).passed
    # Each nonce is judged alone: another batching finds the same nonces.
    rebatched = compute(model, range(NONCES), TARGET, batch_size=100, screen=screen)
    assert [c.nonce for c in rebatched] == [c.nonce for c in found]


def test_a_bfloat16_screen_with_a_margin_loses_no_accepted_nonce(model, accepted):
    """The precision screen (a GPU's): every nonce within the margin of the target in
    bfloat16 is computed again in float32, so the claims are float32 distances and none of
    the accepted nonces is lost."""
    screen = Screen(model.to("cpu", "bfloat16"), 1.0, math.inf, 0.08 / math.sqrt(SPEC.hidden))
    found = compute(model, range(NONCES // 2), TARGET, screen=screen)
    assert found == [c for c in accepted if c.nonce < NONCES // 2]


def test_target_distance_and_rate_are_inverse():
    for hidden in (128, 4096):
        assert expected_acceptance(target_for_acceptance(0.03, hidden), hidden) == (
            pytest.approx(0.03, rel=1e-6))
    assert expected_acceptance(2.0, 128) == 1.0 and expected_acceptance(0.0, 128) == 0.0


def test_sample_is_seeded_and_independent_of_claim_order(accepted):
    first = sample_claims(accepted, 20, SAMPLE_SEED)
    assert first == sample_claims(list(reversed(accepted)), 20, SAMPLE_SEED)
    assert first != sample_claims(accepted, 20, b"another block")
    assert len(first) == 20 and set(first) <= set(accepted)


def test_verify_passes_honest_claims(model, accepted):
    report = verify(model, accepted, TARGET, 32, SAMPLE_SEED)
    assert report.passed and len(report.checks) == 32 and report.max_deviation < 1e-6


def test_verify_rejects_fabricated_claims(model):
    # Random nonces claimed with plausible distances: ~97 % of them are really over target.
    generator = torch.Generator().manual_seed(1)
    nonces = torch.randint(0, 2**62, (32,), generator=generator).tolist()
    forged = [PocNonce(n, TARGET - 0.01) for n in nonces]
    report = verify(model, forged, TARGET, 32, SAMPLE_SEED)
    assert not report.passed and report.failed >= 20


def test_verify_rejects_claims_computed_with_another_seed(accepted):
    report = verify(PocModel(SPEC, OTHER_SEED), accepted, TARGET, 32, SAMPLE_SEED)
    assert not report.passed and report.failed >= 20


def test_verify_rejects_duplicates_and_false_distances(model, accepted):
    assert verify(model, accepted + accepted[:1], TARGET, 8, SAMPLE_SEED).duplicates == [
        accepted[0].nonce]
    shifted = [PocNonce(c.nonce, c.distance - 1e-3) for c in accepted]
    assert verify(model, shifted, TARGET, 8, SAMPLE_SEED).failed == 8


# --- the rpcs, through a real `python -m mlnode serve` process -------------------------

def poc_request(start: int, count: int, **overrides) -> pb.PocRequest:
    fields = {"spec": pb.PocModelSpec(hidden=SPEC.hidden, layers=SPEC.layers, heads=SPEC.heads,
                                      ffn=SPEC.ffn, seq_len=SPEC.seq_len),
              "seed": SEED, "nonce_start": start, "nonce_count": count,
              "target_distance": TARGET, "batch_size": 256, **overrides}
    return pb.PocRequest(**fields)


def verify_request(claimed: list[pb.PocNonce], **overrides) -> pb.PocVerifyRequest:
    base = poc_request(0, 1)
    fields = {"spec": base.spec, "seed": SEED, "target_distance": TARGET,
              "claimed": claimed, "sample_size": 16, "sample_seed": SAMPLE_SEED, **overrides}
    return pb.PocVerifyRequest(**fields)


def test_rpc_streams_the_accepted_nonces_the_library_finds(mlnode, accepted):
    batches = list(mlnode.ProofOfCompute(poc_request(0, 2048, exhaustive=True), timeout=120))
    assert len(batches) == 8 and batches[-1].computed == 2048
    assert [b.computed for b in batches] == list(range(256, 2049, 256))
    streamed = [n for b in batches for n in b.accepted]
    assert batches[-1].accepted_total == len(streamed)
    assert [n.nonce for n in streamed] == [c.nonce for c in accepted if c.nonce < 2048]

    report = mlnode.VerifyProofOfCompute(verify_request(streamed), timeout=60)
    assert report.passed and report.failed == 0 and len(report.checks) == min(16, len(streamed))
    forged = [pb.PocNonce(nonce=n, distance=TARGET - 0.01) for n in range(10**9, 10**9 + 16)]
    report = mlnode.VerifyProofOfCompute(verify_request(forged), timeout=60)
    assert not report.passed and report.failed >= 10


def test_rpc_screens_by_default_as_the_library_does(mlnode, model, accepted):
    batches = list(mlnode.ProofOfCompute(poc_request(0, 2048), timeout=120))
    assert batches[-1].computed == 2048
    streamed = [(n.nonce, n.distance) for b in batches for n in b.accepted]
    screened = compute(model, range(2048), TARGET, batch_size=256,
                       screen=reference_screen(model))
    assert [n for n, _ in streamed] == [c.nonce for c in screened]
    assert {n for n, _ in streamed} <= {c.nonce for c in accepted}


def test_interleaved_requests_of_two_seeds_each_screen_with_their_own_model(model):
    """Two provers of different seeds whose requests take turns on the runner's thread (an ML
    node that two participants share, or a prover's sprint while it checks another's nonces):
    each screens with its own model's screen and finds what it finds alone. A screen kept for
    the wrong model would throw out nearly every nonce while counting them all computed."""
    other = PocModel(SPEC, OTHER_SEED)
    runner = PocRunner("cpu", busy=lambda: False)

    async def found(seed: bytes) -> list[int]:
        chunks = runner.prove(SPEC, seed, range(1024), TARGET, 256, "float32")
        return [n.nonce async for _, batch in chunks for n in batch]

    async def both() -> list[list[int]]:
        return await asyncio.gather(found(SEED), found(OTHER_SEED))

    try:
        together = asyncio.run(both())
    finally:
        runner.close()
    alone = [[c.nonce for c in compute(m, range(1024), TARGET, batch_size=256,
                                       screen=reference_screen(m))] for m in (model, other)]
    assert together == alone and all(len(nonces) > 10 for nonces in alone)


@pytest.mark.parametrize(("request_fields", "message"), [
    ({"seed": b"short"}, "seed must be 32 bytes"),
    ({"target_distance": 0.0}, "target_distance"),
    ({"nonce_count": 0}, "nonce_count"),
    ({"nonce_start": 2**64 - 1, "nonce_count": 2}, "2^64"),
    ({"spec": pb.PocModelSpec(hidden=130, layers=1, heads=4, ffn=8, seq_len=4)}, "heads"),
    ({"dtype": "int8"}, "dtype"),
])
def test_rpc_refuses_bad_requests(mlnode, request_fields, message):
    with pytest.raises(grpc.RpcError) as caught:
        list(mlnode.ProofOfCompute(poc_request(0, 16, **request_fields), timeout=30))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


def test_generation_proceeds_during_a_sprint(mlnode):
    """A long PoC request does not hold a generation until it ends."""
    stop = threading.Event()

    def sprint() -> int:
        stream = mlnode.ProofOfCompute(poc_request(10**6, 10**7), timeout=120)
        computed = 0
        for batch in stream:
            computed = batch.computed
            if stop.is_set():
                stream.cancel()
                break
        return computed

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(sprint)
        out = generate(mlnode, chat_ids(mlnode, "Say hi."), seed=3, max_tokens=8)
        stop.set()
        assert len(out.ids) >= 1 and out.finish_reason in ("stop", "length")
        assert 0 < running.result(timeout=60) < 10**7
