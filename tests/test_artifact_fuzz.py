"""The artifact codec fed by hypothesis: untrusted bytes and every shape of valid artifact.

Artifacts arrive in transactions, so ``decode`` must refuse anything that is not a canonical
encoding with ArtifactError alone, and accept exactly one byte string per artifact.
"""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chain.inference.artifact import (
    LOGPROB_FLOOR,
    MAX_TOKEN_ID,
    VERSION,
    ArtifactError,
    ArtifactStep,
    decode,
    dequantize,
    encode,
    quantize,
)
from chain.inference.params import MAX_TOP_K

FUZZ = settings(max_examples=300, deadline=None)
token_ids = st.one_of(st.integers(0, 60), st.integers(0, MAX_TOKEN_ID))
logprobs = st.one_of(st.floats(LOGPROB_FLOOR * 2, 1.0, allow_nan=False),
                     st.sampled_from([0.0, -0.0, LOGPROB_FLOOR, float("-inf"), 1e-9, -1e-9]))


@st.composite
def artifacts(draw: st.DrawFn) -> tuple[int, list[ArtifactStep]]:
    """(k, steps) as an engine produces them: top logprobs most likely first, and the token
    often one of its alternatives, so both tag codes are exercised."""
    k = draw(st.integers(0, MAX_TOP_K))
    steps = []
    for _ in range(draw(st.integers(0, 6))):
        n = draw(st.integers(0, k))
        tops = sorted(draw(st.lists(logprobs, min_size=n, max_size=n)), reverse=True)
        top_ids = tuple(draw(st.lists(token_ids, min_size=n, max_size=n)))
        if n and draw(st.booleans()):
            rank = draw(st.integers(0, n - 1))
            token_id, logprob = top_ids[rank], tops[rank]
        else:
            token_id, logprob = draw(token_ids), draw(logprobs)
        steps.append(ArtifactStep(token_id, logprob, top_ids, tuple(tops)))
    return k, steps


def _stored(step: ArtifactStep) -> tuple:
    """A step as the codec keeps it: logprobs quantized and clamped."""
    return (step.token_id, dequantize(quantize(step.logprob)), step.top_ids,
            tuple(dequantize(quantize(lp)) for lp in step.top_logprobs))


@FUZZ
@given(data=st.binary(max_size=300))
@example(b"")
@example(bytes([VERSION]))
@example(bytes([VERSION, 5]) + b"\xff" * 12)
@example(bytes([VERSION, 5, 0x80, 0x00]))
@example(bytes([VERSION, 21, 0]))
@example(bytes([VERSION, 0, 1, 0]) + b"\x00")
def test_random_bytes_decode_canonically_or_raise_artifact_error(data):
    try:
        k, steps = decode(data)
    except ArtifactError as e:
        assert str(e)
        return
    assert encode(steps, k) == data


@FUZZ
@given(artifact=artifacts())
def test_valid_artifacts_round_trip_through_the_quantum(artifact):
    k, steps = artifact
    data = encode(steps, k)
    decoded_k, decoded = decode(data)
    assert decoded_k == k
    assert [_stored(s) for s in decoded] == [_stored(s) for s in steps]
    assert encode(decoded, k) == data


@FUZZ
@given(artifact=artifacts(), where=st.integers(0, 1 << 16), extra=st.binary(min_size=1,
                                                                              max_size=4))
def test_bytes_spliced_into_a_valid_artifact_are_refused_or_canonical(artifact, where, extra):
    data = encode(artifact[1], artifact[0])
    at = where % (len(data) + 1)
    corrupted = data[:at] + extra + data[at:]
    try:
        k, steps = decode(corrupted)
    except ArtifactError:
        return
    assert encode(steps, k) == corrupted


@FUZZ
@given(artifact=artifacts().filter(lambda a: a[1]))
def test_a_padded_varint_is_refused(artifact):
    """A varint with a redundant 0x80 continuation spells the same number in more bytes."""
    k, steps = artifact
    data = encode(steps, k)
    padded = data[:1] + bytes([data[1] | 0x80, 0]) + data[2:]
    with pytest.raises(ArtifactError, match="the k is a non-minimal varint"):
        decode(padded)
