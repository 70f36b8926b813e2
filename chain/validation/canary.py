"""Canary inferences (docs/design.md §6.9): known-bad twins of real outputs the chain plants.

When a finished inference wins the canary lottery (from the block hash and its id), the chain
records a twin: same model, prompt, sampling and executor, a fresh id of the same shape, and
an output with half its tokens replaced by prompt tokens outside that position's top-k, the
artifact keeping the replaced tokens' old logprobs. An honest validator's re-score fails it on
the sampling rule and on distance; a validator that reports it as passing did not compute,
and forfeits the epoch's rewards. Canaries move no coins and never count against the
executor.

What a canary cannot hide: it has no MsgFinishInference in the chain's transaction history
and no executor signature, so a validator that cross-checks the history can tell it apart.
Canaries therefore catch validators that pass without computing, not ones that study the
chain to find out which checks are safe to skip (see docs/verification.md).
"""

import hashlib

from chain.inference import artifact, payload
from chain.inference.artifact import ArtifactStep
from chain.scales import PPM
from inferchain_pb.inference.v1.inference_pb2 import Inference

TAG = b"inferchain/canary/v1"
TICKETS = 1 << 64


def wins(block_hash: bytes, inference_id: str, rate_ppm: int) -> bool:
    draw = int.from_bytes(hashlib.sha256(TAG + block_hash + inference_id.encode()).digest()[:8],
                          "big")
    return draw < TICKETS * rate_ppm // PPM


def twin_id(source_id: str, digest: bytes) -> str:
    """An id shaped like the source's: the same prefix up to its last '-', new hex after it."""
    cut = source_id.rfind("-") + 1
    tail = len(source_id) - cut
    return source_id[:cut] + digest.hex()[:tail if 0 < tail <= 64 else 32]


def forge(source: Inference, block_hash: bytes, min_edits: int) -> Inference | None:
    """The known-bad twin of ``source``, or None when its output cannot be edited.

    Half the output (at least ``min_edits`` tokens, at most all of it) is replaced, so that
    the twin fails on distance as well as on the rule at any length: the calibrated rule
    tolerance lets a lone replaced token pass now and then.
    """
    digest = hashlib.sha256(TAG + b"/twin" + block_hash + source.id.encode()).digest()
    k, steps = artifact.decode(source.artifact)
    wanted = min(len(steps), max(min_edits, -(-len(steps) // 2)))
    order = sorted(range(len(steps)),
                   key=lambda i: hashlib.sha256(digest + i.to_bytes(4, "big")).digest())
    changed = 0
    for i in order[:wanted]:
        step = steps[i]
        options = sorted({t for t in source.prompt_ids
                          if t != step.token_id and t not in step.top_ids})
        if not options:
            continue
        pick = int.from_bytes(hashlib.sha256(digest + b"/token" + i.to_bytes(4, "big"))
                              .digest()[:8], "big")
        steps[i] = ArtifactStep(options[pick % len(options)], step.logprob, step.top_ids,
                                step.top_logprobs)
        changed += 1
    if changed == 0:
        return None
    twin = Inference()
    twin.CopyFrom(source)
    twin.id = twin_id(source.id, hashlib.sha256(digest).digest())
    del twin.output_ids[:]
    twin.output_ids.extend(s.token_id for s in steps)
    twin.artifact = artifact.encode(steps, k)
    twin.output_hash = payload.ids_hash(twin.output_ids)
    twin.executor_signature = b""
    return twin
