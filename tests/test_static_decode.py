"""The static decode path (mlnode/static_decode.py, mlnode/batch_rule.py) gives the tokens the
reference path gives: the batched rule against ``sampling.draw`` on hand-made logits, and the
whole engine against the eager engine on the real default model."""

import asyncio

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mlnode import fused_decode
from mlnode.batch_rule import RuleRows, count, pick, truncates
from mlnode.fused_decode import FusedLlamaDecode
from mlnode.model_store import DEFAULT_MODEL_ID, default_gguf, prepare
from mlnode.rule_check import obeys_rule
from mlnode.sampling import SamplingParams, draw, uniform
from mlnode.static_decode import FIRST_CAPACITY, SlotCache
from mlnode.torch_engine import TorchEngine
from mlnode.types import Finished, TokenStep

VOCAB = 1000
JSON_SCHEMA = ('{"type": "object", "properties": {"name": {"type": "string"}}, '
               '"required": ["name"]}')

# One request per branch of the rule.
VARIANTS = (
    SamplingParams(seed=1),
    SamplingParams(temperature=0.0),
    SamplingParams(seed=2, temperature=0.7),
    SamplingParams(seed=3, temperature=1.5, top_k=10),
    SamplingParams(seed=4, top_p=0.8),
    SamplingParams(seed=5, temperature=0.9, top_k=50, top_p=0.9),
    SamplingParams(seed=6, presence_penalty=1.5, frequency_penalty=0.8),
    SamplingParams(seed=7, logit_bias=((3, 8.0), (17, -100.0), (999, 2.5))),
    SamplingParams(temperature=0.0, presence_penalty=-2.0, logit_bias=((5, 1.0),)),
)


def test_the_batched_rule_draws_what_the_reference_rule_draws():
    """Every row of one batch, over 40 positions with its own output so far and a changing
    mask of allowed tokens, gets the token, logprob and top-k ``draw`` gives for that row."""
    generator = torch.Generator().manual_seed(0)
    rows = RuleRows.empty(len(VARIANTS), VOCAB, torch.device("cpu"))
    for slot, params in enumerate(VARIANTS):
        rows.set(slot, params)
    outputs: list[list[int]] = [[] for _ in VARIANTS]
    for position in range(40):
        logits = torch.randn(len(VARIANTS), VOCAB, generator=generator) * 3
        allowed = torch.rand(len(VARIANTS), VOCAB, generator=generator) > 0.3
        rows.allowed.copy_(allowed)
        rows.u.copy_(torch.tensor([uniform(p.seed, position) for p in VARIANTS],
                                  dtype=torch.float64))
        token, chosen, top_ids, top_values = pick(logits, rows, 0, 5)
        count(rows, 0, token)
        for slot, params in enumerate(VARIANTS):
            expected = draw(logits[slot], params, position, outputs[slot], allowed[slot])
            assert int(token[slot]) == expected, (slot, position)
            logprobs = torch.log_softmax(logits[slot], dim=-1)
            assert float(chosen[slot]) == float(logprobs[expected])
            assert top_values[slot].tolist() == torch.topk(logprobs, 5).values.tolist()
            outputs[slot].append(expected)
    assert rows.counts.sum(dim=1).tolist() == [40.0] * len(VARIANTS)


def test_a_batch_without_top_k_or_top_p_draws_the_same_without_sorting():
    """Rows that truncate nothing (greedy, temperatures, penalties, biases) get bit-identical
    tokens, logprobs and top-k from the draw that skips the sort as from the full draw."""
    plain = [p for p in VARIANTS if not truncates(p, VOCAB)]
    assert len(plain) < len(VARIANTS) and any(truncates(p, VOCAB) for p in VARIANTS)
    generator = torch.Generator().manual_seed(1)
    rows = RuleRows.empty(len(plain), VOCAB, torch.device("cpu"))
    for slot, params in enumerate(plain):
        rows.set(slot, params)
    for position in range(20):
        logits = torch.randn(len(plain), VOCAB, generator=generator) * 3
        rows.u.copy_(torch.tensor([uniform(p.seed, position) for p in plain],
                                  dtype=torch.float64))
        full = pick(logits, rows, 0, 5, truncate=True)
        fast = pick(logits, rows, 0, 5, truncate=False)
        for a, b in zip(full, fast, strict=True):
            assert torch.equal(a, b), position
        count(rows, 0, full[0])


@pytest.fixture(scope="module")
def engines():
    files = prepare(default_gguf())
    built = {decode: TorchEngine.from_files(files, model_id=DEFAULT_MODEL_ID, max_batch=3,
                                            decode=decode)
             for decode in ("eager", "static")}
    built["lookahead"] = TorchEngine.from_files(files, model_id=DEFAULT_MODEL_ID, max_batch=3,
                                                decode="static", lookahead=True)
    yield built
    for engine in built.values():
        engine.close()


async def steps(engine: TorchEngine, prompt_ids: list[int], params: SamplingParams
                ) -> list[TokenStep]:
    out = []
    async for event in engine.generate(prompt_ids, params, 5):
        if not isinstance(event, Finished):
            out.append(event)
    return out


def run_all(engine: TorchEngine, requests: list[tuple[list[int], SamplingParams]]
            ) -> list[list[TokenStep]]:
    async def together() -> list[list[TokenStep]]:
        return await asyncio.gather(*(steps(engine, ids, p) for ids, p in requests))
    return asyncio.run(together())


def obeyed(engine: TorchEngine, prompt_ids: list[int], output: list[int],
           params: SamplingParams) -> list[bool]:
    """For each output position, whether a validator's Score finds the token the rule's."""
    scored = asyncio.run(engine.score(prompt_ids, output, 0, params))
    return [obeys_rule(p.rule, params.greedy) for p in scored]


def agree(engines: dict[str, TorchEngine], requests: list[tuple[list[int], SamplingParams]],
          path: str = "static") -> int:
    """Runs the requests through the eager engine and ``path``'s; returns how many streams
    are identical.

    Identical means the same tokens and texts, logprobs and top-k within 1e-4. The two paths
    compute the logits with different attention kernels, so a stream may part where u_i
    falls within that rounding of a CDF boundary (or two logits tie to rounding, greedy):
    there both tokens must pass a validator's check, and the static stream must pass it
    everywhere.
    """
    eager, static = run_all(engines["eager"], requests), run_all(engines[path], requests)
    same = 0
    for (prompt_ids, params), a, b in zip(requests, eager, static, strict=True):
        ids_a, ids_b = [s.token_id for s in a], [s.token_id for s in b]
        assert len(ids_b) <= params.max_tokens
        if ids_a == ids_b:
            same += 1
        part = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False))
                     if x != y),
                    min(len(ids_a), len(ids_b)))
        for x, y in zip(a[:part], b[:part], strict=True):
            assert x.text == y.text
            assert x.logprob == pytest.approx(y.logprob, abs=1e-4)
            assert x.top_logprobs == pytest.approx(y.top_logprobs, abs=1e-4)
        assert all(obeyed(engines["eager"], prompt_ids, ids_b, params))
        if part < min(len(ids_a), len(ids_b)):
            assert obeyed(engines["eager"], prompt_ids, ids_a[:part + 1], params)[part]
    return same


def rule_requests(engine: TorchEngine, lengths: tuple[int, int, int]
                  ) -> list[tuple[list[int], SamplingParams]]:
    """Ten requests, one per branch of the rule plus a JSON-schema grammar, over three
    prompts and ``lengths`` max_tokens in turn."""
    tokenizer = engine.tokenizer
    prompts = ["Tell me about the moon.", "Name three colours.", "Say hello in French."]
    params = [*VARIANTS, SamplingParams(seed=8, grammar_kind="json_schema", grammar=JSON_SCHEMA)]
    return [(tokenizer.tokenize(tokenizer.render_chat([("user", prompts[i % 3])])),
             SamplingParams(**{**vars(p), "max_tokens": lengths[i % 3]}))
            for i, p in enumerate(params)]


def test_static_decode_streams_what_eager_decode_streams(engines):
    """Ten requests through three slots: requests wait, join running ones, and leave while
    others run on, so slots are refilled and compacted; the streams are the eager engine's,
    up to rounding."""
    requests = rule_requests(engines["eager"], (6, 8, 10))
    assert agree(engines, requests) >= len(requests) - 2


def test_steps_launched_ahead_stream_what_eager_decode_streams(engines):
    """The same kind of requests with each step launched before the previous one's tokens
    are handed out (CUDA's way, run here on the CPU): rows that finish have their extra step
    thrown away, rows admitted meanwhile wait a step, the grammar request is stepped one at a
    time, and every stream is still the eager engine's, up to rounding, and no longer."""
    requests = rule_requests(engines["eager"], (5, 8, 11))
    assert agree(engines, requests, "lookahead") >= len(requests) - 2


def test_a_row_that_outgrows_the_static_cache_keeps_its_tokens(engines):
    """A prompt just short of the first capacity grows the cache during decode, next to a
    short request; both streams stay the eager engine's, up to rounding."""
    tokenizer = engines["eager"].tokenizer
    long_ids = tokenizer.tokenize(" ".join(["The tide comes in and goes out."] * 80))
    long_ids = long_ids[:FIRST_CAPACITY - 3]
    short_ids = tokenizer.tokenize(tokenizer.render_chat([("user", "Count to five.")]))
    requests = [(long_ids, SamplingParams(seed=9, max_tokens=8)),
                (short_ids, SamplingParams(seed=10, max_tokens=8))]
    assert len(long_ids) + requests[0][1].max_tokens > FIRST_CAPACITY
    assert agree(engines, requests) >= 1


def test_the_fused_llama_step_computes_what_transformers_computes():
    """The fused step (CUDA's static path) against transformers' forward pass over the same
    slot cache, in float32 on the CPU: the same logits to rounding, the same keys and values
    written; stacking the projections leaves transformers' own logits bit-identical."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                         rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                                          "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 64})
    model = LlamaForCausalLM(config).eval()
    assert fused_decode.supports(model)
    kv = torch.randn(2, 2, 4, 2, 16, 8)
    positions = torch.tensor([3, 7, 5, 0])
    tokens = torch.tensor([[5], [9], [11]])
    rows = tokens.shape[0]
    visible = (torch.arange(16)[None, :] <= positions[:rows, None])[:, None, None, :]

    def step(fused: FusedLlamaDecode | None) -> tuple[torch.Tensor, torch.Tensor]:
        cache = SlotCache(kv.clone(), positions)
        cache.batch, cache.columns = rows, 16
        with torch.inference_mode():
            if fused is not None:
                return fused.logits(tokens, positions[:rows, None], visible, cache), cache.kv
            out = model(input_ids=tokens, attention_mask=visible,
                        position_ids=positions[:rows, None], past_key_values=cache,
                        use_cache=True, logits_to_keep=1)
            return out.logits[:, -1], cache.kv

    logits, written = step(None)
    fused = FusedLlamaDecode(model)
    assert torch.equal(step(None)[0], logits)
    fused_logits, fused_written = step(fused)
    assert not torch.equal(written, kv)
    assert torch.allclose(fused_written, written, atol=1e-5)
    assert torch.allclose(fused_logits, logits, atol=1e-5)
