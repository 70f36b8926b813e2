"""The artifact codec on many random artifacts, on every kind of malformed input, and on size."""

import math
import random

import pytest

from chain.inference.artifact import (
    LOGPROB_FLOOR,
    LOGPROB_QUANTUM,
    ArtifactError,
    ArtifactStep,
    decode,
    encode,
    json_size,
)
from chain.inference.params import MAX_TOP_K

VOCAB = 49_152  # the default model's vocabulary


def random_logprob(rng: random.Random) -> float:
    roll = rng.random()
    if roll < 0.05:
        return -math.inf
    if roll < 0.10:
        return 0.0
    if roll < 0.15:
        return -rng.uniform(20, 1024)  # very negative, still above the floor
    return -rng.expovariate(0.5)


def random_step(rng: random.Random, k: int) -> ArtifactStep:
    n = rng.randint(0, k) if rng.random() < 0.3 else k
    top_ids = tuple(rng.randrange(200_001) for _ in range(n))
    top_logprobs = tuple(sorted((random_logprob(rng) for _ in range(n)), reverse=True))
    if n and rng.random() < 0.7:  # the sampled token is one of the alternatives
        rank = rng.randrange(n)
        return ArtifactStep(top_ids[rank], top_logprobs[rank], top_ids, top_logprobs)
    return ArtifactStep(rng.randrange(200_001), random_logprob(rng), top_ids, top_logprobs)


def random_artifact(rng: random.Random, max_length: int = 300) -> tuple[int, list[ArtifactStep]]:
    k = rng.randint(0, MAX_TOP_K)
    return k, [random_step(rng, k) for _ in range(rng.randint(0, max_length))]


def close(decoded: float, original: float) -> bool:
    """Equal up to half a quantum, once the original is clamped to the stored range."""
    expected = min(max(original, LOGPROB_FLOOR), 0.0)
    return abs(decoded - expected) <= LOGPROB_QUANTUM / 2


def realistic_artifact(rng: random.Random, length: int, k: int = 5) -> list[ArtifactStep]:
    """Like an LM's output: a confident top choice, alternatives a nat or so apart, and ids
    log-uniform over [64, VOCAB) since frequent tokens have low ids (the default model's top-5
    ids: 13% below 128, 93% below 16,384)."""
    steps = []
    for _ in range(length):
        logprobs = [-rng.uniform(0, 3) * rng.random()]
        for _ in range(k - 1):
            logprobs.append(logprobs[-1] - rng.expovariate(1.0))
        ids: tuple[int, ...] = ()
        while len(set(ids)) < k:
            ids = tuple(int(64 * (VOCAB / 64) ** rng.random()) for _ in range(k))
        rank = rng.choices(range(k), weights=[80, 10, 5, 3, 2])[0]
        steps.append(ArtifactStep(ids[rank], logprobs[rank], ids, tuple(logprobs)))
    return steps


def test_random_artifacts_round_trip_up_to_the_quantum():
    rng = random.Random(20240501)
    for _ in range(60):
        k, steps = random_artifact(rng)
        data = encode(steps, k)
        decoded_k, decoded = decode(data)
        assert decoded_k == k
        assert len(decoded) == len(steps)
        for original, back in zip(steps, decoded, strict=True):
            assert back.token_id == original.token_id
            assert back.top_ids == original.top_ids
            assert close(back.logprob, original.logprob)
            assert len(back.top_logprobs) == len(original.top_logprobs)
            for decoded_logprob, logprob in zip(back.top_logprobs, original.top_logprobs,
                                                strict=True):
                assert close(decoded_logprob, logprob)
        assert encode(decoded, k) == data


def test_clamped_values_decode_to_the_documented_bounds():
    step = ArtifactStep(7, -math.inf, (7, 9, 11), (1e-9, -2000.0, -math.inf))
    _, [back] = decode(encode([step], 3))
    assert back.logprob == LOGPROB_FLOOR == -1024.0
    assert back.top_logprobs == (0.0, LOGPROB_FLOOR, LOGPROB_FLOOR)


def test_the_sampled_token_in_the_top_k_costs_one_byte():
    top = ArtifactStep(3, -0.5, (3, 4), (-0.5, -1.0))
    outside = ArtifactStep(5, -0.5, (3, 4), (-0.5, -1.0))
    assert len(encode([outside], 2)) - len(encode([top], 2)) == 3  # id 5 and q 512 as varints


def test_a_token_that_matches_only_by_id_keeps_its_own_logprob():
    step = ArtifactStep(3, -2.0, (3, 4), (-0.5, -1.0))  # e.g. a different temperature
    _, [back] = decode(encode([step], 2))
    assert back == step


def test_encode_refuses_data_no_engine_produces():
    with pytest.raises(ValueError, match="k must be"):
        encode([], MAX_TOP_K + 1)
    with pytest.raises(ValueError, match="more than k"):
        encode([ArtifactStep(1, -1.0, (1, 2), (-1.0, -2.0))], 1)
    with pytest.raises(ValueError, match="non-increasing"):
        encode([ArtifactStep(1, -1.0, (1, 2), (-2.0, -1.0))], 2)
    with pytest.raises(ValueError, match="NaN"):
        encode([ArtifactStep(1, math.nan, (), ())], 2)
    with pytest.raises(ValueError, match="outside"):
        encode([ArtifactStep(-1, -1.0, (), ())], 2)
    with pytest.raises(ValueError, match="2 top ids but 1"):
        encode([ArtifactStep(1, -1.0, (1, 2), (-1.0,))], 2)


VALID = encode([ArtifactStep(300, -0.25, (300, 17), (-0.25, -3.0)),
                ArtifactStep(5, -7.0, (300,), (-1.0,))], 2)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "truncated"),
    (VALID[:-1], "truncated"),
    (VALID[:5], "step 0: truncated: the input ends at the top id"),
    (VALID + b"\x00", "trailing bytes"),
    (b"\x02" + VALID[1:], "unknown artifact version 2"),
    (b"\x01\x15\x00", "k is 21, over the maximum 20"),
    (b"\x01\x05" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
    (b"\x01\x05\x80\x00", "non-minimal"),
    (b"\x01\x05\xff\xff\xff\xff\x0f", "step count 4294967295 is more than the 0 remaining"),
    (b"\x01\x05\x04\x00\x00\x00", "step count 4 is more than the 3 remaining"),
    (b"\x01\x01\x01\x03", "step 0: the tag is 3, over the maximum 2"),
    (b"\x01\x02\x01\x05", "tag names top entry 0 of only 0 alternatives"),
    (b"\x01\x00\x01\x00\x80\x80\x80\x80\x10\x00", "token id is 4294967296, over the maximum"),
    (b"\x01\x00\x01\x00\x01\x81\x80\x40", "token logprob is 1048577, over the maximum 1048576"),
    (b"\x01\x02\x01\x00\x01\x00\x07\x07\x80\x80\x40\x01", "top logprob gap is 1, over"),
    (b"\x01\x01\x01\x00\x07\x00\x07\x00", "stored explicitly though it is top entry 0"),
])
def test_malformed_input_raises_artifact_error(data, message):
    with pytest.raises(ArtifactError, match=message):
        decode(data)


def test_random_corruptions_raise_artifact_error_or_decode_canonically():
    """Whatever decode accepts is the one encoding of what it returns; it never crashes."""
    rng = random.Random(7)
    originals = []
    for _ in range(50):  # short, so that corruptions often land in headers and tags
        k, steps = random_artifact(rng, max_length=6)
        originals.append(encode(steps, k))
    for _ in range(3000):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 3)):
            roll = rng.random()
            if roll < 0.5 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif roll < 0.7 and data:
                del data[rng.randrange(len(data)):]
            elif roll < 0.85:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
            elif data:
                del data[rng.randrange(len(data))]
        try:
            k, steps = decode(bytes(data))
        except ArtifactError:
            continue
        assert encode(steps, k) == bytes(data)


def test_a_realistic_top5_artifact_is_far_smaller_than_json():
    steps = realistic_artifact(random.Random(1), 500)
    binary = len(encode(steps, 5)) / len(steps)
    as_json = json_size(steps) / len(steps)
    assert binary < 22  # 20.8 bytes per token when written
    assert binary < as_json / 5
