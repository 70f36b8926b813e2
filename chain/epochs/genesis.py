"""Epochs' part of genesis: its params, and in an exported genesis the epochs' records (PoC
seeds, submissions and nonces, settlements), the CometBFT validator set as the chain last
set it, and the block beacon's last value with the validator keys its proofs verify under."""

from dataclasses import asdict
from typing import Any

from chain.auth import address
from chain.epochs import beacon, validator_set
from chain.epochs.keeper import (
    BATCH,
    NONCE,
    SAMPLE_SEED,
    SEED_HASH,
    SETTLEMENT,
    SUBMISSION,
    EpochKeeper,
)
from chain.epochs.params import KEY as PARAMS_KEY
from chain.epochs.params import EpochsParams
from chain.gas import GasKV
from chain.genesis_records import (
    Address,
    Hex,
    Keyed,
    Messages,
    Single,
    Uint,
    export_records,
    import_records,
)
from chain.store import KVReader
from chain.store.records import uint64
from inferchain_pb.inference.v1.epochs_pb2 import (
    ConsensusValidators,
    EpochSettlement,
    PocNonceBatch,
    PocSubmission,
)

RECORDS = (
    Single("consensus_validators", validator_set.KEY, ConsensusValidators),
    Single("beacon", beacon.VALUE, Hex()),
    Keyed("proposer_keys", beacon.PROPOSER_KEY, (("address", Hex()),), "pubkey", Hex()),
    Keyed("seed_hashes", SEED_HASH, (("epoch", Uint()),), "hash", Hex()),
    Keyed("sample_seeds", SAMPLE_SEED, (("epoch", Uint()),), "hash", Hex()),
    Messages("poc_submissions", SUBMISSION, PocSubmission,
             lambda s: uint64(s.epoch) + address.decode(s.participant)),
    Keyed("poc_batches", BATCH,
          (("epoch", Uint()), ("participant", Address()), ("index", Uint())),
          "batch", PocNonceBatch),
    Keyed("poc_nonces", NONCE,
          (("epoch", Uint()), ("participant", Address()), ("nonce", Uint()))),
    Messages("settlements", SETTLEMENT, EpochSettlement, lambda s: uint64(s.epoch)),
)
# Keys the module's own sections carry (params and the like) rather than records.
STRUCTURED = (PARAMS_KEY,)


def init_genesis(keeper: EpochKeeper, kv: GasKV, section: dict) -> None:
    keeper.set_params(kv, EpochsParams.from_dict(section.get("params", {})))
    import_records(kv, section, RECORDS)


def export_genesis(keeper: EpochKeeper, state: KVReader) -> dict[str, Any]:
    return {"params": asdict(keeper.params(state)),
            **export_records(state, "epochs", RECORDS, structured=STRUCTURED)}
