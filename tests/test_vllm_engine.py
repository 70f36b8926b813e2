"""The vllm engine on a GPU: seeded sampling replays, score agrees with generate, greedy is argmax.

Skipped without vLLM or without CUDA. The score-with-rule test is the one that shows the
logits processor really ran: every sampled token must sit where ``mlnode.sampling`` puts it.
"""

import asyncio
from collections.abc import Iterator

import pytest
import torch

from mlnode import model_store
from mlnode.rule_check import obeys_rule
from mlnode.sampling import SamplingParams
from mlnode.types import Finished, TokenStep

pytest.importorskip("vllm")
from mlnode.vllm_engine import VllmEngine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="vLLM needs a CUDA GPU")

SAMPLED = SamplingParams(temperature=0.9, top_p=0.95, top_k=40, max_tokens=24, seed=1234)
GREEDY = SamplingParams(temperature=0.0, max_tokens=24)
TOP_K = 5


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[VllmEngine, asyncio.AbstractEventLoop]]:
    # AsyncLLM binds its output handler to the loop of its first request: one loop per module.
    loop = asyncio.new_event_loop()
    files = model_store.prepare(model_store.default_gguf())
    vllm = VllmEngine.from_files(files, model_id=model_store.DEFAULT_MODEL_ID, max_batch=4)
    yield vllm, loop
    vllm.close()
    loop.close()


def prompt(vllm: VllmEngine) -> list[int]:
    text = vllm.tokenizer.render_chat([("user", "Write two sentences about the sea.")])
    return vllm.tokenizer.tokenize(text)


def generate(engine, params: SamplingParams) -> list[TokenStep]:
    vllm, loop = engine

    async def collect() -> list[TokenStep | Finished]:
        return [event async for event in vllm.generate(prompt(vllm), params, TOP_K)]

    events = loop.run_until_complete(collect())
    assert isinstance(events[-1], Finished)
    return events[:-1]


def test_same_seed_gives_same_tokens(engine):
    first = [step.token_id for step in generate(engine, SAMPLED)]
    assert first == [step.token_id for step in generate(engine, SAMPLED)]


@pytest.mark.parametrize("with_rule", [False, True])
def test_score_reproduces_generate(engine, with_rule):
    vllm, loop = engine
    steps = generate(engine, SAMPLED)
    output = [step.token_id for step in steps]
    scored = loop.run_until_complete(
        vllm.score(prompt(vllm), output, TOP_K, SAMPLED if with_rule else None))
    assert [position.step.token_id for position in scored] == output
    for step, position in zip(steps, scored, strict=True):
        assert position.step.logprob == pytest.approx(step.logprob, abs=1e-3)
        assert position.step.top_logprobs == pytest.approx(step.top_logprobs, abs=1e-3)
        assert set(position.step.top_ids) == set(step.top_ids)
        if with_rule:
            assert obeys_rule(position.rule, greedy=False)
        else:
            assert position.rule is None


def test_temperature_zero_is_argmax(engine):
    vllm, loop = engine
    steps = generate(engine, GREEDY)
    assert all(step.token_id == step.top_ids[0] for step in steps)
    scored = loop.run_until_complete(
        vllm.score(prompt(vllm), [step.token_id for step in steps], TOP_K, GREEDY))
    assert all(obeys_rule(position.rule, greedy=True) for position in scored)


TRANSFORMED = SamplingParams(temperature=0.9, top_p=0.95, max_tokens=24, seed=99,
                             presence_penalty=1.0, frequency_penalty=0.8,
                             logit_bias=((13, 3.0), (21285, -100.0)))


def test_the_logit_transform_runs_inside_vllm_as_the_validator_replays_it(engine):
    """Penalties need the output so far, which the logits processor keeps itself: every token
    must obey the rule Score replays from the output ids."""
    vllm, loop = engine
    output = [step.token_id for step in generate(engine, TRANSFORMED)]
    assert 21285 not in output
    scored = loop.run_until_complete(vllm.score(prompt(vllm), output, TOP_K, TRANSFORMED))
    assert all(obeys_rule(position.rule, greedy=False) for position in scored)
    forced = SamplingParams(temperature=0.0, max_tokens=6, logit_bias=((21285, 100.0),))
    assert [step.token_id for step in generate(engine, forced)] == [21285] * 6
