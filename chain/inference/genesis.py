"""Inference's part of genesis: params, the model registry, and any initial participants.

An exported genesis carries the participants as they stand (counts, heights, status) and
every other record the module keeps (retired models, inferences, their summaries and
indexes, block hashes, draw weights, work, escrows, allowances, used request signatures), and
it restores the draw weights in force instead of fixing new ones.
"""

from dataclasses import asdict
from typing import Any

from chain.auth import address
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.genesis_records import (
    Address,
    AddressThenSlash,
    Amount,
    Hex,
    Keyed,
    Messages,
    Single,
    Text,
    Uint,
    UnexportedState,
    export_records,
    import_records,
)
from chain.inference.keeper import (
    ALLOWANCE,
    BLOCK_HASH,
    CONSENSUS_KEY,
    DRAW_WEIGHTS,
    ESCROW,
    EXPIRY,
    INFERENCE,
    MODEL,
    PARTICIPANT,
    REQUEST_SIG,
    REQUEST_SIG_FLOOR,
    RETIRED_MODEL,
    STATUS,
    SUMMARY,
    WORK,
    InferenceKeeper,
)
from chain.inference.key_commitments import COMMITMENT, COMMITMENT_EXPIRY
from chain.inference.model import (
    DEFAULT_REFERENCES,
    DEFAULT_RULES,
    DEFAULT_THRESHOLDS,
    MODEL_FIELDS,
    RULE_FIELDS,
    model_error,
)
from chain.inference.params import KEY as PARAMS_KEY
from chain.inference.params import InferenceParams
from chain.inference.pass_notices import NOTICE, NOTICE_EXPIRY, NOTICE_TO
from chain.inference.probes import PROBE
from chain.store import KVReader
from chain.store.records import uint64
from inferchain_pb.inference.v1.inference_pb2 import (
    DrawWeights,
    Inference,
    InferenceSummary,
    KeyRequestCommitment,
    Model,
    Participant,
    PassNotice,
    ServedModel,
)

# Nats of top-k logprob distance a validation accepts, from the calibration in
# docs/verification.md: 1.5× the largest honest distance measured (bf16 executors).
# The precision a genesis model is served in when its entry names none: the devnet and the
# tests run fp32 ML nodes on CPU.
DEFAULT_SERVING_DTYPE = "float32"
# What a participant has done since it registered: an exported genesis states these, a new
# chain's participants start from nothing (active, weight from the params).
PARTICIPANT_COUNTS = ("completions", "misses", "passed_over", "registered_height",
                      "invalid_since", "invalid_until", "withdrawn_height")
RECORDS = (
    Messages("retired_models", RETIRED_MODEL, Model, lambda m: m.id.encode()),
    Messages("inferences", INFERENCE, Inference, lambda i: i.id.encode()),
    Keyed("inference_summaries", SUMMARY, (("inference_id", Text()),), "summary",
          InferenceSummary),
    Keyed("expiries", EXPIRY, (("height", Uint()), ("inference_id", Text()))),
    Keyed("status_index", STATUS,
          (("status", Uint(1)), ("height", Uint()), ("inference_id", Text()))),
    Keyed("block_hashes", BLOCK_HASH, (("height", Uint()),), "hash", Hex()),
    Messages("draw_weights", DRAW_WEIGHTS, DrawWeights, lambda d: uint64(d.from_height)),
    Keyed("work", WORK, (("height", Uint()), ("address", Address())), "amount", Amount()),
    Keyed("escrows", ESCROW, (("address", Address()),), "amount", Amount()),
    Keyed("request_signatures", REQUEST_SIG, (("timestamp", Uint()), ("sha256", Hex()))),
    Single("request_signature_floor", REQUEST_SIG_FLOOR, Uint()),
    Keyed("allowances", ALLOWANCE, (("developer", AddressThenSlash()), ("agent", Address())),
          "amount", Amount()),
    Messages("key_request_commitments", COMMITMENT, KeyRequestCommitment,
             lambda c: address.decode(c.transfer_agent) + b"/" + c.inference_id.encode()),
    Keyed("key_request_commitment_expiries", COMMITMENT_EXPIRY,
          (("height", Uint()), ("agent", AddressThenSlash()), ("inference_id", Text()))),
    Messages("pass_notices", NOTICE, PassNotice,
             lambda n: address.decode(n.transfer_agent) + b"/" + uint64(n.attempt) +
             n.inference_id.encode()),
    Keyed("pass_notices_by_pick", NOTICE_TO,
          (("pick", AddressThenSlash()), ("height", Uint()), ("agent", AddressThenSlash()),
           ("attempt", Uint()), ("inference_id", Text()))),
    Keyed("pass_notice_expiries", NOTICE_EXPIRY,
          (("height", Uint()), ("agent", AddressThenSlash()), ("attempt", Uint()),
           ("inference_id", Text()))),
    Keyed("probes", PROBE, (("agent", AddressThenSlash()), ("height", Uint()),
                            ("model_id", Text())), "count", Uint()),
)
# Keys the module's own sections carry (params and the like) rather than records.
STRUCTURED = (PARAMS_KEY, PARTICIPANT, MODEL, CONSENSUS_KEY)


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
        dtype = raw.get("serving_dtype", DEFAULT_SERVING_DTYPE)
        reference, bet = DEFAULT_REFERENCES.get(dtype, (0, 0))
        rule = DEFAULT_RULES.get(dtype, (0, 0, 0, 0))
        entry = Model(
            **{name: int(raw.get(name, default))
               for name, default in zip(RULE_FIELDS, rule, strict=True)},
            id=raw["id"], weights_sha256=raw["weights_sha256"],
            price_per_token=int(raw.get("price_per_token", params.default_price_per_token)),
            context_length=int(raw.get("context_length", 8192)),
            validation_threshold=str(raw.get("validation_threshold",
                                             DEFAULT_THRESHOLDS.get(dtype, ""))),
            top_k=int(raw.get("top_k", params.top_k)), serving_dtype=str(dtype),
            reference_distance_micro=int(raw.get("reference_distance_micro", reference)),
            evidence_bet_ppm=int(raw.get("evidence_bet_ppm", bet)),
            reference_violations_ppm=int(raw.get("reference_violations_ppm", 0)),
            violation_bet_ppm=int(raw.get("violation_bet_ppm", 0)))
        error = model_error(entry)
        if error is not None:
            raise InvalidRequest(f"genesis model {raw['id']!r}: {error}")
        keeper.set_model(kv, entry)
    # Before the participants: one may serve a model governance has retired since.
    import_records(kv, section, RECORDS)
    for raw in section.get("participants", []):
        for served in raw["models"]:
            model = keeper.model(kv, served["model_id"])
            if model is None or model.weights_sha256 != served["weights_sha256"]:
                raise InvalidRequest(f"genesis participant {raw['address']} serves "
                                     f"{served['model_id']!r}, which the registry does not list "
                                     f"with those weights")
            if served.get("dtype", model.serving_dtype) != model.serving_dtype:
                raise InvalidRequest(f"genesis participant {raw['address']} serves "
                                     f"{model.id} in {served['dtype']}, not its registered "
                                     f"{model.serving_dtype}")
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
            models=[ServedModel(model_id=m["model_id"], weights_sha256=m["weights_sha256"],
                                dtype=keeper.model(kv, m["model_id"]).serving_dtype)
                    for m in raw["models"]],
            weight=int(raw.get("weight", params.genesis_weight)), active=True)
        _set_counts(participant, raw)
        if consensus_key:
            keeper.set_consensus_key(kv, participant, consensus_key)
        keeper.set_participant(kv, participant)
    if "draw_weights" not in section:
        keeper.fix_draw_weights(kv, 0, params)


def _set_counts(participant: Participant, raw: dict) -> None:
    """The optional state of an exported participant; absent fields keep a newcomer's."""
    if "active" in raw:
        if type(raw["active"]) is not bool:
            raise InvalidRequest(f"genesis participant {raw['address']}: active must be true "
                                 f"or false")
        participant.active = raw["active"]
    for name in PARTICIPANT_COUNTS:
        if name in raw:
            value = raw[name]
            if type(value) is not int or not 0 <= value < 1 << 63:
                raise InvalidRequest(f"genesis participant {raw['address']}: {name} must be a "
                                     f"non-negative integer")
            setattr(participant, name, value)


def export_genesis(keeper: InferenceKeeper, state: KVReader) -> dict[str, Any]:
    participants = [_participant_entry(p) for p in keeper.participants(state)]
    named = {bytes(p.consensus_pubkey): p.address for p in keeper.participants(state)
             if p.consensus_pubkey}
    indexed = {key[len(CONSENSUS_KEY):]: owner.decode()
               for key, owner in state.iterate(CONSENSUS_KEY)}
    if named != indexed:
        raise UnexportedState("inference: the consensus key index does not match the "
                              "participants' consensus keys")
    return {"params": asdict(keeper.params(state)),
            "models": [{"id": m.id, "weights_sha256": m.weights_sha256,
                        "price_per_token": m.price_per_token,
                        "context_length": m.context_length,
                        "validation_threshold": m.validation_threshold, "top_k": m.top_k,
                        "serving_dtype": m.serving_dtype,
                        "reference_distance_micro": m.reference_distance_micro,
                        "evidence_bet_ppm": m.evidence_bet_ppm,
                        "reference_violations_ppm": m.reference_violations_ppm,
                        "violation_bet_ppm": m.violation_bet_ppm,
                        **{name: getattr(m, name) for name in RULE_FIELDS}}
                       for m in keeper.models(state)],
            "participants": participants,
            **export_records(state, "inference", RECORDS,
                             structured=STRUCTURED)}


def _participant_entry(participant: Participant) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "address": participant.address, "url": participant.url,
        "node_pubkey": participant.node_pubkey.hex(),
        "models": [{"model_id": m.model_id, "weights_sha256": m.weights_sha256,
                    "dtype": m.dtype} for m in participant.models],
        "weight": participant.weight, "active": participant.active,
        **{name: getattr(participant, name) for name in PARTICIPANT_COUNTS}}
    if participant.consensus_pubkey:
        entry["consensus_pubkey"] = participant.consensus_pubkey.hex()
    rebuilt = Participant(
        address=entry["address"], url=entry["url"], node_pubkey=participant.node_pubkey,
        models=participant.models, weight=participant.weight, active=participant.active,
        consensus_pubkey=participant.consensus_pubkey,
        **{name: entry[name] for name in PARTICIPANT_COUNTS})
    if rebuilt.SerializeToString(deterministic=True) != \
            participant.SerializeToString(deterministic=True):
        raise UnexportedState(f"inference: participant {participant.address} holds fields "
                              f"its genesis entry does not carry")
    return entry
