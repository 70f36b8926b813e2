"""All reads and writes of inference state: participants, models, inferences and indexes.

Keys:
  inference/participant/<addr>                 Participant
  inference/model/<id>                         Model
  inference/retired/<id>                       Model retired by governance
  inference/inference/<id>                     Inference
  inference/expiry/<height>/<id>               lone Start or Finish expiring at that height
  inference/status/<status>/<height>/<id>      by status and height of the last change
  inference/blockhash/<height>                 recent block hashes, seeding the draw
  inference/work/<height>/<addr>               fees earned by inferences finished at that
                                               height, paid out at the epoch's settlement
  inference/escrow/<addr>                      a developer's coins held for open inferences
  inference/requestsig/<sha256(signature)>     request signatures already used
  inference/allowance/<developer>/<agent>      what a developer lets a transfer agent spend
  inference/consensuskey/<ed25519 key>         the participant that named this validator key
Escrowed and earned coins sit in the module account ESCROW_ACCOUNT, so the bank's supply
never changes and ESCROW_ACCOUNT's balance always equals escrows plus work balances.
"""

import hashlib
from collections.abc import Iterator

from chain.auth import address
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.inference.draw import Candidate
from chain.inference.params import KEY as PARAMS_KEY
from chain.inference.params import InferenceParams
from chain.store import KVReader
from chain.store.records import load, save, uint64
from inferchain_pb.inference.v1.inference_pb2 import Inference, Model, Participant

ESCROW_ACCOUNT = hashlib.sha256(b"inference_escrow").digest()[:20]
PARTICIPANT = b"inference/participant/"
MODEL = b"inference/model/"
RETIRED_MODEL = b"inference/retired/"
INFERENCE = b"inference/inference/"
EXPIRY = b"inference/expiry/"
STATUS = b"inference/status/"
BLOCK_HASH = b"inference/blockhash/"
WORK = b"inference/work/"
ESCROW = b"inference/escrow/"
REQUEST_SIG = b"inference/requestsig/"
ALLOWANCE = b"inference/allowance/"
CONSENSUS_KEY = b"inference/consensuskey/"
MILLION = 1_000_000

State = GasKV | KVReader


def _status_prefix(status: int) -> bytes:
    """The status index's prefix for one status, stored as one byte: a value outside a byte
    (protobuf enums are open, so a request can carry any int32) is refused, not wrapped."""
    if not 0 <= status <= 0xFF:
        raise InvalidRequest(f"status {status} is outside the status index's range 0..255")
    return STATUS + bytes([status])


def _amount(state: State, key: bytes) -> int:
    return int(state.get(key) or b"0")


class InferenceKeeper:
    def params(self, state: State) -> InferenceParams:
        return InferenceParams.stored(state, PARAMS_KEY)

    def set_params(self, kv: GasKV, params: InferenceParams) -> None:
        kv.set(PARAMS_KEY, params.to_bytes())

    def participant(self, state: State, addr: str) -> Participant | None:
        return load(state, PARTICIPANT + address.decode(addr), Participant)

    def participants(self, state: State) -> Iterator[Participant]:
        for _, data in state.iterate(PARTICIPANT):
            yield Participant.FromString(data)

    def set_participant(self, kv: GasKV, participant: Participant) -> None:
        save(kv, PARTICIPANT + address.decode(participant.address), participant)

    def consensus_key_owner(self, state: State, key: bytes) -> str | None:
        owner = state.get(CONSENSUS_KEY + key)
        return owner.decode() if owner is not None else None

    def set_consensus_key(self, kv: GasKV, participant: Participant, key: bytes) -> None:
        """Names ``key`` as the participant's validator, releasing the key it had."""
        if participant.consensus_pubkey:
            kv.delete(CONSENSUS_KEY + participant.consensus_pubkey)
        kv.set(CONSENSUS_KEY + key, participant.address.encode())
        participant.consensus_pubkey = key

    def model(self, state: State, model_id: str) -> Model | None:
        """A registered or retired model: inferences started before a retirement still
        settle and are validated against the model's record."""
        found = load(state, MODEL + model_id.encode(), Model)
        return found if found is not None else self.retired_model(state, model_id)

    def retired_model(self, state: State, model_id: str) -> Model | None:
        return load(state, RETIRED_MODEL + model_id.encode(), Model)

    def models(self, state: State) -> Iterator[Model]:
        """The registry: models that may be served and started, retired ones left out."""
        for _, data in state.iterate(MODEL):
            yield Model.FromString(data)

    def retire_model(self, kv: GasKV, model: Model) -> None:
        kv.delete(MODEL + model.id.encode())
        save(kv, RETIRED_MODEL + model.id.encode(), model)

    def set_model(self, kv: GasKV, model: Model) -> None:
        save(kv, MODEL + model.id.encode(), model)

    def inference(self, state: State, inference_id: str) -> Inference | None:
        return load(state, INFERENCE + inference_id.encode(), Inference)

    def save_inference(self, kv: GasKV, inference: Inference, height: int,
                       previous: Inference | None) -> None:
        """Stores the inference and moves it in the status index to (status, height)."""
        if previous is not None:
            kv.delete(self._status_key(previous.status, previous.status_height, previous.id))
        inference.status_height = height
        save(kv, INFERENCE + inference.id.encode(), inference)
        kv.set(self._status_key(inference.status, height, inference.id), b"")

    def inferences_by_status(self, state: State, status: int, from_height: int,
                             to_height: int) -> Iterator[Inference]:
        """Inferences of ``status`` whose last change is in [from_height, to_height], by height.

        One prefix scan per height: the store iterates by prefix only, and a scan from the
        first height would grow with the chain's age, so callers bound the range.
        """
        status_prefix = _status_prefix(status)
        for height in range(max(from_height, 1), to_height + 1):
            prefix = status_prefix + uint64(height)
            for key, _ in state.iterate(prefix):
                found = self.inference(state, key[len(prefix):].decode())
                if found is not None:
                    yield found

    def schedule_expiry(self, kv: GasKV, inference_id: str, height: int) -> None:
        kv.set(EXPIRY + uint64(height) + inference_id.encode(), b"")

    def cancel_expiry(self, kv: GasKV, inference_id: str, height: int) -> None:
        kv.delete(EXPIRY + uint64(height) + inference_id.encode())

    def due(self, kv: GasKV, height: int) -> list[str]:
        """Ids whose lone Start or Finish expires at or before ``height``."""
        ids = []
        for key, _ in kv.iterate(EXPIRY):
            if int.from_bytes(key[len(EXPIRY):len(EXPIRY) + 8], "big") > height:
                break
            ids.append(key[len(EXPIRY) + 8:].decode())
        return ids

    def record_block_hash(self, kv: GasKV, height: int, block_hash: bytes, keep: int) -> None:
        kv.set(BLOCK_HASH + uint64(height), block_hash)
        if height > keep:
            kv.delete(BLOCK_HASH + uint64(height - keep))

    def block_hash(self, state: State, height: int) -> bytes | None:
        return state.get(BLOCK_HASH + uint64(height))

    def candidates(self, state: State, model: Model, draw_height: int) -> list[Candidate]:
        """Active participants serving the model with the registry's weights that a draw
        seeded at ``draw_height`` may pick: registered by then and not INVALID then."""
        return [Candidate(p.address, p.weight, availability_ppm(p))
                for p in self.participants(state)
                if p.active and drawable(p, draw_height) and any(m.model_id == model.id and
                                    m.weights_sha256 == model.weights_sha256 for m in p.models)]

    def work_balance(self, state: State, addr: bytes) -> int:
        """Fees earned and not yet settled, over every unsettled epoch."""
        return sum(int(value) for key, value in state.iterate(WORK) if key[-len(addr):] == addr
                   and len(key) == len(WORK) + 8 + len(addr))

    def work_at(self, state: State, height: int, addr: bytes) -> int:
        return _amount(state, WORK + uint64(height) + addr)

    def add_work(self, kv: GasKV, height: int, addr: bytes, amount: int) -> None:
        """Credits (or with a negative amount takes back) fees of inferences finished at
        ``height``: keeping the height lets a refund or a validator's share come from the
        very epoch the fee was earned in."""
        key = WORK + uint64(height) + addr
        left = self.work_at(kv, height, addr) + amount
        if left:
            kv.set(key, str(left).encode())
        else:
            kv.delete(key)

    def work_between(self, state: State, first: int, last: int) -> dict[bytes, int]:
        """Fees earned at heights [first, last], by raw address."""
        earned: dict[bytes, int] = {}
        for key, value in state.iterate(WORK):
            height = int.from_bytes(key[len(WORK):len(WORK) + 8], "big")
            if height > last:
                break
            if height >= first:
                addr = key[len(WORK) + 8:]
                earned[addr] = earned.get(addr, 0) + int(value)
        return earned

    def clear_work(self, kv: GasKV, first: int, last: int) -> None:
        for key in [k for k, _ in kv.iterate(WORK)
                    if first <= int.from_bytes(k[len(WORK):len(WORK) + 8], "big") <= last]:
            kv.delete(key)

    def escrow_of(self, state: State, addr: bytes) -> int:
        return _amount(state, ESCROW + addr)

    def change_escrow(self, kv: GasKV, addr: bytes, delta: int) -> None:
        left = self.escrow_of(kv, addr) + delta
        if left:
            kv.set(ESCROW + addr, str(left).encode())
        else:
            kv.delete(ESCROW + addr)

    def allowance(self, state: State, developer: bytes, agent: bytes) -> int:
        return _amount(state, ALLOWANCE + developer + b"/" + agent)

    def set_allowance(self, kv: GasKV, developer: bytes, agent: bytes, amount: int) -> None:
        key = ALLOWANCE + developer + b"/" + agent
        if amount:
            kv.set(key, str(amount).encode())
        else:
            kv.delete(key)

    def release_escrow(self, kv: GasKV, inference: Inference, refund: int) -> None:
        """The inference's escrow leaves the books; a refund from an allowance refills it."""
        developer = address.decode(inference.developer)
        self.change_escrow(kv, developer, -inference.escrow)
        if inference.via_allowance and refund:
            agent = address.decode(inference.transfer_agent)
            self.set_allowance(kv, developer, agent,
                               self.allowance(kv, developer, agent) + refund)

    def use_request_signature(self, kv: GasKV, signature: bytes) -> bool:
        """Marks a developer request signature used; False if it was already."""
        key = REQUEST_SIG + hashlib.sha256(signature).digest()
        if kv.get(key) is not None:
            return False
        kv.set(key, b"")
        return True

    @staticmethod
    def _status_key(status: int, height: int, inference_id: str) -> bytes:
        return _status_prefix(status) + uint64(height) + inference_id.encode()


def invalid_now(participant: Participant) -> bool:
    return participant.invalid_since > 0 and participant.invalid_until == 0


def drawable(participant: Participant, draw_height: int) -> bool:
    """Whether a draw seeded at ``draw_height`` includes the participant. Judging by the draw
    height, not by the state when the start arrives, keeps a transfer agent's draw valid when
    a participant registers or becomes (or stops being) INVALID while the request is served."""
    if participant.registered_height > draw_height:
        return False
    invalid = participant.invalid_since
    return not (invalid and invalid <= draw_height
                and (not participant.invalid_until or draw_height < participant.invalid_until))


def availability_ppm(participant: Participant) -> int:
    """Share of assigned inferences completed, with one free success so newcomers start at 1."""
    done = participant.completions + 1
    return MILLION * done // (done + participant.misses)
