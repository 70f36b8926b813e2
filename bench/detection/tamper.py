"""Cheats made from honest records: what a dishonest executor edits after an honest run.

Each function returns a new record that claims to be an honest inference. They model the
cheats that need no other model: recording different sampling than was used, editing a few
tokens, stopping early, and inventing the logprobs instead of computing them.
"""

import dataclasses
import math
import random

from bench.detection.workload import EXECUTOR_TOP_K, Record, on_chain
from chain.inference.artifact import ArtifactStep
from mlnode.engine import Engine


def recorded_as(record: Record, scenario: str, **changes: float | int) -> Record:
    """The same output with different recorded sampling (e.g. temperature or seed)."""
    return dataclasses.replace(record, scenario=scenario,
                               sampling=dataclasses.replace(record.sampling, **changes))


async def edit_tokens(record: Record, engine: Engine, rng: random.Random,
                      scenario: str = "token-edit") -> Record:
    """1 or 2 tokens replaced by one of that step's top alternatives, the artifact made
    consistent by re-scoring the edited output with the real model (so every recorded
    logprob is the model's own for the edited text: only the sampling rule can tell).

    A final EOS is left alone so the output still ends properly.
    """
    ids = list(record.output_ids)
    last = len(ids) - 1 if record.finish == "stop" else len(ids)
    editable = list(range(max(last, 1)))
    for position in rng.sample(editable, min(rng.choice((1, 2)), len(editable))):
        choices = [t for t in record.steps[position].top_ids if t != ids[position]]
        ids[position] = rng.choice(choices) if choices else rng.randrange(100, 10_000)
    scored = await engine.score(record.prompt_ids, ids, EXECUTOR_TOP_K, None)
    steps = on_chain([ArtifactStep(p.step.token_id, p.step.logprob, p.step.top_ids,
                                   p.step.top_logprobs) for p in scored])
    return dataclasses.replace(record, scenario=scenario, output_ids=ids, steps=steps,
                               text=engine.tokenizer.decode(ids))


def truncate(record: Record, rng: random.Random, scenario: str = "truncated") -> Record:
    """Cut before its end (no EOS, under max_tokens), claimed as a normal stop."""
    keep = rng.randrange(1, len(record.output_ids))
    return dataclasses.replace(record, scenario=scenario, output_ids=record.output_ids[:keep],
                               steps=record.steps[:keep], finish="stop")


def fabricate_logprobs(record: Record, rng: random.Random, vocab_size: int,
                       scenario: str = "fabricated-logprobs") -> Record:
    """Honest tokens, invented artifact: a uniform guess over the token and 4 random ids."""
    guess = math.log(1 / EXECUTOR_TOP_K)
    steps = []
    for token in record.output_ids:
        others = [t for t in rng.sample(range(vocab_size), EXECUTOR_TOP_K) if t != token]
        top = (token, *others[:EXECUTOR_TOP_K - 1])
        steps.append(ArtifactStep(token, guess, top, (guess,) * len(top)))
    return dataclasses.replace(record, scenario=scenario, steps=on_chain(steps))
