"""Epoch arithmetic and the epochs module's state (docs/design.md §7).

Epoch e covers heights [1 + e·L, (e + 1)·L]. Its first ``poc_window_blocks`` blocks are the
proof-of-compute window, the next ``poc_validation_window_blocks`` the members' checks of
it, the rest inference only. Epochs and stages are functions of the height and the params;
state holds what happened in them.

Keys (epochs and nonces as 8-byte big-endian, so prefixes iterate in order):
  epochs/params
  epochs/seedhash/<epoch>                   the epoch's first block hash: seeds its PoC
  epochs/sampleseed/<epoch>                 the first block hash after the PoC window
  epochs/poc/<epoch>/<addr>                 PocSubmission
  epochs/pocbatch/<epoch>/<addr>/<index>    PocNonceBatch, in the order submitted
  epochs/pocnonce/<epoch>/<addr>/<nonce>    a claimed nonce (no nonce counts twice)
  epochs/settlement/<epoch>                 EpochSettlement
"""

from collections.abc import Iterator

from chain.auth import address
from chain.epochs.params import KEY as PARAMS_KEY
from chain.epochs.params import EpochsParams
from chain.gas import GasKV
from chain.store import KVReader
from chain.store.records import load, save, uint64
from inferchain_pb.inference.v1.epochs_pb2 import (
    INFERENCE,
    POC,
    POC_VALIDATION,
    Epoch,
    EpochSettlement,
    PocNonce,
    PocNonceBatch,
    PocSubmission,
)

SEED_HASH = b"epochs/seedhash/"
SAMPLE_SEED = b"epochs/sampleseed/"
SUBMISSION = b"epochs/poc/"
BATCH = b"epochs/pocbatch/"
NONCE = b"epochs/pocnonce/"
SETTLEMENT = b"epochs/settlement/"

State = GasKV | KVReader


class EpochKeeper:
    def params(self, state: State) -> EpochsParams:
        return EpochsParams.stored(state, PARAMS_KEY)

    def set_params(self, kv: GasKV, params: EpochsParams) -> None:
        kv.set(PARAMS_KEY, params.to_bytes())

    def length(self, state: State) -> int:
        return self.params(state).epoch_length_blocks

    def epoch_of(self, state: State, height: int) -> int:
        return self.params(state).epoch_of(height)

    def start_of(self, state: State, epoch: int) -> int:
        return self.params(state).start_of(epoch)

    def poc_end(self, state: State, epoch: int) -> int:
        """The PoC window's last height (the epoch's start − 1 when PoC is off)."""
        return self.params(state).poc_end(epoch)

    def poc_validation_end(self, state: State, epoch: int) -> int:
        return self.params(state).poc_validation_end(epoch)

    def current(self, state: State, height: int) -> Epoch:
        params = self.params(state)
        number = params.epoch_of(height)
        poc_end, checks_end = params.poc_end(number), params.poc_validation_end(number)
        stage = POC if height <= poc_end else POC_VALIDATION if height <= checks_end \
            else INFERENCE
        return Epoch(number=number, start_height=params.start_of(number),
                     length=params.epoch_length_blocks, stage=stage, poc_end_height=poc_end,
                     poc_validation_end_height=checks_end,
                     poc_block_hash=state.get(SEED_HASH + uint64(number)) or b"",
                     poc_sample_seed=state.get(SAMPLE_SEED + uint64(number)) or b"")

    def set_seed_hash(self, kv: GasKV, epoch: int, block_hash: bytes) -> None:
        """The epoch's first block hash: seeds every participant's PoC."""
        kv.set(SEED_HASH + uint64(epoch), block_hash)

    def set_sample_seed(self, kv: GasKV, epoch: int, block_hash: bytes) -> None:
        """The first block hash after the PoC window: picks the nonces members check."""
        kv.set(SAMPLE_SEED + uint64(epoch), block_hash)

    # Proof-of-compute submissions.

    def submission(self, state: State, epoch: int, addr: str) -> PocSubmission | None:
        return load(state, SUBMISSION + uint64(epoch) + address.decode(addr), PocSubmission)

    def set_submission(self, kv: GasKV, submission: PocSubmission) -> None:
        save(kv, SUBMISSION + uint64(submission.epoch) + address.decode(submission.participant),
             submission)

    def submissions(self, state: State, epoch: int) -> Iterator[PocSubmission]:
        for _, data in state.iterate(SUBMISSION + uint64(epoch)):
            yield PocSubmission.FromString(data)

    def add_nonces(self, kv: GasKV, submission: PocSubmission,
                   nonces: list[PocNonce]) -> None:
        raw = address.decode(submission.participant)
        prefix = uint64(submission.epoch) + raw
        for nonce in nonces:
            kv.set(NONCE + prefix + uint64(nonce.nonce), b"")
        save(kv, BATCH + prefix + uint64(submission.batches), PocNonceBatch(nonces=nonces))
        submission.batches += 1
        submission.nonces += len(nonces)
        submission.last_nonce = max(submission.last_nonce, max(n.nonce for n in nonces))
        self.set_submission(kv, submission)

    def claimed(self, state: State, epoch: int, addr: str, nonce: int) -> bool:
        return state.get(NONCE + uint64(epoch) + address.decode(addr) + uint64(nonce)) \
            is not None

    def nonces(self, state: State, epoch: int, addr: str) -> list[PocNonce]:
        found: list[PocNonce] = []
        for _, data in state.iterate(BATCH + uint64(epoch) + address.decode(addr)):
            found.extend(PocNonceBatch.FromString(data).nonces)
        return found

    def forget_epoch(self, kv: GasKV, epoch: int) -> int:
        """Drops every record of a long-settled epoch; how many keys went."""
        keys = [SEED_HASH + uint64(epoch), SAMPLE_SEED + uint64(epoch),
                SETTLEMENT + uint64(epoch)]
        for prefix in (SUBMISSION, BATCH, NONCE):
            keys.extend(k for k, _ in kv.iterate(prefix + uint64(epoch)))
        present = [k for k in keys if kv.get(k) is not None]
        for key in present:
            kv.delete(key)
        return len(present)

    def prune_nonces(self, kv: GasKV, epoch: int) -> None:
        """Drops an epoch's nonces once its weights are settled; the summaries stay."""
        for prefix in (BATCH, NONCE):
            for key in [k for k, _ in kv.iterate(prefix + uint64(epoch))]:
                kv.delete(key)

    # Settlement.

    def settlement(self, state: State, epoch: int) -> EpochSettlement | None:
        return load(state, SETTLEMENT + uint64(epoch), EpochSettlement)

    def set_settlement(self, kv: GasKV, settlement: EpochSettlement) -> None:
        save(kv, SETTLEMENT + uint64(settlement.epoch), settlement)
