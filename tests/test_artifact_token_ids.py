"""``artifact.token_ids``, the chain's fast reading of an artifact, against ``decode``, the
reference codec: on random, spliced, truncated, padded and valid bytes the two agree on
whether the bytes are an artifact, on k and the token ids, and on the error's message."""

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_artifact_fuzz import artifacts

from chain.inference.artifact import (
    MAX_TOKEN_ID,
    VERSION,
    ArtifactError,
    ArtifactStep,
    _fast_token_ids,
    decode,
    encode,
    token_ids,
)

FUZZ = settings(max_examples=1000, deadline=None)


def reference(data: bytes) -> tuple[int, list[int]] | str:
    try:
        k, steps = decode(data)
    except ArtifactError as e:
        return f"ArtifactError: {e}"
    return k, [s.token_id for s in steps]


def fast(data: bytes) -> tuple[int, list[int]] | str:
    try:
        return token_ids(data)
    except ArtifactError as e:
        return f"ArtifactError: {e}"


def assert_agree(data: bytes) -> None:
    assert fast(data) == reference(data), data.hex()


@FUZZ
@given(data=st.binary(max_size=300))
@example(b"")
@example(bytes([VERSION]))
@example(bytes([VERSION, 5]))
@example(bytes([VERSION, 5, 0]))
@example(bytes([VERSION, 0, 0]))
@example(bytes([VERSION, 0, 1, 0, 7, 0]))
@example(bytes([VERSION, 5]) + b"\xff" * 12)
@example(bytes([VERSION, 5, 0x80, 0x00]))
@example(bytes([VERSION, 21, 0]))
@example(bytes([VERSION, 0, 1, 0]) + b"\x00")
@example(bytes([VERSION, 0, 0x81, 0x80, 0x80, 0x80, 0x80, 0x01]))
@example(bytes([VERSION + 1, 0, 0]))
def test_random_bytes_read_alike(data):
    assert_agree(data)


@FUZZ
@given(data=st.lists(st.sampled_from([0x00, 0x01, 0x05, 0x06, 0x1e, 0x7f, 0x80, 0x81, 0xff]),
                     max_size=80).map(bytes), k=st.integers(0, 21), count=st.integers(0, 12))
def test_varint_soup_after_a_plausible_header_reads_alike(data, k, count):
    """Mostly tag- and varint-shaped bytes after a valid header, so the step parser (not the
    header check) is where the two could part."""
    assert_agree(bytes([VERSION, k, count]) + data)


@FUZZ
@given(artifact=artifacts())
def test_valid_artifacts_read_alike(artifact):
    k, steps = artifact
    data = encode(steps, k)
    assert fast(data) == (k, [s.token_id for s in steps])
    assert_agree(data)


@FUZZ
@given(artifact=artifacts(), where=st.integers(0, 1 << 16), extra=st.binary(min_size=1,
                                                                              max_size=4),
       cut=st.integers(0, 1 << 16), flip=st.integers(0, 255))
def test_spliced_truncated_and_flipped_artifacts_read_alike(artifact, where, extra, cut, flip):
    data = encode(artifact[1], artifact[0])
    at = where % (len(data) + 1)
    assert_agree(data[:at] + extra + data[at:])
    assert_agree(data[:cut % (len(data) + 1)])
    if len(data) > 1:
        flipped = bytearray(data)
        flipped[1 + at % (len(data) - 1)] ^= flip
        assert_agree(bytes(flipped))


def test_explicit_token_that_a_top_entry_references_is_refused_alike():
    """A step storing its token explicitly though it is top entry 0, id and logprob: the
    canonical rule both must enforce."""
    step = ArtifactStep(7, -0.5, (7, 9), (-0.5, -1.0))
    data = bytearray(encode([step], 2))
    assert data[3] == 1 * 3 + 0  # referenced as top entry 0, both alternatives present
    explicit = bytes([VERSION, 2, 1, 0, 7, 0x80, 0x04, 7, 9, 0x80, 0x04, 0x80, 0x04])
    assert reference(explicit) == "ArtifactError: step 0: token stored explicitly though it " \
                                  "is top entry 0"
    assert_agree(explicit)


def test_out_of_range_ids_and_gaps_are_refused_alike():
    big_id = MAX_TOKEN_ID + 1
    varint = bytearray()
    while big_id >= 0x80:
        varint.append(big_id & 0x7F | 0x80)
        big_id >>= 7
    varint.append(big_id)
    for data in (bytes([VERSION, 0, 1, 0]) + varint + b"\x00",
                 bytes([VERSION, 1, 1, 1]) + varint + b"\x00",
                 bytes([VERSION, 1, 1, 1, 5, 0x81, 0x80, 0x40]),
                 bytes([VERSION, 2, 1, 3, 5, 6, 0x80, 0x80, 0x20, 0x80, 0x80, 0x21])):
        assert reference(data).startswith("ArtifactError")
        assert_agree(data)


def test_long_artifacts_of_every_k_read_alike():
    rng = random.Random(5)
    for k in range(0, 21):
        steps = []
        for _ in range(600):
            n = rng.randint(0, k)
            ids = tuple(rng.randrange(0, 1 << rng.choice((7, 14, 32))) for _ in range(n))
            lps = tuple(sorted((-rng.random() * 5 for _ in range(n)), reverse=True))
            if n and rng.random() < 0.9:
                r = rng.randrange(n)
                steps.append(ArtifactStep(ids[r], lps[r], ids, lps))
            else:
                steps.append(ArtifactStep(rng.randrange(1 << 32), -rng.random(), ids, lps))
        data = encode(steps, k)
        assert fast(data) == reference(data) == (k, [s.token_id for s in steps])
        assert _fast_token_ids(data) is not None  # valid artifacts never need decode
        assert_agree(data[:-1])
        assert_agree(data + b"\x00")
