"""Inference's part of genesis: params, the model registry, and any initial participants."""

from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.inference.keeper import InferenceKeeper
from chain.inference.model import MODEL_FIELDS, model_error
from chain.inference.params import InferenceParams
from inferchain_pb.inference.v1.inference_pb2 import Model, Participant, ServedModel

# Nats of top-k logprob distance a validation accepts, from the calibration in
# docs/verification.md: 1.5× the largest honest distance measured (bf16 executors).
DEFAULT_VALIDATION_THRESHOLD = "0.15"


def init_genesis(keeper: InferenceKeeper, kv: GasKV, section: dict) -> None:
    params = InferenceParams.from_dict(section.get("params", {}))
    keeper.set_params(kv, params)
    for raw in section.get("models", []):
        unknown = set(raw) - MODEL_FIELDS
        if unknown or "id" not in raw or "weights_sha256" not in raw:
            raise InvalidRequest(f"genesis model {raw.get('id')!r}: needs id and "
                                 f"weights_sha256; unknown fields {sorted(unknown)}")
        if keeper.model(kv, raw["id"]) is not None:
            raise InvalidRequest(f"genesis lists model {raw['id']} twice")
        entry = Model(
            id=raw["id"], weights_sha256=raw["weights_sha256"],
            price_per_token=int(raw.get("price_per_token", params.default_price_per_token)),
            context_length=int(raw.get("context_length", 8192)),
            validation_threshold=str(raw.get("validation_threshold",
                                             DEFAULT_VALIDATION_THRESHOLD)),
            top_k=int(raw.get("top_k", params.top_k)))
        error = model_error(entry)
        if error is not None:
            raise InvalidRequest(f"genesis model {raw['id']!r}: {error}")
        keeper.set_model(kv, entry)
    for raw in section.get("participants", []):
        for served in raw["models"]:
            model = keeper.model(kv, served["model_id"])
            if model is None or model.weights_sha256 != served["weights_sha256"]:
                raise InvalidRequest(f"genesis participant {raw['address']} serves "
                                     f"{served['model_id']!r}, which the registry does not list "
                                     f"with those weights")
        if keeper.participant(kv, raw["address"]) is not None:
            raise InvalidRequest(f"genesis lists participant {raw['address']} twice")
        try:
            consensus_key = bytes.fromhex(raw.get("consensus_pubkey", ""))
        except (TypeError, ValueError):
            consensus_key = b"?"
        if consensus_key and (len(consensus_key) != 32
                              or keeper.consensus_key_owner(kv, consensus_key) is not None):
            raise InvalidRequest(f"genesis participant {raw['address']}: consensus_pubkey must "
                                 f"be 64 hex digits (ed25519), no other participant's")
        participant = Participant(
            address=raw["address"], url=raw["url"], node_pubkey=bytes.fromhex(raw["node_pubkey"]),
            models=[ServedModel(model_id=m["model_id"], weights_sha256=m["weights_sha256"])
                    for m in raw["models"]],
            weight=int(raw.get("weight", params.genesis_weight)), active=True)
        if consensus_key:
            keeper.set_consensus_key(kv, participant, consensus_key)
        keeper.set_participant(kv, participant)
    keeper.fix_draw_weights(kv, 0, params.max_draw_age_blocks)
