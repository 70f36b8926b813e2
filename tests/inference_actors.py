"""Participants and developers for inference tests: real keys, real signatures, real txs.

A participant has a Cosmos account (secp256k1, signs its transactions) and an ed25519 node
key (signs inference payloads); a developer signs its requests with its account key.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from chain_client import TxSpec, signed_tx
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from google.protobuf.message import Message
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey

from chain.inference import artifact, payload
from chain.inference.artifact import ArtifactStep
from chain.inference.params import InferenceParams
from chain.validation import canary
from inferchain_pb.inference.v1.inference_pb2 import (
    EXPIRED,
    INVALIDATED,
    Inference,
    KeyRequest,
    Model,
    MsgClaimPasses,
    MsgCommitKeyRequests,
    MsgFinishInference,
    MsgNoticePasses,
    MsgRegisterParticipant,
    MsgStartInference,
    PassClaim,
    PickPass,
    ServedModel,
)
from inferchain_pb.inference.v1.validation_pb2 import MsgSealValidation, MsgValidation

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WEIGHTS = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
PRICE = 100
# What the developer pays whoever sent a charged inference's start, at the default params.
AGENT_FEE = InferenceParams().transfer_agent_fee
TOP_K = 5
# The serving dtype the genesis registry gives the test model (it names none).
DTYPE = "float32"
# The evidence test's honest reference mean in the test registry, in micro-nats.
REFERENCE_MICRO = 50_000
_BY_ADDRESS: dict[str, list["Actor"]] = {}


@dataclass
class Actor:
    """A participant or developer with its account and node keys; every actor made is known
    by address, so a finish can carry its start's transfer agent's delivery signature."""

    wallet: LocalWallet
    node_key: SigningKey = field(default_factory=SigningKey.generate)
    account_number: int = 0
    sequence: int = 0

    def __post_init__(self) -> None:
        _BY_ADDRESS.setdefault(self.address, []).append(self)

    @classmethod
    def new(cls, seed: int, account_number: int) -> "Actor":
        return cls(LocalWallet(PrivateKey(hashlib.sha256(bytes([seed])).digest()),
                               prefix="infer"), account_number=account_number)

    @property
    def address(self) -> str:
        return str(self.wallet.address())

    def tx(self, *messages: Message, chain_id: str = "inferchain-test",
           gas_limit: int = 2_000_000) -> bytes:
        """Signs the next tx of this account; the sequence moves on as the chain's will.
        The fee pays ``gas_limit`` at the chain's minimum gas price (0.01 ninfer)."""
        raw = signed_tx(self.wallet, TxSpec(list(messages), sequence=self.sequence,
                                            account_number=self.account_number,
                                            chain_id=chain_id, gas_limit=gas_limit,
                                            fee=gas_limit // 100)).tx.SerializeToString()
        self.sequence += 1
        return raw

    def register(self, url: str = "http://127.0.0.1:1") -> MsgRegisterParticipant:
        return MsgRegisterParticipant(
            creator=self.address, url=url, node_pubkey=bytes(self.node_key.verify_key),
            models=[ServedModel(model_id=MODEL_ID, weights_sha256=WEIGHTS, dtype=DTYPE)])


def genesis_participant(actor: Actor, url: str = "http://127.0.0.1:1",
                        model_ids: tuple[str, ...] = (MODEL_ID,)) -> dict:
    """The actor as a genesis participant serving the test model (or ``model_ids``, each of
    the test weights): a participant with weight from the first block, which one registering
    later only gets from proof of compute."""
    return {"address": actor.address, "url": url,
            "node_pubkey": bytes(actor.node_key.verify_key).hex(),
            "models": [{"model_id": m, "weights_sha256": WEIGHTS} for m in model_ids]}


def developer_charge(inferences: Iterable[Inference]) -> int:
    """What a developer paid for these inferences: the tokens of each charged one not
    invalidated (an invalidated one's tokens are refunded) and the transfer agent's fee of
    each charged one (paid to its starter at the charge, kept through an invalidation); an
    expired one cost nothing."""
    return sum((0 if i.status == INVALIDATED else i.cost) + i.agent_fee
               for i in inferences if i.status != EXPIRED)


def genesis_models() -> list[dict]:
    """The test registry: the default model with a threshold wide enough for any dtype, and
    an evidence reference to match (the tests' passing figures stay far below it)."""
    return [{"id": MODEL_ID, "weights_sha256": WEIGHTS, "price_per_token": PRICE,
             "context_length": 8192, "top_k": TOP_K, "validation_threshold": "0.15",
             "reference_distance_micro": REFERENCE_MICRO}]


def request_hash(label: str, body: bytes | None = None) -> bytes:
    """The prompt hash of the request a test names ``label``."""
    return hashlib.sha256(body or f"request {label}".encode()).digest()


def request_nonce(label: str, body: bytes | None = None) -> bytes:
    """The nonce of the request ``label``: it follows from the body, so the same body signs to
    the same request (a replay)."""
    return hashlib.sha256(b"nonce" + request_hash(label, body)).digest()[
        :payload.REQUEST_NONCE_BYTES]


def request_id(agent: Actor, developer: Actor, label: str, timestamp: int,
               body: bytes | None = None, choice: int = 0, choices: int = 0,
               signed: bool = True) -> str:
    """The inference id the chain binds to choice ``choice`` of the request ``label``
    (payload.request_id); not ``signed``: an API-key request the agent stamped."""
    return payload.request_id(developer.address, request_hash(label, body), timestamp,
                              agent.address,
                              _nonce(agent, developer, label, timestamp, body, choices, signed),
                              choice, choices)


def _nonce(agent: Actor, developer: Actor, label: str, timestamp: int, body: bytes | None,
           choices: int, signed: bool) -> bytes:
    """A signed request's nonce is the developer's; an API-key request's follows from it."""
    if signed:
        return request_nonce(label, body)
    return payload.key_request_nonce(agent.address, developer.address,
                                     request_hash(label, body), timestamp, choices)


def start_msg(agent: Actor, developer: Actor, label: str, executor: str,
              draw_height: int, timestamp: int, prompt_ids: list[int], max_tokens: int = 16,
              attempt: int = 0, body: bytes | None = None, temperature: float = 0.7,
              chain_id: str = "inferchain-test",
              purpose: payload.RequestPurpose = payload.RequestPurpose.INFERENCE,
              signed_request: bool = True, refusals: tuple[bytes, ...] = (),
              choice: int = 0, choices: int = 0, signed_choices: int | None = None,
              model_id: str = MODEL_ID, **transform: object) -> MsgStartInference:
    """The start of choice ``choice`` of the request a test names ``label`` (of
    ``choices``), under the id the chain binds to it; ``transform`` sets the start's
    penalties and logit biases. With ``signed_request`` the developer signed the request
    for ``purpose`` on ``chain_id``, asking for ``signed_choices`` completions (``choices``
    unless given); without it the developer's allowance for the agent pays (the agent
    stamped it)."""
    prompt_hash = request_hash(label, body)
    nonce = _nonce(agent, developer, label, timestamp, body, choices, signed_request)
    msg = MsgStartInference(
        creator=agent.address, model_id=model_id, refusals=refusals,
        inference_id=request_id(agent, developer, label, timestamp, body, choice, choices,
                                signed_request),
        developer=developer.address, request_timestamp=timestamp, request_nonce=nonce,
        prompt_hash=prompt_hash, prompt_ids=prompt_ids,
        max_tokens=max_tokens, seed=42, executor=executor, draw_height=draw_height,
        attempt=attempt, temperature=temperature, top_p=1.0, choice_index=choice,
        choices=choices, **transform)
    if signed_request:
        request = payload.request_message(
            chain_id, purpose, agent.address, prompt_hash, timestamp, nonce,
            choices if signed_choices is None else signed_choices)
        msg.developer_pubkey = developer.wallet.public_key().public_key_bytes
        msg.request_signature = developer.wallet.signer().sign(request, deterministic=True)
    msg.ta_signature = agent.node_key.sign(payload.start_payload_of(msg)).signature
    return msg


def key_commitment(agent: Actor, inference_ids: list[str],
                   max_escrow: int) -> MsgCommitKeyRequests:
    """``agent``'s commitment of API-key requests, each to escrow at most ``max_escrow``."""
    return MsgCommitKeyRequests(creator=agent.address, requests=[
        KeyRequest(inference_id=i, max_escrow=max_escrow) for i in inference_ids])


def pass_notice(agent: Actor, passes: Iterable[tuple[MsgStartInference, int, str]]
                ) -> MsgNoticePasses:
    """``agent``'s notice that it passes pick ``attempt`` (``pick``) of each start's draw."""
    return MsgNoticePasses(creator=agent.address, passes=[
        PickPass(inference_id=start.inference_id, model_id=start.model_id,
                 draw_height=start.draw_height, attempt=attempt, pick=pick)
        for start, attempt, pick in passes])


def pass_claim(pick: Actor, claims: Iterable[tuple[str, str, int]]) -> MsgClaimPasses:
    """``pick``'s claim of the noticed requests (agent, inference id, attempt)."""
    return MsgClaimPasses(creator=pick.address, claims=[
        PassClaim(transfer_agent=agent, inference_id=inference_id, attempt=attempt)
        for agent, inference_id, attempt in claims])


def finish_msg(executor: Actor, start: MsgStartInference, output_ids: list[int],
               signer: SigningKey | None = None,
               steps: list[ArtifactStep] | None = None,
               delivered: list[int] | None = None) -> MsgFinishInference:
    """The executor's finish; ``steps`` is the artifact (made up unless given). It carries the
    start's transfer agent's delivery signature over ``delivered`` (the output itself unless
    given): what the agent streamed to the developer."""
    steps = steps or [ArtifactStep(t, -0.5, tuple(range(t, t + TOP_K)),
                                   tuple(-0.5 - i for i in range(TOP_K))) for t in output_ids]
    encoded = artifact.encode(steps, TOP_K)
    output_hash = payload.ids_hash(output_ids)
    msg = MsgFinishInference(
        creator=executor.address, inference_id=start.inference_id, model_id=start.model_id,
        prompt_hash=start.prompt_hash, output_ids=output_ids, artifact=encoded,
        output_hash=output_hash, prompt_tokens=len(start.prompt_ids),
        output_tokens=len(output_ids), serving_dtype=DTYPE)
    msg.executor_signature = (signer or executor.node_key).sign(payload.finish_payload(
        msg.inference_id, msg.model_id, msg.prompt_hash, msg.output_hash, msg.prompt_tokens,
        msg.output_tokens, msg.artifact, msg.creator, msg.serving_dtype)).signature
    msg.delivery_signature = delivery_signature(
        start, output_ids if delivered is None else delivered)
    return msg


def canary_steps(encoded: bytes, key: bytes, model: Model) -> list[ArtifactStep]:
    """The artifact ``encoded`` as the executor of a canary under ``key`` records it: shifted
    (chain/validation/canary.py), for ``finish_msg``'s steps."""
    k, _ = artifact.decode(encoded)
    return artifact.decode(canary.shift(encoded, key, canary.model_quanta(model, k)))[1]


def delivery_signature(start: MsgStartInference, delivered: list[int]) -> bytes:
    """The start's transfer agent's node-key signature that it streamed ``delivered``."""
    agent = next(a for a in reversed(_BY_ADDRESS[start.creator])
                 if _signed_by(a.node_key, payload.start_payload_of(start), start.ta_signature))
    return agent.node_key.sign(payload.delivery_payload(
        start.inference_id, payload.ids_hash(delivered), agent.address,
        start.executor)).signature


def validation_msg(validator: Actor, inference: Inference, distance_micro: int = 1_000,
                   rule_violations: int = 0, ids_match: bool = True,
                   scores: bytes = b"") -> MsgValidation:
    """A validator's report with the figures given, signed with its node key: the opening
    of the seal ``seal_of`` gives. Its salt is fixed by validator and inference, so a test
    can seal a report and open it blocks later by building the same message twice.
    ``scores`` are the scores it commits (chain/validation/logprob_scores.py), if any."""
    msg = MsgValidation(creator=validator.address, inference_id=inference.id,
                        output_hash=inference.output_hash, distance_micro=distance_micro,
                        rule_violations=rule_violations, ids_match=ids_match,
                        positions=len(inference.output_ids),
                        salt=hashlib.sha256(f"salt/{validator.address}/{inference.id}"
                                            .encode()).digest(),
                        scores_sha256=hashlib.sha256(scores).digest() if scores else b"")
    msg.validator_signature = validator.node_key.sign(signed_figures(msg)).signature
    return msg


def signed_figures(msg: MsgValidation) -> bytes:
    """The validation payload a report signs and its seal covers."""
    return payload.validation_payload(msg.inference_id, msg.output_hash, msg.distance_micro,
                                      msg.rule_violations, msg.ids_match, msg.positions,
                                      msg.creator, msg.scores_sha256)


def seal_of(report: MsgValidation) -> MsgSealValidation:
    """The seal ``report`` opens."""
    return MsgSealValidation(creator=report.creator, inference_id=report.inference_id,
                             seal=payload.validation_seal(report.salt, signed_figures(report)))


def _signed_by(key: SigningKey, message: bytes, signature: bytes) -> bool:
    try:
        key.verify_key.verify(message, signature)
    except BadSignatureError:
        return False
    return True
