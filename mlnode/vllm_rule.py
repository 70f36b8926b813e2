"""The seeded sampling rule inside vLLM, as a Model Runner V2 custom logits processor.

vLLM samples in its own worker process, where no per-request callback of ours can run. This
processor computes ``mlnode.sampling.draw`` on each opted-in row's raw logits and masks every
other token to -inf; the engine asks vLLM for greedy decoding, so vLLM's argmax is exactly the
rule's token. Requests opt in through ``SamplingParams.extra_args[RULE_KEY]``; the processor is
loaded by name, so the worker imports only this module, not the engine. Rows are drawn one at a
time with the shared ``draw`` itself (a host sync per row): a batched copy of the rule would be
faster, and a second implementation for executor and validator to disagree about.

The rule's penalties count the output tokens before each position. The processor keeps each
slot's output itself: every token it draws is the only one it leaves unmasked, so it is the
token vLLM samples; a row recomputed at an earlier position (a preempted request) cuts the
history back to that position first.

Targets the MRV2 interface ``vllm.v1.worker.gpu.sample.logits_processor`` (vLLM 0.33; added by
vllm-project/vllm#56497). vLLM refuses a processor of the wrong interface at start-up, so a
version or runner mismatch fails loudly instead of sampling without the rule.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from transformers import AutoTokenizer
from vllm.config import VllmConfig
from vllm.sampling_params import SamplingParams as VllmParams
from vllm.v1.worker.gpu.sample.logits_processor import (
    LogitsContext,
    LogitsProcessor,
    LogitsProcRequestState,
)

from mlnode.grammar import Grammars, GrammarState
from mlnode.sampling import SamplingParams, draw

RULE_KEY = "inferchain_rule"


def rule_args(params: SamplingParams, prompt_len: int,
              stop_ids: Iterable[int]) -> dict[str, object]:
    """What the processor needs of a request, as plain values ``extra_args`` can carry."""
    return {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
            "seed": params.seed, "prompt_len": prompt_len, "grammar_kind": params.grammar_kind,
            "grammar": params.grammar, "stop_ids": sorted(stop_ids),
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
            "logit_bias": [[token, bias] for token, bias in params.logit_bias]}


@dataclass
class _Row:
    """A slot's rule, its prompt length, the output drawn so far (the penalties count it) and,
    with a grammar, where the output stands in it: the grammar's state and the output
    position it is at."""

    rule: SamplingParams
    prompt_len: int
    grammar: GrammarState | None
    history: list[int] = field(default_factory=list)
    at: int = 0


class SeededRule(LogitsProcessor):
    def __init__(self, vllm_config: VllmConfig, req_states: LogitsProcRequestState) -> None:
        super().__init__(vllm_config, req_states)
        self._config = vllm_config
        self._rules: dict[int, _Row] = {}
        self._grammars: Grammars | None = None  # built on the first request with a grammar

    def add_request(self, req_idx: int, sampling_params: VllmParams) -> bool:
        args = (sampling_params.extra_args or {}).get(RULE_KEY)
        if args is None:
            # Slots are recycled without a removal hook: drop the previous occupant's rule.
            self._rules.pop(req_idx, None)
            return False
        rule = SamplingParams(temperature=args["temperature"], top_p=args["top_p"],
                              top_k=args["top_k"], seed=args["seed"],
                              grammar_kind=args["grammar_kind"], grammar=args["grammar"],
                              presence_penalty=args["presence_penalty"],
                              frequency_penalty=args["frequency_penalty"],
                              logit_bias=tuple((t, b) for t, b in args["logit_bias"]))
        self._rules[req_idx] = _Row(rule, args["prompt_len"],
                                    self._grammars_for(args["stop_ids"]).start(rule)
                                    if rule.grammar_kind else None)
        return True

    def _grammars_for(self, stop_ids: list[int]) -> Grammars:
        """The worker's own grammar compiler, over the tokenizer the engine loaded."""
        if self._grammars is None:
            model = self._config.model_config
            self._grammars = Grammars(AutoTokenizer.from_pretrained(model.tokenizer),
                                      model.get_vocab_size(), stop_ids)
        return self._grammars

    def apply(self, logits: torch.Tensor, ctx: LogitsContext) -> torch.Tensor:
        if not self._rules:
            return logits
        slots = ctx.expanded_idx_mapping.tolist()
        for row, (slot, pos) in enumerate(zip(slots, ctx.pos.tolist(), strict=True)):
            rule = self._rules.get(slot)
            if rule is None:
                continue
            # Row ``pos`` predicts the token at pos + 1. A row that ends a chunk of a longer
            # prompt has no output position yet; vLLM discards what it samples there.
            position = pos + 1 - rule.prompt_len
            if position < 0:
                continue
            # The grammar moves on by the token drawn, the only one vLLM can then sample. A
            # preempted request is recomputed and sampled again only at its next position, the
            # grammar's; the guard keeps any other row from moving the grammar twice.
            history = rule.history
            del history[position:]
            grammar = rule.grammar if rule.grammar and position == rule.at else None
            token = draw(logits[row], rule.rule, position, history,
                         grammar.allowed() if grammar else None)
            history.append(token)
            if grammar:
                grammar.accept(token)
                rule.at += 1
            logits[row, :token] = float("-inf")
            logits[row, token + 1:] = float("-inf")
        return logits
