"""Inference params: every number of the inference lifecycle, set in genesis."""

from dataclasses import dataclass
from typing import ClassVar

from chain.params import ModuleParams, bounded

KEY = b"inference/params"
MAX_TOP_K = 20
MAX_TOKENS = 131_072
# A start's sampling: OpenAI's limits, which the API nodes apply to requests
# (apinode/openai_request.py), inside the ML node's own (mlnode/limits.py; its stop length
# repeated here, since the chain imports no other part).
MAX_TEMPERATURE = 2.0
MAX_STOP_SEQUENCES = 4
MAX_STOP_LENGTH = 256
# A start's grammar (docs/design.md §4): the kinds an ML node builds and the longest grammar
# text, as mlnode/sampling_params.py holds them.
GRAMMAR_KINDS = ("", "json_schema", "structural_tag")
MAX_GRAMMAR_LENGTH = 32768
# The logit transform's bounds (OpenAI's; mlnode/sampling_params.py holds the ML node's
# copy): penalties in [-2, 2], biases in [-100, 100] on at most 300 tokens.
MAX_PENALTY = 2.0
MAX_LOGIT_BIAS = 100.0
MAX_LOGIT_BIAS_ENTRIES = 300
# Completions one request may ask for (OpenAI's n), each started as its own inference.
MAX_CHOICES = 8


@dataclass(frozen=True)
class InferenceParams(ModuleParams):
    module = "inference"
    governable: ClassVar[frozenset[str]] = frozenset({
        "expiration_blocks", "top_k", "max_prompt_tokens", "max_output_tokens",
        "default_price_per_token", "max_draw_age_blocks", "max_attempts",
        "request_time_window_s", "min_model_server_share_ppm", "transfer_agent_fee",
        "key_request_forfeit_ppm", "pass_claim_blocks", "pass_notice_bond",
        "probe_forfeit_tokens"})
    # Blocks a lone Start or Finish waits for its partner before the inference expires;
    # 1 to 100,000, so escrow locked by a lost partner comes back within days.
    expiration_blocks: int = bounded(20, 1, 100_000)
    # Logprobs per output position for genesis models: 1 to 20, OpenAI's top_logprobs limit
    # that the API nodes serve (model proposals are held to the same, chain/gov/content.py).
    top_k: int = bounded(5, 1, MAX_TOP_K)
    # Tokens a request may carry and ask for: 1 to 131,072 (the longest contexts served),
    # so tokens × price escrowed stays far inside uint64.
    max_prompt_tokens: int = bounded(4096, 1, MAX_TOKENS)
    max_output_tokens: int = bounded(2048, 1, MAX_TOKENS)
    # ninfer per token of a genesis model that names no price: 1 to 1e9 (1 INFER).
    default_price_per_token: int = bounded(100, 1, 10**9)
    # How old the block whose random value (docs/design.md §2.7) seeds the draw may be, and
    # how deep the fallback goes: at least 1 (the current block's value is not known yet), at
    # most 10,000 values kept in state; 1 to 100 attempts. The window is a request's whole
    # time: three quarters of it for first tokens, where passing a pick that left no refusal
    # costs a notice's block and pass_claim_blocks (docs/design.md §3.4), so 20 leaves the
    # third pick time for its first token after two dead ones (10 left it about none).
    max_draw_age_blocks: int = bounded(20, 1, 10_000)
    max_attempts: int = bounded(3, 1, 100)
    # Seconds a developer's request signature stays valid around the block time: 10 (a
    # couple of blocks, else honest requests arrive stale) to a day.
    request_time_window_s: int = bounded(600, 10, 86_400)
    # The least share of the members' weight that must serve a model for any of them to be
    # drawn for it, in ppm, 0 to 1,000,000: its inferences are checked by its servers only,
    # so at a third (rounded down) a coalition below a third of the weight cannot be all of
    # a model's checkers (docs/design.md §3.3). Read at each epoch's first block.
    min_model_server_share_ppm: int = bounded(333_333, 0, 1_000_000)
    # ninfer the developer pays per answered inference to whoever sent its start: the
    # transfer agent, or the executor that relayed it. A start's tx costs its sender a
    # 150,000-gas limit × min_gas_price (1,500 at the defaults), and the role is paid
    # nothing else, so the fee must exceed that for dropping requests or leaving the start
    # to the executor's relay to lose money (docs/economics.md); 0 to 1e9.
    transfer_agent_fee: int = bounded(2_000, 0, 10**9)
    # The share of an API-key request's committed escrow its transfer agent locks with the
    # commitment, in ppm (docs/design.md §3.3): returned when the start lands, burned if none
    # does. A variant the agent commits and drops, trying for a draw that names its
    # accomplice first, costs this and buys one more draw, worth the fee margin m (a share of
    # the price) with chance q = w / (1 − w) ≤ ½ for an accomplice of weight share w below ⅓:
    # above m/2 no number of variants pays (docs/economics.md). 10 % holds for margins up to
    # 20 % of the price; 0 (free tries) to 1,000,000.
    key_request_forfeit_ppm: int = bounded(100_000, 0, 1_000_000)
    # Blocks after a transfer agent's notice that it passes a pick during which the pick may
    # claim the request (docs/design.md §3.3): a start passes a pick that left no signed
    # refusal only once they are over, unclaimed. Long enough for a live pick's node to see
    # the notice and land its claim; each pass of a dead pick costs the request about this
    # many blocks more of its draw window (max_draw_age_blocks); 1 to 1,000.
    pass_claim_blocks: int = bounded(2, 1, 1_000)
    # ninfer a transfer agent locks with each notice of a passed pick, returned when the
    # request's start lands and burned when the notice expires first: a pick that claims a
    # request never started is counted as passed over (so a member cannot claim everything
    # and serve nothing), and the bond is what framing a member with notices of requests
    # nobody sends costs; 0 to 1e12.
    pass_notice_bond: int = bounded(2_000, 0, 10**12)
    # A probe's commitment (docs/design.md §10.4) counts towards its agent's quota whether or
    # not its start lands, so it locks at least this many tokens at the model's price plus
    # transfer_agent_fee, burned if no start lands: more than a served probe of up to as many
    # tokens costs (its tokens, and a start's tx fee, which transfer_agent_fee exceeds), so
    # committing probes and never sending them costs more than probing. 0 to 131,072.
    probe_forfeit_tokens: int = bounded(128, 0, MAX_TOKENS)
    # Weight of a genesis participant that names none, until the first epoch whose proof of
    # compute settles; 1 to 1,000,000. Genesis only: a participant registering later starts
    # at 0 (docs/design.md §7.3), so no later value would reach anyone.
    genesis_weight: int = bounded(100, 1, 1_000_000)
