"""Cheating ML nodes, for end-to-end tests and the detection calibration only.

A validator must catch an executor that serves something cheaper than the registered model
while claiming it is that model. These engines are such executors: each reports the honest
model id and the sha256 of the honest weights (that is the cheat) but computes its outputs
differently. They exist so that tests and ``bench/detection`` can measure what the validator's
figures (docs/design.md §6.3) see for each kind of cheat; ``python -m mlnode serve --cheat ...``
starts one. Never run them for real work.

- ``int8``: every linear layer of the decoder is fake-quantized to int8 weights (symmetric,
  per output channel) and back: a cheaper-to-serve model close to the real one.
- ``skip-layers``: every other decoder layer is dropped: about half the compute, much worse.
- ``forge-prefill``: the tokens come from the skip-layers model, and the logprobs and top-k
  reported for them from one teacher-forced pass of the real model, so the logprob distance
  looks honest although the tokens were never sampled from the real model's distribution.
- ``forge-prefill-int8``: the same with the int8 model's tokens: the subtle forgery, whose
  tokens differ from the real model's at a few positions only.
- ``skip-eos``: the real model with its EOS logits masked, so where the seeded rule picks EOS
  the output goes on to ``max_tokens`` (and the developer is billed for all of it), with the
  real model's logprobs reported as in ``forge-prefill``: one broken rule position, which
  the violation allowance alone would forgive.
- ``ignore-grammar``: the real model sampled by the seeded rule without the request's
  grammar mask (docs/design.md §4): a JSON or tool-call request answered in free text.
- ``ignore-transforms``: the real model and the real rule, but the request's presence and
  frequency penalties and logit biases are dropped: cheaper to batch, and the output the
  developer asked to steer is not steered.
"""

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from mlnode.chat_tokenizer import ChatTokenizer
from mlnode.engine import Engine, Load
from mlnode.generation import id_set
from mlnode.model_store import ModelFiles
from mlnode.sampling import SamplingParams
from mlnode.torch_engine import DTYPES, TorchEngine
from mlnode.types import Finished, ScoredPosition, TokenStep

log = logging.getLogger(__name__)

CHEATS = ("int8", "skip-layers", "forge-prefill", "forge-prefill-int8", "skip-eos",
          "ignore-grammar", "ignore-transforms")


@torch.no_grad()
def fake_int8(model: PreTrainedModel) -> PreTrainedModel:
    """Rounds every ``nn.Linear`` weight of the decoder to int8 and back, in place.

    Symmetric per-output-channel: ``scale = max|w_row| / 127`` and ``w = round(w / scale)
    .clamp(-127, 127) * scale``. Computed in float32 and stored back in the model's dtype, so
    it works the same on CPU and CUDA. The LM head is left alone: in SmolLM2 it is tied to
    the embeddings, which are not a linear layer of the decoder.
    """
    for module in model.model.modules():
        if isinstance(module, nn.Linear):
            weight = module.weight.float()
            scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
            quantized = torch.round(weight / scale).clamp(-127, 127) * scale
            module.weight.copy_(quantized.to(module.weight.dtype))
    return model


def skip_layers(model: PreTrainedModel, keep_every: int = 2) -> PreTrainedModel:
    """Keeps decoder layers 0, keep_every, 2·keep_every, ... and drops the rest, in place.

    Each kept attention module gets its new index and the config its new layer count, because
    the KV cache is indexed by ``layer_idx``: stale indices would read and write other layers'
    cache slots.
    """
    layers = model.model.layers
    kept = list(range(0, len(layers), keep_every))
    model.model.layers = nn.ModuleList(layers[i] for i in kept)
    for index, layer in enumerate(model.model.layers):
        layer.self_attn.layer_idx = index
    config = model.config
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        config.layer_types = [layer_types[i] for i in kept]
    config.num_hidden_layers = len(kept)
    return model


def mask_eos(model: PreTrainedModel) -> PreTrainedModel:
    """Makes the LM head's EOS logits -inf, in place: the model never ends an output."""
    eos = sorted(id_set(model.config.eos_token_id)
                 | id_set(getattr(model.generation_config, "eos_token_id", None)))

    def never_eos(module: nn.Module, inputs: object, logits: torch.Tensor) -> torch.Tensor:
        logits[..., eos] = float("-inf")
        return logits

    model.lm_head.register_forward_hook(never_eos)
    return model


class ForgedEngine:
    """Generates with a cheap engine, then reports the real model's logprobs for its tokens.

    ``generate`` runs the cheap engine to the end, scores the output with the real engine in
    one prefill, and streams the cheap run's tokens and text with the real logprobs and
    top-k. Everything else (score, info, tokenizer) is the real engine's: a cheater still
    validates others honestly, and its Info shows the real model.
    """

    def __init__(self, cheap: TorchEngine, real: TorchEngine) -> None:
        self._cheap = cheap
        self._real = real
        self.info = real.info
        self.tokenizer = real.tokenizer

    async def generate(
        self, prompt_ids: Sequence[int], sampling: SamplingParams, top_logprobs: int
    ) -> AsyncIterator[TokenStep | Finished]:
        steps: list[TokenStep] = []
        finished = Finished("length", len(prompt_ids))
        async for event in self._cheap.generate(prompt_ids, sampling, top_logprobs):
            if isinstance(event, TokenStep):
                steps.append(event)
            else:
                finished = event
        scored = await self._real.score(prompt_ids, [s.token_id for s in steps], top_logprobs,
                                        None)
        for step, position in zip(steps, scored, strict=True):
            yield TokenStep(step.token_id, position.step.logprob, position.step.top_ids,
                            position.step.top_logprobs, step.text)
        yield finished

    async def score(
        self,
        prompt_ids: Sequence[int],
        output_ids: Sequence[int],
        top_logprobs: int,
        sampling: SamplingParams | None,
    ) -> list[ScoredPosition]:
        return await self._real.score(prompt_ids, output_ids, top_logprobs, sampling)

    def load(self) -> Load:
        cheap, real = self._cheap.load(), self._real.load()
        return Load(queued=cheap.queued + real.queued, running=cheap.running + real.running)

    def close(self) -> None:
        self._cheap.close()
        self._real.close()


class GrammarBlindEngine(TorchEngine):
    """Generates as if no request carried a grammar; scores honestly."""

    def generate(
        self, prompt_ids: Sequence[int], sampling: SamplingParams, top_logprobs: int
    ) -> AsyncIterator[TokenStep | Finished]:
        free = dataclasses.replace(sampling, grammar_kind="", grammar="")
        return super().generate(prompt_ids, free, top_logprobs)


class TransformIgnoringEngine(TorchEngine):
    """Generates as if the request had asked for no logit transform; scores (validates
    others) with the whole rule."""

    def generate(
        self, prompt_ids: Sequence[int], sampling: SamplingParams, top_logprobs: int
    ) -> AsyncIterator[TokenStep | Finished]:
        plain = dataclasses.replace(sampling, presence_penalty=0.0, frequency_penalty=0.0,
                                    logit_bias=())
        return super().generate(prompt_ids, plain, top_logprobs)


def load_model(files: ModelFiles, dtype: str, device: str) -> PreTrainedModel:
    """The honest model, as ``TorchEngine.from_files`` loads it."""
    return AutoModelForCausalLM.from_pretrained(files.path, dtype=DTYPES[dtype]).to(device)


def cheating_engine(cheat: str, files: ModelFiles, *, model_id: str, dtype: str = "float32",
                    device: str = "cpu", max_batch: int = 16,
                    on_step: Callable[[int], None] | None = None) -> Engine:
    """An engine that cheats as ``cheat`` says while claiming ``model_id`` and its weights."""
    if cheat not in CHEATS:
        raise ValueError(f"unknown cheat {cheat!r}, expected one of {', '.join(CHEATS)}")
    log.warning("CHEATING ML node (%s): for tests and calibration only", cheat)
    tokenizer = ChatTokenizer.from_folder(files.path)

    def engine(model: PreTrainedModel) -> TorchEngine:
        return TorchEngine(model, tokenizer, model_id=model_id,
                           weights_sha256=files.weights_sha256, max_batch=max_batch,
                           on_step=on_step)

    if cheat == "int8":
        return engine(fake_int8(load_model(files, dtype, device)))
    blind = {"ignore-grammar": GrammarBlindEngine, "ignore-transforms": TransformIgnoringEngine}
    if cheat in blind:
        return blind[cheat](load_model(files, dtype, device), tokenizer, model_id=model_id,
                            weights_sha256=files.weights_sha256, max_batch=max_batch,
                            on_step=on_step)
    real = load_model(files, dtype, device)
    if cheat == "forge-prefill-int8":
        return ForgedEngine(engine(fake_int8(load_model(files, dtype, device))), engine(real))
    if cheat == "skip-eos":
        return ForgedEngine(engine(mask_eos(load_model(files, dtype, device))), engine(real))
    cheap = engine(skip_layers(real))
    if cheat == "skip-layers":
        return cheap
    return ForgedEngine(cheap, engine(load_model(files, dtype, device)))
