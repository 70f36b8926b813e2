"""An inference's artifact as rows a page can show: each output token with its logprob and
its top-k alternatives, with their text when the explorer has an ML node to detokenize with.

The chain stores token ids only; text needs the model's tokenizer, which lives in an ML node
(``--mlnode``). Without one, or when it fails, the page shows ids alone and says why.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from apinode.mlnode_client import MlNodeClient, MlNodeError
from chain.inference.artifact import ArtifactError, ArtifactStep, decode
from inferchain_pb.inference.v1.inference_pb2 import Inference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alternative:
    token_id: int
    text: str | None
    logprob: float
    chosen: bool

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True)
class TokenRow:
    position: int
    token_id: int
    text: str | None
    logprob: float
    alternatives: list[Alternative]


@dataclass(frozen=True)
class DecodedArtifact:
    """The rows, the artifact's k, and why text or rows are missing (empty when nothing is)."""

    k: int
    rows: list[TokenRow]
    text: str | None
    problem: str


async def decode_artifact(inference: Inference,
                          mlnode: MlNodeClient | None) -> DecodedArtifact:
    if inference.summarized_height:
        return DecodedArtifact(0, [], None, (
            f"state keeps only this inference's summary since height "
            f"{inference.summarized_height}, when its epoch was settled: the output and its "
            f"artifact are in its Finish transaction (full record sha256 "
            f"{inference.record_sha256.hex()})"))
    artifact, output_ids = inference.artifact, list(inference.output_ids)
    if not artifact:
        return DecodedArtifact(0, [], None, "no artifact on chain yet")
    try:
        k, steps = decode(artifact)
    except ArtifactError as exc:
        return DecodedArtifact(0, [], None, f"the artifact does not decode: {exc}")
    pieces, problem = await _pieces(steps, output_ids, mlnode)
    rows = [TokenRow(i, s.token_id, pieces.get(s.token_id), s.logprob,
                     [Alternative(t, pieces.get(t), lp, t == s.token_id)
                      for t, lp in zip(s.top_ids, s.top_logprobs, strict=True)])
            for i, s in enumerate(steps)]
    text = "".join(pieces[i] for i in output_ids) if pieces else None
    return DecodedArtifact(k, rows, text, problem)


async def _pieces(steps: list[ArtifactStep], output_ids: list[int],
                  mlnode: MlNodeClient | None) -> tuple[dict[int, str], str]:
    """Each token id's own text, from the ML node; empty with the reason when there is none."""
    if mlnode is None:
        return {}, "token text needs an ML node (start the explorer with --mlnode)"
    ids = sorted({*output_ids, *(s.token_id for s in steps),
                  *(t for s in steps for t in s.top_ids)})
    try:
        return dict(zip(ids, await mlnode.detokenize(ids), strict=True)), ""
    except (MlNodeError, ValueError) as exc:
        log.warning("ML node could not detokenize: %s", exc)
        return {}, f"the ML node could not detokenize: {exc}"
