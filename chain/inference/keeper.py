"""All reads and writes of inference state: participants, models, inferences and indexes.

Keys:
  inference/participant/<addr>                 Participant
  inference/model/<id>                         Model
  inference/retired/<id>                       Model retired by governance
  inference/inference/<id>                     Inference, while it can still change
  inference/summary/<id>                       InferenceSummary, once nothing can change it
  inference/expiry/<height>/<id>               lone Start or Finish expiring at that height
  inference/status/<status>/<height>/<id>      by status and height of the last change
  inference/blockhash/<height>                 recent block hashes, seeding the draw, each
                                               followed by its block time (8-byte ns)
  inference/drawweights/<height>               DrawWeights: the draw's candidate weights and
                                               the members' models from that height on
                                               (fixed at epoch starts)
  inference/work/<height>/<addr>               fees earned by inferences finished at that
                                               height, paid out at the epoch's settlement
  inference/escrow/<addr>                      a developer's coins held for open inferences
  inference/requestsig/<timestamp>/<sha256(signature)>
                                               request signatures already used, by their
                                               request's timestamp (8-byte seconds), kept
                                               while that timestamp is inside the window
  inference/requestsigfloor                    timestamps below it have had their used
                                               signatures forgotten (8-byte seconds)
  inference/allowance/<developer>/<agent>      what a developer lets a transfer agent spend
  inference/consensuskey/<ed25519 key>         the participant that named this validator key
Escrowed and earned coins sit in the module account ESCROW_ACCOUNT, so the bank's supply
never changes and ESCROW_ACCOUNT's balance always equals escrows plus work balances.
"""

import functools
import hashlib
from collections.abc import Iterator

from chain.auth import address
from chain.errors import InvalidRequest
from chain.gas import GasKV
from chain.inference.checkers import ModelCheckers
from chain.inference.draw import BLOCK_HASH_SIZE, Candidate, DrawPool, NoEligibleExecutor
from chain.inference.errors import UnknownModel
from chain.inference.params import KEY as PARAMS_KEY
from chain.inference.params import InferenceParams
from chain.scales import PPM
from chain.store import KVReader
from chain.store.records import due_under, ids_under, load, save, uint64
from inferchain_pb.inference.v1.inference_pb2 import (
    DrawWeight,
    DrawWeights,
    Inference,
    InferenceSummary,
    Model,
    Participant,
)

ESCROW_ACCOUNT = hashlib.sha256(b"inference_escrow").digest()[:20]
PARTICIPANT = b"inference/participant/"
MODEL = b"inference/model/"
RETIRED_MODEL = b"inference/retired/"
INFERENCE = b"inference/inference/"
SUMMARY = b"inference/summary/"
EXPIRY = b"inference/expiry/"
STATUS = b"inference/status/"
BLOCK_HASH = b"inference/blockhash/"
DRAW_WEIGHTS = b"inference/drawweights/"
WORK = b"inference/work/"
ESCROW = b"inference/escrow/"
REQUEST_SIG = b"inference/requestsig/"
REQUEST_SIG_FLOOR = b"inference/requestsigfloor"
ALLOWANCE = b"inference/allowance/"
CONSENSUS_KEY = b"inference/consensuskey/"
# Draw pools kept built: the draw window reaches one or two draw-weights records, and queries
# of older heights may want a few more.
POOLS_KEPT = 4

State = GasKV | KVReader


def _status_prefix(status: int) -> bytes:
    """The status index's prefix for one status, stored as one byte: a value outside a byte
    (protobuf enums are open, so a request can carry any int32) is refused, not wrapped."""
    if not 0 <= status <= 0xFF:
        raise InvalidRequest(f"status {status} is outside the status index's range 0..255")
    return STATUS + bytes([status])


def _request_stamp(key: bytes) -> int:
    """The request timestamp a used-signature key is filed under."""
    return int.from_bytes(key[len(REQUEST_SIG):len(REQUEST_SIG) + 8], "big")


class DrawUnavailable(ValueError):
    """The draw at that height cannot be computed: its block hash or weights are gone."""


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
        """A registered or retired model: inferences started before a retirement are still
        charged and validated against the model's record."""
        found = load(state, MODEL + model_id.encode(), Model)
        return found if found is not None else self.retired_model(state, model_id)

    def retired_model(self, state: State, model_id: str) -> Model | None:
        return load(state, RETIRED_MODEL + model_id.encode(), Model)

    def live_model(self, state: State, model_id: str) -> Model:
        """A model that new work may name (a start, a served model, a probe); a Finish reads
        ``model`` instead, so an inference started before a retirement still completes."""
        found = self.model(state, model_id)
        if found is None:
            raise UnknownModel(f"model {model_id[:80]!r} is not in the registry")
        if self.retired_model(state, model_id) is not None:
            raise UnknownModel(f"model {model_id[:80]!r} was retired by governance")
        return found

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
        """The full record while the inference can change, else the one read back from its
        summary (``summarized_height`` set, prompt, output and artifact empty)."""
        found = load(state, INFERENCE + inference_id.encode(), Inference)
        if found is not None:
            return found
        summary = load(state, SUMMARY + inference_id.encode(), InferenceSummary)
        return _from_summary(inference_id, summary) if summary is not None else None

    def summarize(self, kv: GasKV, inference_id: str, checks: int, height: int) -> None:
        """Replaces the full record by its summary and takes it out of the status index:
        called once nothing can change the inference (its epoch settled, its checks closed).
        The summary keeps what a developer or an auditor asks of a settled inference and the
        sha256 of the record it replaced."""
        data = kv.get(INFERENCE + inference_id.encode())
        if data is None:
            return
        record = Inference.FromString(data)
        kv.delete(self._status_key(record.status, record.status_height, inference_id))
        kv.delete(INFERENCE + inference_id.encode())
        save(kv, SUMMARY + inference_id.encode(), InferenceSummary(
            status=record.status, model_id=record.model_id,
            developer=_raw(record.developer), transfer_agent=_raw(record.transfer_agent),
            executor=_raw(record.executor), cost=record.cost,
            prompt_tokens=record.prompt_tokens, output_tokens=record.output_tokens,
            start_height=record.start_height, finish_height=record.finish_height,
            status_height=record.status_height, started=record.started,
            finished=record.finished, record_sha256=hashlib.sha256(data).digest(),
            summarized_height=height, checks=checks, starter=_raw(record.starter),
            agent_fee=record.agent_fee, draw_height=record.draw_height, attempt=record.attempt))

    def save_inference(self, kv: GasKV, inference: Inference, height: int,
                       previous: Inference | None) -> None:
        """Stores the inference and moves it in the status index to (status, height). A
        summarized ``previous`` (a lone Finish that a later Start voids) leaves with it."""
        if previous is not None and previous.summarized_height:
            kv.delete(SUMMARY + previous.id.encode())
        elif previous is not None:
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
        for height in range(max(from_height, 1), to_height + 1):
            for inference_id in self.ids_by_status_at(state, status, height):
                found = self.inference(state, inference_id)
                if found is not None:
                    yield found

    def ids_by_status_at(self, state: State, status: int, height: int,
                         after_id: str = "") -> list[str]:
        """Ids of the inferences whose status changed to ``status`` at ``height``, in
        order, after ``after_id``."""
        return ids_under(state, _status_prefix(status) + uint64(height), after_id)

    def schedule_expiry(self, kv: GasKV, inference_id: str, height: int) -> None:
        kv.set(EXPIRY + uint64(height) + inference_id.encode(), b"")

    def cancel_expiry(self, kv: GasKV, inference_id: str, height: int) -> None:
        kv.delete(EXPIRY + uint64(height) + inference_id.encode())

    def due(self, kv: GasKV, height: int) -> list[str]:
        """Ids whose lone Start or Finish expires at or before ``height``."""
        return [suffix.decode() for suffix in due_under(kv, EXPIRY, height)]

    def record_block_hash(self, kv: GasKV, height: int, block_hash: bytes, time_ns: int,
                          keep: int) -> None:
        kv.set(BLOCK_HASH + uint64(height), block_hash + uint64(time_ns))
        if height > keep:
            kv.delete(BLOCK_HASH + uint64(height - keep))

    def block_hash(self, state: State, height: int) -> bytes | None:
        found = state.get(BLOCK_HASH + uint64(height))
        return found[:BLOCK_HASH_SIZE] if found is not None else None

    def block_time_ns(self, state: State, height: int) -> int | None:
        found = state.get(BLOCK_HASH + uint64(height))
        if found is None or len(found) != BLOCK_HASH_SIZE + 8:
            return None
        return int.from_bytes(found[BLOCK_HASH_SIZE:], "big")

    def request_draw_height(self, state: State, timestamp: int) -> int | None:
        """The height a request signed at ``timestamp`` (seconds) draws at: the first kept
        block whose time is at or after it, a block nobody knew when the request was signed.
        None while no such block exists yet, or when the one before it is no longer kept (its
        time, and so whether the later block is the first, cannot be told)."""
        bound = timestamp * 1_000_000_000
        before: int | None = None  # the previous kept block's time
        for key, value in state.iterate(BLOCK_HASH):
            height = int.from_bytes(key[len(BLOCK_HASH):], "big")
            time_ns = int.from_bytes(value[BLOCK_HASH_SIZE:], "big") \
                if len(value) == BLOCK_HASH_SIZE + 8 else None
            if time_ns is not None and time_ns >= bound:
                return height if height == 1 or (before is not None and before < bound) \
                    else None
            before = time_ns
        return None

    def draws_at(self, state: State, timestamp: int, height: int) -> bool:
        """Whether a request signed at ``timestamp`` draws at ``height``, as
        request_draw_height would say, from the two blocks that decide it instead of a scan
        of every kept block: block times only rise (CometBFT's and the solo clock's), so
        ``height`` is the first kept block at or after the timestamp exactly when its time is
        and the kept block before it is earlier."""
        bound = timestamp * 1_000_000_000
        time_ns = self.block_time_ns(state, height)
        if time_ns is None or time_ns < bound:
            return False
        if height == 1:
            return True
        before = self.block_time_ns(state, height - 1)
        return before is not None and before < bound

    def draw(self, state: State, inference_id: str, model: Model,
             draw_height: int) -> Iterator[str]:
        """The draw order of ``inference_id`` seeded at ``draw_height``, computed pick by pick
        as it is read: the one computation behind MsgStartInference's check and the Draw
        query that transfer agents and executors use, so all of them agree whatever happened
        after ``draw_height``.

        The picks come from the draw-weights record in force at ``draw_height`` (its pool
        built once for every draw from it); a pick that is not a candidate then (registered
        after it, withdrawn or INVALID at it, or not serving the model now) is passed over.
        Reading a participant per pick instead of every participant per draw keeps a start's
        cost flat as the network grows, and passing over leaves each candidate's chances as
        if the pool had held the candidates only: a weighted draw without replacement ranks
        any subset as it would rank that subset alone.

        Raises DrawUnavailable when the height's hash or weights are no longer kept, and
        NoEligibleExecutor (when the order is read) when nobody could be drawn then.
        """
        block_hash = self.block_hash(state, draw_height)
        if block_hash is None:
            raise DrawUnavailable(f"no block hash recorded for height {draw_height}")
        record = self._draw_weights_record(state, draw_height)
        if record is None:
            raise DrawUnavailable(f"no draw weights recorded for height {draw_height}")
        picks = _pool_of(record).order(inference_id, block_hash)
        return self._candidates(state, picks, model, draw_height, _checkers_of(record))

    def _candidates(self, state: State, picks: Iterator[str], model: Model,
                    draw_height: int, checkers: ModelCheckers) -> Iterator[str]:
        drawn = unchecked = False
        for pick in picks:
            participant = self.participant(state, pick)
            if participant is None or not drawable(participant, draw_height) or not any(
                    m.model_id == model.id and m.weights_sha256 == model.weights_sha256
                    for m in participant.models):
                continue
            if not checkers.checkable(pick, model.id):
                unchecked = True
                continue
            drawn = True
            yield pick
        if unchecked and not drawn:
            raise NoEligibleExecutor(
                f"too few validators serve {model.id} this epoch to check its output (it "
                f"needs one besides the executor, and {checkers.share_ppm} ppm of the weight)")
        if not drawn:
            raise NoEligibleExecutor(f"nobody serving {model.id} could be drawn at height "
                                     f"{draw_height}")

    def draw_weights(self, state: State, height: int) -> DrawWeights | None:
        """The record in force at ``height``: the latest one from at or before it."""
        found = self._draw_weights_record(state, height)
        return DrawWeights.FromString(found) if found is not None else None

    def checkers(self, state: State, height: int) -> ModelCheckers:
        """Who serves each model in the draw-weights record in force at ``height``: what the
        draw asks of a pick's checkers, and what an epoch's probes are owed for."""
        record = self._draw_weights_record(state, height)
        return _checkers_of(record) if record is not None else ModelCheckers(DrawWeights())

    def _draw_weights_record(self, state: State, height: int) -> bytes | None:
        found = None
        for key, data in state.iterate(DRAW_WEIGHTS):
            if int.from_bytes(key[len(DRAW_WEIGHTS):], "big") > height:
                break
            found = data
        return found

    def fix_draw_weights(self, kv: GasKV, height: int, params: InferenceParams) -> None:
        """Fixes every participant's weight and availability for draws seeded from
        ``height`` on, with the models each member declared (who could check whom), and
        drops records no draw height in the window can reach any more."""
        save(kv, DRAW_WEIGHTS + uint64(height), DrawWeights(
            from_height=height, min_server_share_ppm=params.min_model_server_share_ppm,
            weights=[DrawWeight(address=p.address, weight=p.weight,
                                availability_ppm=availability_ppm(p),
                                model_ids=served_model_ids(p) if p.active and p.weight
                                else [])
                     for p in self.participants(kv)]))
        oldest = height - params.max_draw_age_blocks
        starts = [int.from_bytes(k[len(DRAW_WEIGHTS):], "big")
                  for k, _ in kv.iterate(DRAW_WEIGHTS)]
        for start, following in zip(starts, starts[1:], strict=False):
            if following <= oldest:
                kv.delete(DRAW_WEIGHTS + uint64(start))

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

    def use_request_signature(self, kv: GasKV, signature: bytes, timestamp: int,
                              choice: int = 0) -> bool:
        """Marks a developer request signature used for one of its choices (OpenAI's n: one
        start per choice index); False if it was already. Keyed under the request's
        timestamp first, so the entries that fall out of the window are a key range."""
        suffix = b"" if choice == 0 else uint64(choice)
        key = REQUEST_SIG + uint64(timestamp) + hashlib.sha256(signature + suffix).digest()
        if kv.get(key) is not None:
            return False
        kv.set(key, b"")
        return True

    def request_signature_floor(self, state: State) -> int:
        """Requests stamped before this (unix seconds) can no longer be told from replays:
        their used signatures were forgotten."""
        found = state.get(REQUEST_SIG_FLOOR)
        return int.from_bytes(found, "big") if found else 0

    def forget_request_signatures(self, kv: GasKV, before: int) -> int:
        """Forgets the used signatures of requests stamped before ``before`` and raises the
        floor past them, so that no later window, however wide governance makes it, lets
        one of them start again. How many were forgotten."""
        forgotten = []
        for key, _ in kv.iterate(REQUEST_SIG):
            if _request_stamp(key) >= before:
                break
            forgotten.append(key)
        if not forgotten:
            return 0
        for key in forgotten:
            kv.delete(key)
        newest = _request_stamp(forgotten[-1])
        kv.set(REQUEST_SIG_FLOOR, uint64(max(newest + 1, self.request_signature_floor(kv))))
        return len(forgotten)

    @staticmethod
    def _status_key(status: int, height: int, inference_id: str) -> bytes:
        return _status_prefix(status) + uint64(height) + inference_id.encode()


def _raw(addr: str) -> bytes:
    return address.decode(addr) if addr else b""


def _bech32(raw: bytes) -> str:
    return address.encode(raw) if raw else ""


def _from_summary(inference_id: str, summary: InferenceSummary) -> Inference:
    return Inference(
        id=inference_id, status=summary.status, model_id=summary.model_id,
        developer=_bech32(summary.developer), transfer_agent=_bech32(summary.transfer_agent),
        executor=_bech32(summary.executor), cost=summary.cost,
        prompt_tokens=summary.prompt_tokens, output_tokens=summary.output_tokens,
        start_height=summary.start_height, finish_height=summary.finish_height,
        status_height=summary.status_height, started=summary.started,
        finished=summary.finished, record_sha256=summary.record_sha256,
        summarized_height=summary.summarized_height, checks=summary.checks,
        starter=_bech32(summary.starter), agent_fee=summary.agent_fee,
        draw_height=summary.draw_height, attempt=summary.attempt)


@functools.lru_cache(maxsize=POOLS_KEPT)
def _pool_of(record: bytes) -> DrawPool:
    """The pool of a draw-weights record, by the record's bytes: a pure function of them, so
    every state (CheckTx's, a block's, a query's) and thread may share it."""
    return DrawPool([Candidate(w.address, w.weight, w.availability_ppm)
                     for w in DrawWeights.FromString(record).weights])


@functools.lru_cache(maxsize=POOLS_KEPT)
def _checkers_of(record: bytes) -> ModelCheckers:
    """Who serves each model in a draw-weights record, by the record's bytes, shared as the
    pool is."""
    return ModelCheckers(DrawWeights.FromString(record))


def invalid_now(participant: Participant) -> bool:
    return participant.invalid_since > 0 and participant.invalid_until == 0


def drawable(participant: Participant, draw_height: int) -> bool:
    """Whether a draw seeded at ``draw_height`` includes the participant. Judging by the draw
    height, not by the state when the start arrives, keeps a transfer agent's draw valid when
    a participant registers, withdraws or becomes (or stops being) INVALID while the request
    is served."""
    if participant.registered_height > draw_height:
        return False
    if not participant.active and not participant.withdrawn_height > draw_height:
        return False
    invalid = participant.invalid_since
    return not (invalid and invalid <= draw_height
                and (not participant.invalid_until or draw_height < participant.invalid_until))


def served_model_ids(participant: Participant) -> list[str]:
    """The ids of the models a participant declares, sorted: what an epoch's member record
    and draw-weights record both keep of it, fixed at the same block."""
    return sorted({m.model_id for m in participant.models})


def availability_ppm(participant: Participant) -> int:
    """Share of assigned inferences completed, with one free success so newcomers start at 1."""
    done = participant.completions + 1
    return PPM * done // (done + participant.misses)
