"""Grammar-constrained decoding: which tokens a request's grammar allows after its output so far.

A request that asks for JSON or a tool call carries a grammar (``SamplingParams.grammar_kind``
and ``grammar``, docs/design.md §4): a JSON schema, or an xgrammar structural tag (free text
with ``<tool_call>`` blocks whose JSON follows each function's parameters). xgrammar compiles it
against the model's tokenizer into a matcher whose mask is a deterministic function of the
grammar and the tokens accepted so far, so the executor that samples under it and the
validator that replays the output rebuild the very same mask at every position, provided both
run the same tokenizer and xgrammar version. The mask is applied by ``mlnode.sampling``
before temperature, top-p and the seeded draw.

JSON schemas are compiled strict (no properties beyond the schema's) and with fixed separators
(``", "`` and ``": "``, no other whitespace), so a small model cannot spend its tokens on
whitespace, and an output is in the grammar exactly when it parses and matches the schema.
"""

from collections.abc import Iterable

import torch
import xgrammar as xgr
from transformers import PreTrainedTokenizerBase

from mlnode.engine import InvalidRequest
from mlnode.sampling_params import GRAMMAR_KINDS, MAX_GRAMMAR_LENGTH, SamplingParams

_BITS = torch.arange(32, dtype=torch.int32)


class GrammarState:
    """One output's place in its grammar: the mask for the next token, then that token."""

    def __init__(self, matcher: xgr.GrammarMatcher, vocab_size: int) -> None:
        self._matcher = matcher
        self._vocab = vocab_size
        self._bits = xgr.allocate_token_bitmask(1, vocab_size)

    def allowed(self) -> torch.Tensor:
        """Which tokens the grammar allows next, as a bool tensor over the vocabulary."""
        self._matcher.fill_next_token_bitmask(self._bits)
        words = self._bits[0].unsqueeze(1)
        return ((words >> _BITS) & 1).bool().flatten()[: self._vocab]

    def accept(self, token: int) -> bool:
        """Moves past ``token``; False (and the state is spent) when the grammar forbids it."""
        return self._matcher.accept_token(token)


class Grammars:
    """Builds grammars for one tokenizer and vocabulary; compiled grammars are cached, so a
    schema sent again costs nothing. ``stop_ids`` (the model's EOS ids) are the tokens that
    end an output once the grammar is complete."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, vocab_size: int,
                 stop_ids: Iterable[int]) -> None:
        self._stop = sorted(stop_ids)
        self._info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size,
                                                        stop_token_ids=self._stop)
        self._compiler = xgr.GrammarCompiler(self._info, max_threads=1)
        self._vocab = vocab_size

    def compile(self, kind: str, text: str) -> xgr.CompiledGrammar:
        """The compiled grammar; InvalidRequest naming what is wrong when it cannot be built."""
        check_grammar(kind, text)
        try:
            if kind == "json_schema":
                return self._compiler.compile_json_schema(text, any_whitespace=False,
                                                          strict_mode=True)
            return self._compiler.compile_structural_tag(text)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise InvalidRequest(f"the {kind} grammar cannot be built: {exc}") from exc

    def start(self, params: SamplingParams) -> GrammarState | None:
        """A fresh state at the start of an output, or None when the request has no grammar."""
        if not params.grammar_kind:
            return None
        compiled = self.compile(params.grammar_kind, params.grammar)
        return GrammarState(xgr.GrammarMatcher(compiled, override_stop_tokens=self._stop),
                            self._vocab)


def check_grammar(kind: str, text: str) -> None:
    """The kind is known, the text fits, and no grammar text comes without a kind."""
    if kind not in GRAMMAR_KINDS:
        raise InvalidRequest(f"grammar_kind {kind!r} is not one of {GRAMMAR_KINDS[1:]}")
    if not kind and text:
        raise InvalidRequest("grammar is set without a grammar_kind")
    if kind and not text:
        raise InvalidRequest(f"grammar_kind {kind!r} needs a grammar")
    if len(text) > MAX_GRAMMAR_LENGTH:
        raise InvalidRequest(f"grammar is {len(text)} characters; at most {MAX_GRAMMAR_LENGTH}")
