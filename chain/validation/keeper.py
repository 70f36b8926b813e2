"""All reads and writes of validation state.

Keys (heights and epochs as 8-byte big-endian, so prefixes iterate in order):
  validation/members/<epoch>                    EpochMembers, fixed at the epoch's first block
  validation/commit/<epoch>/<addr>              SeedCommitment
  validation/task/<id>                          ValidationTask
  validation/finished/<height>/<id>             tasks by finish height (an epoch is a range)
  validation/window/<open_until>/<id>           OPEN tasks, closed once their seals opened
  validation/vote/<vote_open_until>/<id>        IN_VOTE tasks, tallied once their seals opened
  validation/stats/<addr>                       ExecutorStats
  validation/record/<epoch>/<addr>              ValidatorEpochRecord
  validation/judging/<epoch>                    JudgingCursor of an epoch being judged
  validation/summarizing/<epoch>                SummaryCursor of a settled epoch whose
                                                inferences are being cut to summaries
  validation/bond/<epoch>/<addr>/<id>           VoteBond of a vote opened before a reveal
  validation/blockvalue/<height>                the block's random value, kept while a vote
                                                may still draw its voters from it
"""

import hashlib
from collections.abc import Iterator

from chain.auth import address
from chain.gas import GasKV
from chain.store import KVReader
from chain.store.records import ids_under, load, save, uint64
from chain.validation.params import KEY as PARAMS_KEY
from chain.validation.params import ValidationParams
from inferchain_pb.inference.v1.validation_pb2 import (
    EpochMembers,
    ExecutorStats,
    JudgingCursor,
    SeedCommitment,
    SummaryCursor,
    ValidationTask,
    ValidatorEpochRecord,
    VoteBond,
)

MEMBERS = b"validation/members/"
COMMIT = b"validation/commit/"
TASK = b"validation/task/"
FINISHED = b"validation/finished/"
WINDOW = b"validation/window/"
VOTE = b"validation/vote/"
STATS = b"validation/stats/"
RECORD = b"validation/record/"
JUDGING = b"validation/judging/"
SUMMARIZING = b"validation/summarizing/"
BOND = b"validation/bond/"
BLOCK_VALUE = b"validation/blockvalue/"
# The module account holding vote bonds until the reveal that returns or burns them.
BOND_ACCOUNT = hashlib.sha256(b"validation_vote_bonds").digest()[:20]

State = GasKV | KVReader


def _due(kv: GasKV, prefix: bytes, height: int) -> list[str]:
    """Ids under ``prefix`` whose height part is at or below ``height``."""
    ids = []
    for key, _ in kv.iterate(prefix):
        if int.from_bytes(key[len(prefix):len(prefix) + 8], "big") > height:
            break
        ids.append(key[len(prefix) + 8:].decode())
    return ids


class ValidationKeeper:
    def params(self, state: State) -> ValidationParams:
        return ValidationParams.stored(state, PARAMS_KEY)

    def record_block_value(self, kv: GasKV, height: int, value: bytes, keep: int) -> None:
        """Keeps ``height``'s random value and forgets those more than ``keep`` blocks old,
        all of them, so none is left behind when a governance change shortens ``keep``."""
        kv.set(BLOCK_VALUE + uint64(height), value)
        stale = []
        for key, _ in kv.iterate(BLOCK_VALUE):
            if int.from_bytes(key[len(BLOCK_VALUE):], "big") > height - keep:
                break
            stale.append(key)
        for key in stale:
            kv.delete(key)

    def block_value(self, state: State, height: int) -> bytes | None:
        return state.get(BLOCK_VALUE + uint64(height))

    def set_params(self, kv: GasKV, params: ValidationParams) -> None:
        kv.set(PARAMS_KEY, params.to_bytes())

    def members(self, state: State, epoch: int) -> EpochMembers | None:
        return load(state, MEMBERS + uint64(epoch), EpochMembers)

    def set_members(self, kv: GasKV, members: EpochMembers) -> None:
        save(kv, MEMBERS + uint64(members.epoch), members)

    def commitment(self, state: State, epoch: int, addr: str) -> SeedCommitment | None:
        return load(state, COMMIT + uint64(epoch) + address.decode(addr), SeedCommitment)

    def set_commitment(self, kv: GasKV, commitment: SeedCommitment) -> None:
        save(kv, COMMIT + uint64(commitment.epoch) + address.decode(commitment.address),
              commitment)

    def task(self, state: State, inference_id: str) -> ValidationTask | None:
        return load(state, TASK + inference_id.encode(), ValidationTask)

    def add_task(self, kv: GasKV, task: ValidationTask) -> None:
        self.set_task(kv, task)
        kv.set(FINISHED + uint64(task.finish_height) + task.inference_id.encode(), b"")
        kv.set(WINDOW + uint64(task.open_until) + task.inference_id.encode(), b"")

    def set_task(self, kv: GasKV, task: ValidationTask) -> None:
        save(kv, TASK + task.inference_id.encode(), task)

    def drop_task(self, kv: GasKV, task: ValidationTask) -> None:
        """Forgets a closed task, with its index entry."""
        kv.delete(TASK + task.inference_id.encode())
        kv.delete(FINISHED + uint64(task.finish_height) + task.inference_id.encode())

    def task_ids_finished_at(self, state: State, height: int, after_id: str = "") -> list[str]:
        """Ids of the tasks whose inference finished at ``height``, in order, after
        ``after_id``."""
        return ids_under(state, FINISHED + uint64(height), after_id)

    def tasks_finished(self, state: State, from_height: int,
                       to_height: int) -> Iterator[ValidationTask]:
        """Tasks whose inference finished in [from_height, to_height], by height.

        One prefix scan per height: the store iterates by prefix only, and a scan from the
        first task ever would grow with the chain's age.
        """
        for height in range(max(from_height, 1), to_height + 1):
            yield from self.tasks_finished_at(state, height)

    def any_task(self, state: State) -> bool:
        """Whether any inference has finished (a task exists) since the chain began."""
        return next(iter(state.iterate(FINISHED)), None) is not None

    def windows_due(self, kv: GasKV, height: int) -> list[str]:
        return _due(kv, WINDOW, height)

    def close_window(self, kv: GasKV, task: ValidationTask) -> None:
        kv.delete(WINDOW + uint64(task.open_until) + task.inference_id.encode())

    def open_vote(self, kv: GasKV, task: ValidationTask) -> None:
        kv.set(VOTE + uint64(task.vote_open_until) + task.inference_id.encode(), b"")

    def close_vote(self, kv: GasKV, task: ValidationTask) -> None:
        kv.delete(VOTE + uint64(task.vote_open_until) + task.inference_id.encode())

    def votes_due(self, kv: GasKV, height: int) -> list[str]:
        return _due(kv, VOTE, height)

    def open_votes(self, state: State) -> Iterator[ValidationTask]:
        for key, _ in state.iterate(VOTE):
            found = self.task(state, key[len(VOTE) + 8:].decode())
            if found is not None:
                yield found

    def stats(self, state: State, addr: str) -> ExecutorStats:
        found = load(state, STATS + address.decode(addr), ExecutorStats)
        return found if found is not None else ExecutorStats(address=addr)

    def set_stats(self, kv: GasKV, stats: ExecutorStats) -> None:
        save(kv, STATS + address.decode(stats.address), stats)

    def tasks_finished_at(self, state: State, height: int,
                          after_id: str = "") -> Iterator[ValidationTask]:
        """Tasks whose inference finished at ``height``, in id order, after ``after_id``."""
        for inference_id in self.task_ids_finished_at(state, height, after_id):
            found = self.task(state, inference_id)
            if found is not None:
                yield found

    def judging(self, state: State) -> list[JudgingCursor]:
        """Epochs whose judgement is under way, oldest first."""
        return [JudgingCursor.FromString(value) for _, value in state.iterate(JUDGING)]

    def set_judging(self, kv: GasKV, cursor: JudgingCursor) -> None:
        save(kv, JUDGING + uint64(cursor.epoch), cursor)

    def end_judging(self, kv: GasKV, epoch: int) -> None:
        kv.delete(JUDGING + uint64(epoch))

    def forget_epoch(self, kv: GasKV, epoch: int) -> int:
        """Drops the members, seed commitments and validator records of a long-settled
        epoch (its vote bonds were returned or burned when it was judged); how many keys
        went."""
        keys = [k for prefix in (MEMBERS, COMMIT, RECORD)
                for k, _ in kv.iterate(prefix + uint64(epoch))]
        for key in keys:
            kv.delete(key)
        return len(keys)

    def summary_cursors(self, state: State) -> list[SummaryCursor]:
        """Settled epochs whose inferences are being summarized, oldest first."""
        return [SummaryCursor.FromString(value) for _, value in state.iterate(SUMMARIZING)]

    def set_summary_cursor(self, kv: GasKV, cursor: SummaryCursor) -> None:
        save(kv, SUMMARIZING + uint64(cursor.epoch), cursor)

    def end_summary_cursor(self, kv: GasKV, epoch: int) -> None:
        kv.delete(SUMMARIZING + uint64(epoch))

    def record(self, state: State, epoch: int, addr: str) -> ValidatorEpochRecord:
        found = load(state, RECORD + uint64(epoch) + address.decode(addr), ValidatorEpochRecord)
        return found if found is not None else ValidatorEpochRecord(epoch=epoch, address=addr)

    def set_record(self, kv: GasKV, record: ValidatorEpochRecord) -> None:
        save(kv, RECORD + uint64(record.epoch) + address.decode(record.address), record)

    def add_bond(self, kv: GasKV, bond: VoteBond) -> None:
        save(kv, _bond_key(bond.epoch, bond.member) + bond.inference_id.encode(), bond)

    def bonds(self, state: State, epoch: int, addr: str | None = None) -> list[VoteBond]:
        """The bonds held for ``epoch`` (of one member, if given)."""
        prefix = _bond_key(epoch, addr) if addr else BOND + uint64(epoch)
        return [VoteBond.FromString(value) for _, value in state.iterate(prefix)]

    def drop_bond(self, kv: GasKV, bond: VoteBond) -> None:
        kv.delete(_bond_key(bond.epoch, bond.member) + bond.inference_id.encode())


def _bond_key(epoch: int, addr: str) -> bytes:
    return BOND + uint64(epoch) + address.decode(addr) + b"/"
