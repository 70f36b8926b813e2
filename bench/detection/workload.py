"""Inferences to calibrate on: prompts, sampling cases and the records an executor leaves.

Kept free of the API node and the chain's stores (it needs only torch, transformers, the ML
node and the artifact codec), so the GPU host, which has nothing else installed, can run it
through ``bench.detection.gpu_dump``.
"""

import asyncio
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from chain.inference import artifact
from chain.inference.artifact import ArtifactStep
from chain.inference.params import InferenceParams
from mlnode.engine import Engine
from mlnode.sampling_params import SamplingParams
from mlnode.types import Finished, TokenStep

EXECUTOR_TOP_K = InferenceParams().top_k  # what an executor records in its artifact
TEMPERATURES = (0.0, 0.7, 1.0)

# Varied chat prompts: facts, code, lists, stories, other languages, arithmetic, open-ended.
PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain photosynthesis to a ten-year-old.",
    "List five prime numbers greater than 100.",
    "Write a Python function that reverses a string.",
    "Tell me a short story about a robot who learns to paint.",
    "What are the main causes of inflation?",
    "Translate 'good morning, how are you?' into Spanish.",
    "Give me three tips for sleeping better.",
    "What is 17 times 23?",
    "Describe the water cycle in two sentences.",
    "Why is the sky blue?",
    "Write a limerick about a cat who loves cheese.",
    "Summarize the plot of Romeo and Juliet.",
    "How do I make a cup of green tea?",
    "What is the difference between a list and a tuple in Python?",
    "Name the planets of the solar system in order.",
    "Écris une phrase sur le printemps.",
    "What should I pack for a weekend hiking trip?",
    "Explain what a blockchain is in simple terms.",
    "Write a SQL query that counts users by country.",
    "Who was Ada Lovelace?",
    "Give me a recipe idea using eggs, spinach and cheese.",
    "What are the benefits of learning a second language?",
)


@dataclass(frozen=True)
class Case:
    """One inference to run: a prompt and the sampling an executor is asked to use."""

    prompt: str
    sampling: SamplingParams


@dataclass
class Record:
    """What a validator gets: the request as recorded on chain, the output and the artifact.

    ``steps`` went through the artifact codec (k = 5, logprobs quantized to 1/1024 nat), so
    they are exactly what the chain stores; ``sampling`` is the recorded sampling, which a
    cheat may have made differ from the one actually used.
    """

    scenario: str
    length: int  # the max_tokens bucket this record belongs to
    prompt_ids: list[int]
    output_ids: list[int]
    text: str
    steps: list[ArtifactStep]
    sampling: SamplingParams
    finish: str

    def to_json(self) -> dict:
        data = asdict(self)
        data["steps"] = [[s.token_id, s.logprob, list(s.top_ids), list(s.top_logprobs)]
                         for s in self.steps]
        data["sampling"]["stop"] = list(self.sampling.stop)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Record":
        sampling = dict(data["sampling"], stop=tuple(data["sampling"]["stop"]))
        steps = [ArtifactStep(t, lp, tuple(ids), tuple(lps)) for t, lp, ids, lps in data["steps"]]
        return cls(data["scenario"], data["length"], list(data["prompt_ids"]),
                   list(data["output_ids"]), data["text"], steps, SamplingParams(**sampling),
                   data["finish"])


def make_cases(count: int, max_tokens: int, salt: str,
               temperatures: Sequence[float] = TEMPERATURES) -> list[Case]:
    """``count`` cases cycling through ``temperatures``, with seeded prompts and seeds."""
    rng = random.Random(f"{salt}/{max_tokens}")
    return [Case(rng.choice(PROMPTS),
                 SamplingParams(temperature=temperatures[i % len(temperatures)],
                                max_tokens=max_tokens, seed=rng.getrandbits(62)))
            for i in range(count)]


def on_chain(steps: Sequence[ArtifactStep]) -> list[ArtifactStep]:
    """The steps as the chain holds them: encoded and decoded with k = 5."""
    return artifact.decode(artifact.encode(steps, EXECUTOR_TOP_K))[1]


def prompt_ids(engine: Engine, prompt: str) -> list[int]:
    return engine.tokenizer.tokenize(engine.tokenizer.render_chat([("user", prompt)]))


async def generate(engine: Engine, case: Case, scenario: str) -> Record:
    """Runs one case on ``engine`` and records it as an executor would."""
    ids = prompt_ids(engine, case.prompt)
    steps: list[TokenStep] = []
    finish = ""
    async for event in engine.generate(ids, case.sampling, EXECUTOR_TOP_K):
        if isinstance(event, Finished):
            finish = event.reason
        else:
            steps.append(event)
    recorded = on_chain([ArtifactStep(s.token_id, s.logprob, s.top_ids, s.top_logprobs)
                         for s in steps])
    return Record(scenario, case.sampling.max_tokens, ids, [s.token_id for s in steps],
                  "".join(s.text for s in steps), recorded, case.sampling, finish)


async def generate_all(engine: Engine, cases: Sequence[Case], scenario: str,
                       concurrency: int) -> list[Record]:
    """All cases with at most ``concurrency`` generations in flight (the engine batches them)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> Record:
        async with gate:
            return await generate(engine, case, scenario)

    records = await asyncio.gather(*(one(c) for c in cases))
    progress(f"{scenario}: {len(records)} generated (max_tokens {cases[0].sampling.max_tokens}"
             f", {concurrency} concurrent)" if cases else f"{scenario}: nothing to generate")
    return list(records)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
