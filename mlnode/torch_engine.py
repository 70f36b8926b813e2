"""The default engine: Hugging Face transformers on CPU or CUDA, continuously batched."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from mlnode import limits
from mlnode.chat_tokenizer import ChatTokenizer
from mlnode.detokenizer import StreamText
from mlnode.engine import Load
from mlnode.generation import Event, Generation, id_set, top_logprobs
from mlnode.grammar import Grammars
from mlnode.model_store import ModelFiles
from mlnode.rule_check import RuleCheck
from mlnode.sampling import SamplingParams, locate, uniform
from mlnode.scheduler import EagerBatch, Job, Scheduler
from mlnode.static_decode import StaticBatch
from mlnode.torch_runner import TorchRunner
from mlnode.types import EngineInfo, Finished, ScoredPosition, TokenStep

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MAX_TOP_LOGPROBS = 20
DECODES = ("auto", "static", "eager")


class TorchEngine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: ChatTokenizer,
        *,
        model_id: str,
        weights_sha256: str,
        max_batch: int = 16,
        on_step: Callable[[int], None] | None = None,
        decode: str = "auto",
        lookahead: bool | None = None,
    ) -> None:
        """``decode``: ``static`` (``mlnode.static_decode``), ``eager`` (the reference
        path), or ``auto``: static on CUDA, eager elsewhere. ``lookahead``: whether static
        decode launches each step before the previous one's tokens are handed out (default:
        on CUDA); on the CPU it only shows that the bookkeeping gives the same streams."""
        self._model = model.eval()
        self.tokenizer = tokenizer
        config = model.config
        self._eos_ids = id_set(config.eos_token_id) | id_set(
            getattr(model.generation_config, "eos_token_id", None))
        self.info = EngineInfo(
            model_id=model_id,
            weights_sha256=weights_sha256,
            dtype=str(model.dtype).removeprefix("torch."),
            device=str(next(model.parameters()).device),
            engine="torch",
            context_length=config.max_position_embeddings,
            vocab_size=config.vocab_size,
            max_top_logprobs=MAX_TOP_LOGPROBS,
            eos_token_id=min(self._eos_ids) if self._eos_ids else 0,
        )
        self.grammars = Grammars(tokenizer.hf, config.vocab_size, self._eos_ids)
        if decode not in DECODES:
            raise ValueError(f"decode {decode!r} is not one of {', '.join(DECODES)}")
        runner = TorchRunner(model)
        if decode == "auto":
            decode = "static" if runner.device.type == "cuda" else "eager"
        batch = (StaticBatch(runner, max_batch, MAX_TOP_LOGPROBS, lookahead=lookahead)
                 if decode == "static" else EagerBatch(runner))
        self._scheduler = Scheduler(runner, batch, max_batch, on_step)
        log.info("torch engine ready: %s on %s (%s), batch up to %d, %s decode", model_id,
                 self.info.device, self.info.dtype, max_batch, decode)

    @classmethod
    def from_files(cls, files: ModelFiles, *, model_id: str, dtype: str = "float32",
             device: str = "cpu", max_batch: int = 16,
             on_step: Callable[[int], None] | None = None,
             decode: str = "auto", lookahead: bool | None = None) -> "TorchEngine":
        """``on_step`` hears each decode step's batch size."""
        model = AutoModelForCausalLM.from_pretrained(files.path, dtype=DTYPES[dtype]).to(device)
        return cls(model, ChatTokenizer.from_folder(files.path), model_id=model_id,
                   weights_sha256=files.weights_sha256, max_batch=max_batch, on_step=on_step,
                   decode=decode, lookahead=lookahead)

    async def generate(
        self, prompt_ids: Sequence[int], sampling: SamplingParams, top_logprobs: int
    ) -> AsyncIterator[TokenStep | Finished]:
        limits.check_generate(prompt_ids, sampling, top_logprobs, self.info)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def sink(event: Event) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        generation = Generation(list(prompt_ids), sampling, top_logprobs, self._eos_ids,
                                StreamText(self.tokenizer.decode, sampling.stop), sink,
                                self.grammars.start(sampling))
        self._scheduler.submit(generation)
        try:
            while True:
                event = await events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            generation.cancelled.set()

    async def score(
        self,
        prompt_ids: Sequence[int],
        output_ids: Sequence[int],
        top_logprobs: int,
        sampling: SamplingParams | None,
    ) -> list[ScoredPosition]:
        limits.check_score(prompt_ids, output_ids, top_logprobs, sampling, self.info)
        grammars = self.grammars if sampling is not None else None
        if grammars is not None:
            grammars.start(sampling)  # refuses a grammar that cannot be built, before the queue
        loop = asyncio.get_running_loop()
        result: asyncio.Future[list[ScoredPosition]] = loop.create_future()

        def resolve(value: object, error: BaseException | None) -> None:
            def deliver() -> None:
                if not result.done():
                    result.set_exception(error) if error else result.set_result(value)
            loop.call_soon_threadsafe(deliver)

        def run(runner: TorchRunner) -> list[ScoredPosition]:
            logits = runner.score_logits(prompt_ids, output_ids)
            return score_positions(logits, output_ids, top_logprobs, sampling,
                                   self.info.eos_token_id, grammars)

        self._scheduler.submit_job(Job(run, resolve))
        return await result

    def load(self) -> Load:
        return self._scheduler.load()

    def close(self) -> None:
        self._scheduler.close()


def score_positions(
    logits: torch.Tensor, output_ids: Sequence[int], k: int, sampling: SamplingParams | None,
    eos_id: int, grammars: Grammars | None = None,
) -> list[ScoredPosition]:
    """Per-position logprob, top-k and, when sampling is given, the rule's facts for the
    token and for ``eos_id``, under the request's grammar mask as the executor applied it.

    From the first token the grammar forbids on, the output has left the grammar and no mask
    exists any more: every such position is reported as a broken rule (empty interval, gap
    -inf), since no output that obeyed the grammar holds it.
    """
    grammar = grammars.start(sampling) if grammars is not None and sampling else None
    off_grammar = False
    logprobs = torch.log_softmax(logits, dim=-1)
    token = torch.tensor(list(output_ids), device=logits.device)
    chosen = logprobs.gather(1, token.unsqueeze(1)).squeeze(1).tolist()
    positions = []
    for i, tok in enumerate(output_ids):
        ids, values = top_logprobs(logprobs[i], k)
        if sampling is None:
            positions.append(ScoredPosition(TokenStep(tok, chosen[i], ids, values), None))
            continue
        step = TokenStep(tok, chosen[i], ids, values)
        if off_grammar:
            broken = RuleCheck(0.0, 0.0, uniform(sampling.seed, i), float("-inf"))
            positions.append(ScoredPosition(step, broken, broken))
            continue
        allowed = grammar.allowed() if grammar else None
        previous = output_ids[:i]
        positions.append(ScoredPosition(
            step, locate(logits[i], sampling, i, tok, previous, allowed),
            locate(logits[i], sampling, i, eos_id, previous, allowed)))
        off_grammar = grammar is not None and not grammar.accept(tok)
    return positions

