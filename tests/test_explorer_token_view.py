"""The explorer's artifact rows: every output token with its logprob and top-k, decoded by
the chain's own codec; missing, broken or summarized artifacts are shown with the reason, not
raised."""

import asyncio
import math

from chain.inference.artifact import ArtifactStep, dequantize, encode, quantize
from explorer.token_view import decode_artifact
from inferchain_pb.inference.v1.inference_pb2 import Inference

STEPS = [ArtifactStep(3, -0.25, (3, 8, 1), (-0.25, -1.5, -3.0)),
         ArtifactStep(40, -4.0, (9, 2, 5), (-0.5, -1.0, -2.0))]


def test_each_token_has_its_logprob_and_alternatives_with_the_chosen_one_marked():
    decoded = asyncio.run(decode_artifact(
        Inference(artifact=encode(STEPS, 3), output_ids=[3, 40]), None))
    assert decoded.k == 3 and decoded.text is None
    assert "--mlnode" in decoded.problem
    assert [r.token_id for r in decoded.rows] == [3, 40]
    first, second = decoded.rows
    assert [a.token_id for a in first.alternatives] == [3, 8, 1]
    assert [a.chosen for a in first.alternatives] == [True, False, False]
    assert not any(a.chosen for a in second.alternatives)  # sampled outside the top-k
    assert second.logprob == dequantize(quantize(-4.0))
    assert math.isclose(first.alternatives[0].probability, math.exp(-0.25), rel_tol=1e-3)


def test_a_missing_or_broken_artifact_gives_no_rows_and_says_why():
    empty = asyncio.run(decode_artifact(Inference(), None))
    assert empty.rows == [] and empty.problem == "no artifact on chain yet"
    broken = asyncio.run(decode_artifact(Inference(artifact=b"\x07\x05", output_ids=[1]), None))
    assert broken.rows == []
    assert broken.problem.startswith("the artifact does not decode: unknown artifact version 7")
    summarized = asyncio.run(decode_artifact(Inference(
        summarized_height=90, record_sha256=bytes(range(32))), None))
    assert summarized.rows == [] and "since height 90" in summarized.problem
    assert bytes(range(32)).hex() in summarized.problem
