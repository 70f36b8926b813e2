"""All reads and writes of gov state: proposals, their indexes, deposits, votes, params.

Keys (ids and heights as 8-byte big-endian, so prefixes iterate in order):
  gov/next_id                        the next proposal id (ids start at 1)
  gov/proposal/<id>                  Proposal
  gov/status/<status>/<id>           proposals by status
  gov/deposit_end/<height>/<id>      proposals in DEPOSIT_PERIOD, by the height it ends
  gov/voting_end/<height>/<id>       proposals in VOTING_PERIOD, by the height they are tallied
  gov/deposit/<id>/<addr>            Deposit: what one depositor put into one proposal
  gov/vote/<id>/<addr>               Vote: a voter's latest option on one proposal
  gov/upgrade                        SoftwareUpgrade: the last plan governance approved
Deposits sit in the module account GOV_ACCOUNT until they are refunded or burned.
"""

import hashlib
from collections.abc import Iterator

from chain.auth import address
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.gov.params import KEY as PARAMS_KEY
from chain.gov.params import GovParams
from chain.store import KVReader
from chain.store.records import load, save, uint64
from inferchain_pb.inference.v1.gov_pb2 import (
    PROPOSAL_STATUS_DEPOSIT_PERIOD,
    PROPOSAL_STATUS_VOTING_PERIOD,
    Deposit,
    Proposal,
    SoftwareUpgrade,
    Vote,
)

GOV_ACCOUNT = hashlib.sha256(b"gov_deposits").digest()[:20]
NEXT_ID = b"gov/next_id"
PROPOSAL = b"gov/proposal/"
STATUS = b"gov/status/"
DEPOSIT_END = b"gov/deposit_end/"
VOTING_END = b"gov/voting_end/"
DEPOSIT = b"gov/deposit/"
VOTE = b"gov/vote/"
UPGRADE = b"gov/upgrade"

State = GasKV | KVReader


def _status_prefix(status: int) -> bytes:
    """The status index's prefix for one status, stored as one byte: a value outside a byte
    (protobuf enums are open, so a request can carry any int32) is refused, not wrapped."""
    if not 0 <= status <= 0xFF:
        raise InvalidRequest(f"status {status} is outside the status index's range 0..255")
    return STATUS + bytes([status])


def _queue_key(proposal: Proposal) -> bytes | None:
    """Where a proposal waits for its period to end; ended proposals wait nowhere."""
    if proposal.status == PROPOSAL_STATUS_DEPOSIT_PERIOD:
        return DEPOSIT_END + uint64(proposal.deposit_end_height) + uint64(proposal.id)
    if proposal.status == PROPOSAL_STATUS_VOTING_PERIOD:
        return VOTING_END + uint64(proposal.voting_end_height) + uint64(proposal.id)
    return None


class GovKeeper:
    def params(self, state: State) -> GovParams:
        return GovParams.stored(state, PARAMS_KEY)

    def set_params(self, kv: GasKV, params: GovParams) -> None:
        kv.set(PARAMS_KEY, params.to_bytes())

    def new_id(self, kv: GasKV) -> int:
        number = int.from_bytes(kv.get(NEXT_ID) or uint64(1), "big")
        kv.set(NEXT_ID, uint64(number + 1))
        return number

    def proposal(self, state: State, proposal_id: int) -> Proposal | None:
        return load(state, PROPOSAL + uint64(proposal_id), Proposal)

    def save(self, kv: GasKV, proposal: Proposal, previous: Proposal | None) -> None:
        """Stores the proposal and moves it in the status index and the period queues."""
        if previous is not None:
            kv.delete(_status_prefix(previous.status) + uint64(previous.id))
            queued = _queue_key(previous)
            if queued is not None:
                kv.delete(queued)
        save(kv, PROPOSAL + uint64(proposal.id), proposal)
        kv.set(_status_prefix(proposal.status) + uint64(proposal.id), b"")
        queued = _queue_key(proposal)
        if queued is not None:
            kv.set(queued, b"")

    def proposals(self, state: State, status: int | None = None) -> Iterator[Proposal]:
        """By id; only those of ``status`` when given."""
        if status is None:
            for _, data in state.iterate(PROPOSAL):
                yield Proposal.FromString(data)
            return
        prefix = _status_prefix(status)
        for key, _ in state.iterate(prefix):
            found = self.proposal(state, int.from_bytes(key[len(prefix):], "big"))
            if found is not None:
                yield found

    def deposit_ends_due(self, kv: GasKV, height: int) -> list[int]:
        return self._due(kv, DEPOSIT_END, height)

    def voting_ends_due(self, kv: GasKV, height: int) -> list[int]:
        return self._due(kv, VOTING_END, height)

    def add_deposit(self, kv: GasKV, proposal_id: int, depositor: str, amount: int) -> None:
        key = DEPOSIT + uint64(proposal_id) + address.decode(depositor)
        earlier = load(kv, key, Deposit)
        total = amount + (earlier.amount if earlier is not None else 0)
        save(kv, key, Deposit(proposal_id=proposal_id, depositor=depositor, amount=total))

    def deposits(self, state: State, proposal_id: int) -> Iterator[Deposit]:
        for _, data in state.iterate(DEPOSIT + uint64(proposal_id)):
            yield Deposit.FromString(data)

    def set_vote(self, kv: GasKV, vote: Vote) -> None:
        """One vote per voter: a later vote overwrites the earlier one."""
        save(kv, VOTE + uint64(vote.proposal_id) + address.decode(vote.voter), vote)

    def votes(self, state: State, proposal_id: int) -> Iterator[Vote]:
        for _, data in state.iterate(VOTE + uint64(proposal_id)):
            yield Vote.FromString(data)

    def upgrade_plan(self, state: State) -> SoftwareUpgrade | None:
        return load(state, UPGRADE, SoftwareUpgrade)

    def set_upgrade_plan(self, kv: GasKV, plan: SoftwareUpgrade) -> None:
        save(kv, UPGRADE, plan)

    @staticmethod
    def _due(kv: GasKV, prefix: bytes, height: int) -> list[int]:
        """Proposal ids queued under ``prefix`` at a height at or below ``height``."""
        ids = []
        for key, _ in kv.iterate(prefix):
            if int.from_bytes(key[len(prefix):len(prefix) + 8], "big") > height:
                break
            ids.append(int.from_bytes(key[len(prefix) + 8:], "big"))
        return ids
