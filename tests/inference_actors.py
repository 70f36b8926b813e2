"""Participants and developers for inference tests: real keys, real signatures, real txs.

A participant has a Cosmos account (secp256k1, signs its transactions) and an ed25519 node
key (signs inference payloads); a developer signs its requests with its account key.
"""

import hashlib
from dataclasses import dataclass, field

from chain_client import TxSpec, signed_tx
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from google.protobuf.message import Message
from nacl.signing import SigningKey

from chain.inference import artifact, payload
from chain.inference.artifact import ArtifactStep
from inferchain_pb.inference.v1.inference_pb2 import (
    Inference,
    MsgFinishInference,
    MsgRegisterParticipant,
    MsgStartInference,
    ServedModel,
)
from inferchain_pb.inference.v1.validation_pb2 import MsgValidation

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WEIGHTS = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
PRICE = 100
TOP_K = 5


@dataclass
class Actor:
    wallet: LocalWallet
    node_key: SigningKey = field(default_factory=SigningKey.generate)
    account_number: int = 0
    sequence: int = 0

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
            models=[ServedModel(model_id=MODEL_ID, weights_sha256=WEIGHTS)])


def genesis_models() -> list[dict]:
    return [{"id": MODEL_ID, "weights_sha256": WEIGHTS, "price_per_token": PRICE,
             "context_length": 8192, "top_k": TOP_K, "validation_threshold": "0.15"}]


def request_hash(label: str, body: bytes | None = None) -> bytes:
    """The prompt hash of the request a test names ``label``."""
    return hashlib.sha256(body or f"request {label}".encode()).digest()


def request_id(agent: Actor, developer: Actor, label: str, timestamp: int,
               body: bytes | None = None) -> str:
    """The inference id the chain binds to the request ``label`` (payload.request_id)."""
    return payload.request_id(developer.address, request_hash(label, body), timestamp,
                              agent.address)


def start_msg(agent: Actor, developer: Actor, label: str, executor: str,
              draw_height: int, timestamp: int, prompt_ids: list[int], max_tokens: int = 16,
              attempt: int = 0, body: bytes | None = None,
              temperature: float = 0.7, refusals: tuple[bytes, ...] = ()) -> MsgStartInference:
    """The start of the request a test names ``label``, under the id the chain binds to it."""
    prompt_hash = request_hash(label, body)
    request = payload.request_message(prompt_hash, timestamp, agent.address)
    msg = MsgStartInference(
        creator=agent.address, model_id=MODEL_ID, refusals=refusals,
        inference_id=request_id(agent, developer, label, timestamp, body),
        developer=developer.address,
        developer_pubkey=developer.wallet.public_key().public_key_bytes,
        request_signature=developer.wallet.signer().sign(request, deterministic=True),
        request_timestamp=timestamp, prompt_hash=prompt_hash, prompt_ids=prompt_ids,
        max_tokens=max_tokens, seed=42, executor=executor, draw_height=draw_height,
        attempt=attempt, temperature=temperature, top_p=1.0)
    msg.ta_signature = agent.node_key.sign(payload.start_payload_of(msg)).signature
    return msg


def finish_msg(executor: Actor, start: MsgStartInference, output_ids: list[int],
               signer: SigningKey | None = None,
               steps: list[ArtifactStep] | None = None) -> MsgFinishInference:
    """The executor's finish; ``steps`` is the artifact (made up unless given)."""
    steps = steps or [ArtifactStep(t, -0.5, tuple(range(t, t + TOP_K)),
                                   tuple(-0.5 - i for i in range(TOP_K))) for t in output_ids]
    encoded = artifact.encode(steps, TOP_K)
    output_hash = payload.ids_hash(output_ids)
    msg = MsgFinishInference(
        creator=executor.address, inference_id=start.inference_id, model_id=start.model_id,
        prompt_hash=start.prompt_hash, output_ids=output_ids, artifact=encoded,
        output_hash=output_hash, prompt_tokens=len(start.prompt_ids),
        output_tokens=len(output_ids))
    msg.executor_signature = (signer or executor.node_key).sign(payload.finish_payload(
        msg.inference_id, msg.model_id, msg.prompt_hash, msg.output_hash, msg.prompt_tokens,
        msg.output_tokens, msg.artifact, msg.creator)).signature
    return msg


def validation_msg(validator: Actor, inference: Inference, distance_micro: int = 1_000,
                   rule_violations: int = 0, ids_match: bool = True) -> MsgValidation:
    """A validator's report with the figures given, signed with its node key."""
    msg = MsgValidation(creator=validator.address, inference_id=inference.id,
                        output_hash=inference.output_hash, distance_micro=distance_micro,
                        rule_violations=rule_violations, ids_match=ids_match,
                        positions=len(inference.output_ids))
    msg.validator_signature = validator.node_key.sign(payload.validation_payload(
        msg.inference_id, msg.output_hash, msg.distance_micro, msg.rule_violations,
        msg.ids_match, msg.positions, msg.creator)).signature
    return msg
