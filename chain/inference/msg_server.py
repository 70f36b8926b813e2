"""Turns inference messages into keeper and bank calls (docs/design.md §3).

Start and Finish may arrive in either order: whichever comes first is recorded and waits
``expiration_blocks`` for the other; the second one checks that both describe the same
inference and charges it: the developer pays for the tokens actually used and the transfer
agent's fee (to whoever sent the start), the rest of the escrow goes back, and the executor's
work balance grows by the cost.

A lone Finish is only a claim: a Start it does not fit (another executor, another model or
prompt, token counts the start does not allow) voids it and waits for its own executor's
Finish, so no Finish can keep a transfer agent's retry from starting, and a voided one is
never paid; a Start it fits pairs with it, even after it expired. A Start comes from its
transfer agent or, relayed exactly as the agent signed it, from the executor it names
(MsgRelayStart): the first to land counts, the other is a DuplicateStart.
"""

import math

from nacl.exceptions import BadSignatureError

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.context import Context
from chain.inference import (
    artifact,
    key_commitments,
    matched_artifacts,
    pass_notices,
    payload,
    start_rules,
)
from chain.inference.delivery import signed_delivery
from chain.inference.draw import NoEligibleExecutor
from chain.inference.errors import (
    BadSignature,
    DrawMismatch,
    DuplicateFinish,
    DuplicateStart,
    InferenceClosed,
    InvalidArtifact,
    InvalidOutput,
    InvalidParticipant,
    InvalidPrompt,
    ParticipantExists,
    ParticipantNotFound,
    ReplayedRequest,
    StaleRequest,
    UndeliveredRelay,
    UnknownModel,
    WrongExecutor,
    WrongServingDtype,
)
from chain.inference.expected_keepers import BankKeeper, InferenceHooks
from chain.inference.keeper import ESCROW_ACCOUNT, DrawUnavailable, InferenceKeeper
from chain.inference.params import (
    MAX_STOP_LENGTH,
    MAX_STOP_SEQUENCES,
    MAX_TEMPERATURE,
    InferenceParams,
)
from chain.verified_signatures import verify_ed25519
from inferchain_pb.inference.v1.inference_pb2 import (
    EXPIRED,
    FINISHED,
    INFERENCE_STATUS_UNSPECIFIED,
    STARTED,
    Inference,
    Model,
    MsgClaimPasses,
    MsgCommitKeyRequests,
    MsgFinishInference,
    MsgGrantAllowance,
    MsgNoticePasses,
    MsgRegisterParticipant,
    MsgRelayStart,
    MsgStartInference,
    MsgUpdateParticipant,
    MsgWithdrawParticipant,
    Participant,
)

MAX_URL = 256
MAX_ID = 128


def _verify_ed25519(pubkey: bytes, message: bytes, signature: bytes, who: str) -> None:
    try:
        verify_ed25519(pubkey, message, signature)
    except (BadSignatureError, ValueError, TypeError) as exc:
        raise BadSignature(f"{who}'s node-key signature does not verify") from exc


def _delivery_signed(agent: Participant, executor: str, inference_id: str,
                     output_hash: bytes, signature: bytes) -> bool:
    """Whether the transfer agent signed that this output of ``executor``'s, whole or as the
    prefix it had streamed so far, reached the developer: without it an executor cannot be
    paid for tokens the developer never got."""
    return signed_delivery(agent, executor, inference_id, output_hash, signature) is not None


def _check_delivery(agent: Participant, executor: str, inference_id: str, output_hash: bytes,
                    signature: bytes) -> None:
    if not _delivery_signed(agent, executor, inference_id, output_hash, signature):
        raise BadSignature(f"transfer agent {agent.address} did not sign delivery of this "
                           f"output of {executor}'s to the developer")


class InferenceMsgServer:
    def __init__(self, keeper: InferenceKeeper, bank: BankKeeper,
                 hooks: InferenceHooks) -> None:
        self._keeper = keeper
        self._bank = bank
        # Told once an inference is FINISHED and paid for: the validation module opens its
        # task there, without the inference module knowing.
        self._hooks = hooks

    def register(self, ctx: Context, msg: MsgRegisterParticipant) -> None:
        if self._keeper.participant(ctx.kv, msg.creator) is not None:
            raise ParticipantExists(f"{msg.creator} is already registered")
        # Weight 0 until its first accepted proof of compute settles (docs/design.md §7.3):
        # no draws, no member seat, no votes, no validator power for an account alone.
        participant = Participant(address=msg.creator, weight=0, active=True,
                                  registered_height=ctx.block.height)
        self._describe(ctx, participant, msg)
        ctx.emit("register_participant", participant=msg.creator, url=msg.url)

    def update(self, ctx: Context, msg: MsgUpdateParticipant) -> None:
        participant = self._registered(ctx, msg.creator)
        self._describe(ctx, participant, msg)
        ctx.emit("update_participant", participant=msg.creator, url=msg.url)

    def withdraw(self, ctx: Context, msg: MsgWithdrawParticipant) -> None:
        participant = self._registered(ctx, msg.creator)
        participant.active, participant.withdrawn_height = False, ctx.block.height
        self._keeper.set_participant(ctx.kv, participant)
        ctx.emit("withdraw_participant", participant=msg.creator)

    def grant_allowance(self, ctx: Context, msg: MsgGrantAllowance) -> None:
        developer = address.decode(msg.creator)
        agent = address.decode(msg.transfer_agent)
        self._keeper.set_allowance(ctx.kv, developer, agent, msg.limit)
        ctx.emit("grant_allowance", developer=msg.creator, transfer_agent=msg.transfer_agent,
                 limit=str(msg.limit))

    def commit_key_requests(self, ctx: Context, msg: MsgCommitKeyRequests) -> None:
        """A transfer agent commits API-key requests before their draw
        (chain/inference/key_commitments.py)."""
        agent = self._registered(ctx, msg.creator)
        key_commitments.commit(ctx, self._bank, self._keeper, msg, agent,
                               self._keeper.params(ctx.kv))

    def notice_passes(self, ctx: Context, msg: MsgNoticePasses) -> None:
        """A transfer agent says which picks it passes unevidenced, so they may claim first
        (chain/inference/pass_notices.py)."""
        self._registered(ctx, msg.creator)
        pass_notices.post(ctx, self._bank, self._keeper, msg, self._keeper.params(ctx.kv))

    def claim_passes(self, ctx: Context, msg: MsgClaimPasses) -> None:
        """A live pick claims the requests an agent said it passes."""
        self._registered(ctx, msg.creator)
        pass_notices.claim(ctx, msg, self._keeper.params(ctx.kv))

    def _spend_allowance(self, ctx: Context, developer: bytes, msg: MsgStartInference,
                         escrow: int) -> None:
        """An unsigned start is paid from what the developer allowed this transfer agent."""
        agent = address.decode(msg.creator)
        left = self._keeper.allowance(ctx.kv, developer, agent)
        start_rules.check_allowance(msg, left, escrow)
        self._keeper.set_allowance(ctx.kv, developer, agent, left - escrow)

    def relay_start(self, ctx: Context, msg: MsgRelayStart) -> None:
        """The executor a start names submits it: the agent's node-key signature over the
        whole start is the agent's consent, so it is applied exactly as the agent's own, once
        the agent also signed that some of this executor's output reached the developer. A
        pick that refused the forward, or served nothing, holds no such signature: its relay
        cannot take the inference id from the agent's next attempt (docs/design.md §3.5)."""
        if msg.creator != msg.start.executor:
            raise WrongExecutor(f"only the executor the start names ({msg.start.executor}) "
                                f"may relay it, not {msg.creator}")
        self._registered(ctx, msg.creator)
        agent = self._registered(ctx, msg.start.creator)
        if not _delivery_signed(agent, msg.creator, msg.start.inference_id, msg.delivered_hash,
                                msg.delivery_signature):
            raise UndeliveredRelay(f"transfer agent {agent.address} signed no delivery of "
                                   f"{msg.creator}'s output of inference "
                                   f"{msg.start.inference_id}; only a start whose output "
                                   f"reached the developer is relayed")
        self._start(ctx, msg.start, starter=msg.creator)
        ctx.emit("relay_start", inference_id=msg.start.inference_id, executor=msg.creator)

    def start(self, ctx: Context, msg: MsgStartInference) -> None:
        self._start(ctx, msg, starter=msg.creator)

    def _start(self, ctx: Context, msg: MsgStartInference, starter: str) -> None:
        """Starts as the transfer agent signed; ``starter`` sent the tx and earns its fee."""
        if msg.draw_height < 1:  # int64 on the wire; the signed payload packs it unsigned
            raise DrawMismatch(f"draw height {msg.draw_height} is not a block height")
        params = self._keeper.params(ctx.kv)
        agent = self._registered(ctx, msg.creator)
        start_rules.check_ta_signature(msg, agent)
        model = self._keeper.live_model(ctx.kv, msg.model_id)
        self._check_prompt(msg, model, params)
        known = self._keeper.inference(ctx.kv, msg.inference_id)
        if known is not None and known.started:
            raise DuplicateStart(f"inference {msg.inference_id} was already started")
        void = None
        if known is not None and not (
                self._finish_fits(known, msg) and
                _delivery_signed(agent, known.executor, known.id, known.output_hash,
                                 known.delivery_signature)):
            void, known = known, None
        via_allowance = not msg.request_signature
        self._check_timestamp(ctx, msg, params.request_time_window_s)
        if not via_allowance:
            self._check_remembered(ctx, msg)
            self._check_request(ctx, msg)
        escrow = start_rules.escrow_of(msg, model, params.transfer_agent_fee)
        # A probe's commitment, which the agent's account signed, is its consent to pay.
        probe = via_allowance and bool(
            key_commitments.redeem(ctx, self._bank, msg, escrow).probe_model_id)
        self._check_draw(ctx, msg, model, params)
        developer = address.decode(msg.developer)
        if via_allowance and not probe:
            self._spend_allowance(ctx, developer, msg, escrow)
        pass_notices.redeem(ctx, self._bank, msg, params.max_attempts)
        self._bank.send(ctx, developer, ESCROW_ACCOUNT, {NATIVE_DENOM: escrow})
        self._keeper.change_escrow(ctx.kv, developer, escrow)
        inference = Inference()
        if known is not None:
            inference.CopyFrom(known)
        inference.id, inference.model_id = msg.inference_id, msg.model_id
        inference.developer, inference.transfer_agent = msg.developer, msg.creator
        inference.executor, inference.prompt_hash = msg.executor, msg.prompt_hash
        del inference.prompt_ids[:]
        inference.prompt_ids.extend(msg.prompt_ids)
        inference.max_tokens, inference.seed = msg.max_tokens, msg.seed
        inference.price_per_token, inference.escrow = model.price_per_token, escrow
        inference.starter, inference.agent_fee = starter, params.transfer_agent_fee
        inference.start_height, inference.draw_height = ctx.block.height, msg.draw_height
        inference.attempt, inference.started = msg.attempt, True
        inference.via_allowance = via_allowance
        inference.temperature, inference.top_p = msg.temperature, msg.top_p
        del inference.stop[:]
        inference.stop.extend(msg.stop)
        inference.grammar_kind, inference.grammar = msg.grammar_kind, msg.grammar
        inference.presence_penalty = msg.presence_penalty
        inference.frequency_penalty = msg.frequency_penalty
        del inference.logit_bias[:]
        inference.logit_bias.extend(msg.logit_bias)
        if void is not None:
            self._void_finish(ctx, void, msg.executor)
        self._charge_or_wait(ctx, inference, known, STARTED, params.expiration_blocks, void)
        ctx.emit("start_inference", inference_id=msg.inference_id, executor=msg.executor,
                 developer=msg.developer, escrow=str(escrow))

    def finish(self, ctx: Context, msg: MsgFinishInference) -> None:
        params = self._keeper.params(ctx.kv)
        executor = self._registered(ctx, msg.creator)
        _verify_ed25519(executor.node_pubkey, payload.finish_payload(
            msg.inference_id, msg.model_id, msg.prompt_hash, msg.output_hash,
            msg.prompt_tokens, msg.output_tokens, msg.artifact, msg.creator, msg.serving_dtype),
            msg.executor_signature, "the executor")
        model = self._model(ctx, msg.model_id)
        if msg.serving_dtype != model.serving_dtype:
            raise WrongServingDtype(f"the finish says it was served in "
                                    f"{msg.serving_dtype or 'no dtype'}; {model.id} is served "
                                    f"in {model.serving_dtype}")
        self._check_output(msg, model)
        known = self._keeper.inference(ctx.kv, msg.inference_id)
        if known is not None and known.finished and (known.status == FINISHED
                                                     or known.executor == msg.creator):
            raise DuplicateFinish(f"inference {msg.inference_id} was already finished")
        if known is not None and known.finished:
            raise WrongExecutor(f"inference {msg.inference_id} holds a lone finish by "
                                f"{known.executor}; a start naming {msg.creator} voids it")
        if known is not None and known.status != STARTED:
            raise InferenceClosed(f"inference {msg.inference_id} is closed")
        if known is not None and known.executor != msg.creator:
            raise WrongExecutor(f"inference {msg.inference_id} was assigned to "
                                f"{known.executor}, not {msg.creator}")
        if known is not None:
            _check_delivery(self._registered(ctx, known.transfer_agent), msg.creator,
                            msg.inference_id, msg.output_hash, msg.delivery_signature)
        inference = Inference()
        if known is not None:
            inference.CopyFrom(known)
        inference.id, inference.model_id, inference.executor = (msg.inference_id, msg.model_id,
                                                                msg.creator)
        inference.prompt_hash = msg.prompt_hash
        del inference.output_ids[:]
        inference.output_ids.extend(msg.output_ids)
        inference.artifact, inference.output_hash = msg.artifact, msg.output_hash
        inference.prompt_tokens, inference.output_tokens = msg.prompt_tokens, msg.output_tokens
        inference.executor_signature = msg.executor_signature
        inference.delivery_signature = msg.delivery_signature
        inference.serving_dtype = msg.serving_dtype
        inference.finish_height, inference.finished = ctx.block.height, True
        if known is not None:
            self._check_start_matches(known, msg)
        self._charge_or_wait(ctx, inference, known, INFERENCE_STATUS_UNSPECIFIED,
                             params.expiration_blocks)
        ctx.emit("finish_inference", inference_id=msg.inference_id, executor=msg.creator,
                 output_tokens=str(msg.output_tokens))

    def _charge_or_wait(self, ctx: Context, inference: Inference, known: Inference | None,
                        waiting: int, expiration_blocks: int,
                        replaced: Inference | None = None) -> None:
        """Charges when the other half is on record; otherwise records this half to wait, in
        place of the ``replaced`` record (a voided lone Finish)."""
        if known is not None:
            self._keeper.cancel_expiry(ctx.kv, known.id, known.expires_at)
            self._charge(ctx, inference, known)
            return
        inference.status = waiting
        inference.expires_at = ctx.block.height + expiration_blocks
        self._keeper.schedule_expiry(ctx.kv, inference.id, inference.expires_at)
        self._keeper.save_inference(ctx.kv, inference, ctx.block.height, replaced)

    def _void_finish(self, ctx: Context, finish: Inference, starter: str) -> None:
        """Drops a lone Finish the start does not pair with: nothing was escrowed for it and
        its executor gets nothing; a pending one's expiry goes with it."""
        if finish.status != EXPIRED:
            self._keeper.cancel_expiry(ctx.kv, finish.id, finish.expires_at)
        ctx.emit("void_finish", inference_id=finish.id, executor=finish.executor,
                 started_executor=starter)

    def _charge(self, ctx: Context, inference: Inference, previous: Inference) -> None:
        """Charges the tokens used, pays the starter its fee, refunds the rest, credits the
        executor's work balance. The fee is paid now, not with the epoch's work: the
        starter's part ended when the start landed, and invalidating the executor's output
        does not undo it."""
        cost = (inference.prompt_tokens + inference.output_tokens) * inference.price_per_token
        refund = inference.escrow - cost - inference.agent_fee
        developer = address.decode(inference.developer)
        if inference.agent_fee:
            self._bank.send(ctx, ESCROW_ACCOUNT, address.decode(inference.starter),
                            {NATIVE_DENOM: inference.agent_fee})
        if refund:
            self._bank.send(ctx, ESCROW_ACCOUNT, developer, {NATIVE_DENOM: refund})
        self._keeper.release_escrow(ctx.kv, inference, refund)
        executor_raw = address.decode(inference.executor)
        self._keeper.add_work(ctx.kv, ctx.block.height, executor_raw, cost)
        executor = self._keeper.participant(ctx.kv, inference.executor)
        executor.completions += 1
        self._keeper.set_participant(ctx.kv, executor)
        inference.cost, inference.status = cost, FINISHED
        self._keeper.save_inference(ctx.kv, inference, ctx.block.height, previous)
        ctx.emit("settle_inference", inference_id=inference.id, cost=str(cost),
                 refund=str(refund), executor=inference.executor, starter=inference.starter,
                 agent_fee=str(inference.agent_fee))
        self._hooks.inference_finished(ctx, inference)

    def _registered(self, ctx: Context, addr: str) -> Participant:
        participant = self._keeper.participant(ctx.kv, addr)
        if participant is None:
            raise ParticipantNotFound(f"{addr} is not a registered participant")
        return participant

    def _model(self, ctx: Context, model_id: str) -> Model:
        """The model's record, retired or not: a Finish completes an inference started before
        a retirement (new work names a live model, ``InferenceKeeper.live_model``)."""
        model = self._keeper.model(ctx.kv, model_id)
        if model is None:
            raise UnknownModel(f"model {model_id[:80]!r} is not in the registry")
        return model

    def _describe(self, ctx: Context, participant: Participant,
                  msg: MsgRegisterParticipant | MsgUpdateParticipant) -> None:
        if not msg.url.startswith(("http://", "https://")) or len(msg.url) > MAX_URL:
            raise InvalidParticipant(f"url must be http(s) and at most {MAX_URL} characters")
        if len(msg.node_pubkey) != 32:
            raise InvalidParticipant("node_pubkey must be a 32-byte ed25519 public key")
        if not msg.models:
            raise InvalidParticipant("a participant must serve at least one model")
        for served in msg.models:
            model = self._keeper.live_model(ctx.kv, served.model_id)
            if served.weights_sha256 != model.weights_sha256:
                raise InvalidParticipant(f"weights {served.weights_sha256[:16]}… are not model "
                                         f"{model.id}'s {model.weights_sha256[:16]}…")
            if served.dtype != model.serving_dtype:
                raise WrongServingDtype(f"model {model.id} is served in {model.serving_dtype}, "
                                        f"not {served.dtype or 'no dtype'}: a participant "
                                        f"whose ML node cannot serve it so does not declare it")
        if msg.consensus_pubkey:
            self._check_consensus_key(ctx, participant.address, msg.consensus_pubkey,
                                      msg.consensus_key_signature)
            self._keeper.set_consensus_key(ctx.kv, participant, msg.consensus_pubkey)
        participant.url, participant.node_pubkey = msg.url, msg.node_pubkey
        del participant.models[:]
        participant.models.extend(msg.models)
        self._keeper.set_participant(ctx.kv, participant)

    def _check_consensus_key(self, ctx: Context, owner: str, key: bytes,
                             signature: bytes) -> None:
        """A CometBFT validator key (docs/design.md §7.4): 32 bytes, signed by itself for this
        participant on this chain, no other participant's."""
        if len(key) != 32:
            raise InvalidParticipant("consensus_pubkey must be a 32-byte ed25519 public key "
                                     "(priv_validator_key.json's pub_key) or empty")
        try:
            verify_ed25519(key, payload.consensus_key_payload(ctx.block.chain_id, owner, key),
                           signature)
        except (BadSignatureError, ValueError) as exc:
            raise InvalidParticipant("consensus_key_signature is not the consensus key's "
                                     "signature of this registration") from exc
        other = self._keeper.consensus_key_owner(ctx.kv, key)
        if other is not None and other != owner:
            raise InvalidParticipant(f"consensus_pubkey is already {other}'s")

    @staticmethod
    def _check_prompt(msg: MsgStartInference, model: Model, params: InferenceParams) -> None:
        if not 0 < len(msg.inference_id) <= MAX_ID:
            raise InvalidPrompt(f"inference id must be 1 to {MAX_ID} characters")
        if not msg.prompt_ids or len(msg.prompt_ids) > params.max_prompt_tokens:
            raise InvalidPrompt(f"prompt must have 1 to {params.max_prompt_tokens} tokens")
        if not 0 < msg.max_tokens <= params.max_output_tokens:
            raise InvalidPrompt(f"max_tokens must be 1 to {params.max_output_tokens}")
        if not (math.isfinite(msg.temperature) and 0 <= msg.temperature <= MAX_TEMPERATURE
                and math.isfinite(msg.top_p) and 0 < msg.top_p <= 1):
            raise InvalidPrompt(f"temperature must be in [0, {MAX_TEMPERATURE}] and top_p in "
                                f"(0, 1]")
        if len(msg.stop) > MAX_STOP_SEQUENCES or \
                any(not 0 < len(s) <= MAX_STOP_LENGTH for s in msg.stop):
            raise InvalidPrompt(f"at most {MAX_STOP_SEQUENCES} stop sequences of 1 to "
                                f"{MAX_STOP_LENGTH} characters")
        start_rules.check_grammar(msg)
        start_rules.check_transform(msg)
        start_rules.check_context(msg, model)

    @staticmethod
    def _check_timestamp(ctx: Context, msg: MsgStartInference, window: int) -> None:
        """The request is recent: its timestamp fixes its draw height, signed or not."""
        block_seconds = ctx.block.time_ns // 1_000_000_000
        if abs(block_seconds - msg.request_timestamp) > window:
            raise StaleRequest(f"request timestamp {msg.request_timestamp} is more than "
                               f"{window}s from the block time {block_seconds}")

    def _check_remembered(self, ctx: Context, msg: MsgStartInference) -> None:
        """The chain still remembers the signatures used at the request's timestamp: one
        stamped before the floor could be a replay it can no longer tell."""
        floor = self._keeper.request_signature_floor(ctx.kv)
        if msg.request_timestamp < floor:
            raise StaleRequest(f"request timestamp {msg.request_timestamp} is before {floor}: "
                               f"signatures used before then are no longer kept, so a replay "
                               f"could not be told apart")

    def _check_request(self, ctx: Context, msg: MsgStartInference) -> None:
        """The developer signed this very request for this transfer agent, once."""
        start_rules.check_request_key(msg)
        start_rules.check_request_signature(msg, ctx.block.chain_id)
        if not self._keeper.use_request_signature(ctx.kv, msg.request_signature,
                                                  msg.request_timestamp, msg.choice_index):
            raise ReplayedRequest(f"this request signature was already used for choice "
                                  f"{msg.choice_index}")

    def _check_draw(self, ctx: Context, msg: MsgStartInference, model: Model,
                    params: InferenceParams) -> None:
        oldest = max(1, ctx.block.height - params.max_draw_age_blocks)
        if not oldest <= msg.draw_height < ctx.block.height:
            raise DrawMismatch(f"draw height {msg.draw_height} is outside [{oldest}, "
                               f"{ctx.block.height - 1}]")
        if msg.attempt >= params.max_attempts:
            raise DrawMismatch(f"attempt {msg.attempt} is past the last allowed "
                               f"({params.max_attempts - 1})")
        start_rules.check_request_id(msg)
        if not msg.request_signature:
            # Its commitment fixes its draw height (checked with its escrow at the start).
            start_rules.check_key_nonce(msg)
        elif not self._keeper.draws_at(ctx.kv, msg.request_timestamp, msg.draw_height):
            bound = self._keeper.request_draw_height(ctx.kv, msg.request_timestamp)
            raise DrawMismatch(f"a request stamped {msg.request_timestamp} draws at height "
                               f"{bound or 'none yet'}, not {msg.draw_height}")
        try:
            drawn = self._keeper.draw(ctx.kv, msg.inference_id, model, msg.draw_height)
            order = start_rules.executor_order(drawn, msg.creator, bool(msg.request_signature),
                                               picks=msg.attempt + 1)
        except DrawUnavailable as exc:
            raise DrawMismatch(str(exc)) from exc
        except NoEligibleExecutor as exc:
            raise DrawMismatch(f"no participant can serve {model.id}: {exc}") from exc
        except ValueError as exc:
            raise DrawMismatch(f"the draw cannot be computed: {exc}") from exc
        if msg.attempt >= len(order) or order[msg.attempt] != msg.executor:
            picked = order[msg.attempt] if msg.attempt < len(order) else "nobody"
            raise DrawMismatch(f"the draw at height {msg.draw_height} picks {picked} for "
                               f"attempt {msg.attempt}, not {msg.executor}")
        skipped = [self._keeper.participant(ctx.kv, address) for address in order[:msg.attempt]]
        refused = [start_rules.refused(msg, j, p.address, p.node_pubkey)
                   for j, p in enumerate(skipped)]
        start_rules.check_self_service(msg, sum(refused))
        for j, (participant, signed) in enumerate(zip(skipped, refused, strict=True)):
            if not signed:
                pass_notices.check_pass(pass_notices.notice(ctx.kv, msg.creator,
                                                            msg.inference_id, j),
                                        msg, j, participant.address, ctx.block.height,
                                        params.pass_claim_blocks)
        # After every check, so a forged refusal charges nobody. A pick passed without its
        # refusal (under an unclaimed notice) is no miss, but it is counted: beyond an
        # allowance per epoch it costs what a miss does (docs/design.md §6.7), so a member
        # cannot keep its reward by going silent.
        for participant, signed in zip(skipped, refused, strict=True):
            if signed:
                participant.misses += 1
            else:
                participant.passed_over += 1
            self._keeper.set_participant(ctx.kv, participant)

    @staticmethod
    def _check_output(msg: MsgFinishInference, model: Model) -> None:
        if not msg.output_ids or msg.output_tokens != len(msg.output_ids):
            raise InvalidOutput("output_tokens must equal the number of output ids, at least 1")
        if msg.output_hash != payload.ids_hash(msg.output_ids):
            raise InvalidOutput("output_hash is not the hash of the output ids")
        matched = matched_artifacts.entry(msg.artifact, msg.output_hash, model.top_k)
        if matched_artifacts.MATCHED.seen(matched):
            return
        try:
            k, token_ids = artifact.token_ids(msg.artifact)
        except artifact.ArtifactError as exc:
            raise InvalidArtifact(f"artifact does not decode: {exc}") from exc
        if k != model.top_k or token_ids != list(msg.output_ids):
            raise InvalidArtifact(f"artifact must hold top-{model.top_k} for exactly the "
                                  f"output tokens")
        matched_artifacts.MATCHED.add(matched)

    @staticmethod
    def _finish_fits(finish: Inference, start: MsgStartInference) -> bool:
        """The lone Finish on record is this start's executor's output for this request. A
        summarized one never is: its output left state when its epoch settled, so the Start
        voids it and waits for a Finish of its own."""
        return (not finish.summarized_height
                and finish.executor == start.executor and finish.model_id == start.model_id
                and finish.prompt_hash == start.prompt_hash
                and finish.prompt_tokens == len(start.prompt_ids)
                and finish.output_tokens <= start.max_tokens)

    @staticmethod
    def _check_start_matches(start: Inference, finish: MsgFinishInference) -> None:
        if start.model_id != finish.model_id or start.prompt_hash != finish.prompt_hash:
            raise InvalidOutput("finish is for another model or prompt than the start")
        if finish.prompt_tokens != len(start.prompt_ids):
            raise InvalidOutput(f"prompt_tokens {finish.prompt_tokens} != "
                                f"{len(start.prompt_ids)} prompt ids started")
        if finish.output_tokens > start.max_tokens:
            raise InvalidOutput(f"{finish.output_tokens} output tokens exceed max_tokens "
                                f"{start.max_tokens}")

