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

import torch
from vllm.config import VllmConfig
from vllm.sampling_params import SamplingParams as VllmParams
from vllm.v1.worker.gpu.sample.logits_processor import (
    LogitsContext,
    LogitsProcessor,
    LogitsProcRequestState,
)

from mlnode.sampling import SamplingParams, draw

RULE_KEY = "inferchain_rule"


def rule_args(params: SamplingParams, prompt_len: int) -> dict[str, object]:
    """What the processor needs of a request, as plain values ``extra_args`` can carry."""
    return {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
            "seed": params.seed, "prompt_len": prompt_len,
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
            "logit_bias": [[token, bias] for token, bias in params.logit_bias]}


class SeededRule(LogitsProcessor):
    def __init__(self, vllm_config: VllmConfig, req_states: LogitsProcRequestState) -> None:
        super().__init__(vllm_config, req_states)
        # slot -> (rule, prompt length, the output drawn so far)
        self._rules: dict[int, tuple[SamplingParams, int, list[int]]] = {}

    def add_request(self, req_idx: int, sampling_params: VllmParams) -> bool:
        args = (sampling_params.extra_args or {}).get(RULE_KEY)
        if args is None:
            # Slots are recycled without a removal hook: drop the previous occupant's rule.
            self._rules.pop(req_idx, None)
            return False
        rule = SamplingParams(temperature=args["temperature"], top_p=args["top_p"],
                              top_k=args["top_k"], seed=args["seed"],
                              presence_penalty=args["presence_penalty"],
                              frequency_penalty=args["frequency_penalty"],
                              logit_bias=tuple((t, b) for t, b in args["logit_bias"]))
        self._rules[req_idx] = (rule, args["prompt_len"], [])
        return True

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
            position = pos + 1 - rule[1]
            if position < 0:
                continue
            history = rule[2]
            del history[position:]
            token = draw(logits[row], rule[0], position, history)
            history.append(token)
            logits[row, :token] = float("-inf")
            logits[row, token + 1:] = float("-inf")
        return logits
