"""The application behind ABCI: one object that CometBFT, solo mode and tests drive alike.

State flows through three overlays on the committed store: InitChain's genesis state (kept
until the first block commits), the block being finalized (kept from FinalizeBlock until
Commit) and the mempool's check state (reset at every Commit). Commit writes the block and
its tx index atomically, so a crash anywhere leaves either the old or the new height, and
CometBFT's handshake replays whatever the app lacks.

What no input may do (docs/chain.md, "Hostile input"): CheckTx, Query and Simulate answer every
request, an unexpected exception becoming an error response with a code and a log; in
FinalizeBlock a tx's failure is that tx's alone and a block step's failure discards that step's
changes; Commit only writes what FinalizeBlock built and parses nothing a user sent.
"""

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from cosmpy.protos.cosmos.base.abci.v1beta1.abci_pb2 import TxResponse
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from chain import failpoint, vrf
from chain.abci.application import BaseApplication
from chain.config import NodeConfig
from chain.context import BlockInfo, Context, Event, serializable
from chain.epochs.beacon import consensus_address, proof_in
from chain.errors import ENVIRONMENT_ERRORS
from chain.gas import GasKV, GasMeter
from chain.metrics import ChainMetrics
from chain.modules import Modules, build
from chain.query import QueryRouter
from chain.retention import Retention
from chain.snapshots.format import FORMAT, Metadata
from chain.snapshots.restore import Restorer
from chain.snapshots.store import SnapshotStore
from chain.store import Overlay, Store
from chain.tx.decode import tx_hash
from chain.tx.execute import Mode, Outcome

log = logging.getLogger(__name__)

APP_NAME = "inferchain"
APP_VERSION = 1
CHAIN_ID_META = "chain_id"
LAST_BLOCK_META = "last_block"
TX_META_PREFIX = "tx/"
# The hashes of the txs of one height (32 bytes each), so their results can be dropped with
# that height's history; the height zero-padded, so names sort by height.
TXS_AT_META = "txs_at/"
INTERNAL_ERROR = 1  # the sdk codespace's code for an internal error
TX_TYPE_URL = "/cosmos.tx.v1beta1.Tx"


@dataclass
class PendingBlock:
    block: BlockInfo
    state: Overlay
    outcomes: list[Outcome]
    tx_responses: list[bytes]
    header: dict


def abci_events(events: list[Event]) -> list[abci.Event]:
    """``events`` as ABCI events on their own, for an answer that is not a block's."""
    holder = abci.ExecTxResult()
    _add_events(holder.events, events)
    return list(holder.events)


def _add_events(into: RepeatedCompositeFieldContainer[abci.Event], events: list[Event]) -> None:
    """Builds ``events`` in place in a message's repeated field: a block's tx results hold
    thousands of attributes, and building them apart and copying them in cost twice as much."""
    for type_, attributes in events:
        add = into.add(type=type_).attributes.add
        for key, value in attributes.items():
            add(key=key, value=serializable(value), index=True)


def rfc3339(time_ns: int) -> str:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


class Application(BaseApplication):
    """Answers the ABCI methods a chain needs; the rest keep BaseApplication's answers (no
    vote extensions, every proposal accepted, and no snapshots unless given a snapshot
    store)."""

    def __init__(self, store: Store,
                 simulate_gas_limit: int = NodeConfig.simulate_gas_limit,
                 metrics: ChainMetrics | None = None,
                 snapshots: SnapshotStore | None = None, network_chain_id: str = "",
                 retention: Retention | None = None,
                 validator_secret: bytes | None = None) -> None:
        """``snapshots``, when given, turns state sync on: this node takes and serves its own
        snapshots, and restores a peer's of the chain ``network_chain_id`` (its genesis's).
        ``retention``: how much state history and how many CometBFT blocks it keeps (all by
        default). ``validator_secret``: the 32-byte seed of this node's validator key, which
        proves the beacon of the blocks it proposes (docs/design.md §2.7); a node without
        one proposes nothing the others accept."""
        self.store = store
        self.validator_secret = validator_secret
        self._validator_address = consensus_address(vrf.public_key(validator_secret)) \
            if validator_secret is not None else None
        self.snapshots = snapshots
        self.retention = retention or Retention()
        self.restorer = None if snapshots is None else Restorer(
            snapshots.root / ".restoring", network_chain_id, _restored_meta)
        self.metrics = metrics or ChainMetrics()
        self.metrics.height.set(store.height)
        self.simulate_gas_limit = simulate_gas_limit
        self.modules: Modules = build()
        self.queries = QueryRouter(self)
        self.modules.manager.register_queries(self.queries, lambda: self.store.height)
        self.chain_id = (store.get_meta(CHAIN_ID_META) or b"").decode()
        self._genesis: Overlay | None = None
        self._initial_height = 1
        self._pending: PendingBlock | None = None
        self._check = store.begin_block()
        last = store.get_meta(LAST_BLOCK_META)
        self.last_block: dict = json.loads(last) if last else {}

    @property
    def height(self) -> int:
        return self.store.height

    def info(self, req: abci.RequestInfo) -> abci.ResponseInfo:
        height = self.store.height
        return abci.ResponseInfo(data=APP_NAME, version="0.1.0", app_version=APP_VERSION,
                                 last_block_height=height,
                                 last_block_app_hash=self.store.app_hash if height else b"")

    def init_chain(self, req: abci.RequestInitChain) -> abci.ResponseInitChain:
        app_state = json.loads(req.app_state_bytes or b"{}")
        self.chain_id = req.chain_id
        self._initial_height = max(1, req.initial_height)
        state = self.store.begin_block()
        kv = GasKV(state, GasMeter(None))
        self.modules.manager.init_genesis(kv, app_state)
        self.modules.validator_set.init_genesis(kv, req.validators)
        self.modules.beacon.remember(kv, (bytes(v.pubkey) for v in
                                          self.modules.validator_set.current(kv).validators))
        self._genesis = state
        # Txs checked before the first block see the genesis accounts and balances.
        self._check = state.branch()
        log.info("genesis for chain %s applied (initial height %d)", req.chain_id,
                 self._initial_height)
        return abci.ResponseInitChain(app_hash=self.store.app_hash_of(state))

    def check_tx(self, req: abci.RequestCheckTx) -> abci.ResponseCheckTx:
        try:
            outcome = self.modules.runner.run(self._check, self._next_block(), req.tx,
                                              Mode.CHECK)
        except Exception as exc:
            return abci.ResponseCheckTx(code=INTERNAL_ERROR, codespace="sdk",
                                        log=_internal("CheckTx", exc))
        self.metrics.check_tx(outcome.hash, req.type == abci.RECHECK, outcome.codespace,
                              outcome.code)
        if outcome.code and req.type == abci.RECHECK:
            # The mempool drops a tx it had taken: its sender hears of it from no one else.
            log.info("mempool: tx %s no longer passes after the last block and is dropped "
                     "(code %d, %s): %s", outcome.hash.hex().upper(), outcome.code,
                     outcome.codespace, outcome.log)
        return abci.ResponseCheckTx(code=outcome.code, codespace=outcome.codespace,
                                    log=outcome.log, gas_wanted=outcome.gas_wanted,
                                    gas_used=outcome.gas_used)

    def simulate(self, raw: bytes) -> Outcome:
        """Runs a tx on the mempool's state, as CheckTx will, and keeps nothing.

        The mempool's state includes pending txs, so a sender's next sequence and the gas of a
        message that depends on a pending one (a Finish settling a pending Start) come out as
        they will at CheckTx. The node's simulation gas limit replaces the tx's own, so a
        client cannot make one simulation run for long.
        """
        try:
            return self.modules.runner.run(self._check, self._next_block(), raw, Mode.SIMULATE,
                                           simulate_gas_cap=self.simulate_gas_limit)
        except Exception as exc:
            outcome = Outcome(tx_hash(raw), code=INTERNAL_ERROR, codespace="sdk")
            outcome.log = _internal("Simulate", exc)
            return outcome

    def prepare_proposal(self, req: abci.RequestPrepareProposal
                         ) -> abci.ResponsePrepareProposal:
        """The beacon proof first (docs/design.md §2.7), then the mempool's txs in order up to
        the block's byte limit, leaving out any shaped as a proof. Without this node's
        validator key it proposes no proof, and the other validators refuse the proposal."""
        proof: list[bytes] = []
        if self.validator_secret is not None and self._proposes(req.proposer_address):
            proof.append(self.modules.beacon.proposal_tx(self._committed(), self.chain_id,
                                                        req.height, self.validator_secret))
        else:
            log.error("proposing block %d for validator %s without its key (config/"
                      "priv_validator_key.json): the proposal carries no beacon proof and will "
                      "be refused", req.height, req.proposer_address.hex().upper())
        # CheckTx refuses txs shaped as a proof, so a mempool holds none; leave out any anyway.
        mempool = super().prepare_proposal(abci.RequestPrepareProposal(
            txs=[tx for tx in req.txs if proof_in(tx) is None],
            max_tx_bytes=req.max_tx_bytes - sum(len(tx) for tx in proof)))
        return abci.ResponsePrepareProposal(txs=[*proof, *mempool.txs])

    def process_proposal(self, req: abci.RequestProcessProposal
                         ) -> abci.ResponseProcessProposal:
        """Accepts a proposal whose first tx is its proposer's beacon proof for its height;
        any other tx is admissible (one that fails is recorded as failed, as the Cosmos SDK
        does)."""
        refusal = self.modules.beacon.refusal(self._committed(), self.chain_id, req.height,
                                              req.proposer_address, req.txs)
        if refusal is None:
            return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.ACCEPT)
        log.warning("refusing the proposal of block %d by %s: %s", req.height,
                    req.proposer_address.hex().upper(), refusal)
        return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.REJECT)

    def _proposes(self, proposer: bytes) -> bool:
        return self._validator_address == proposer

    def _committed(self) -> Overlay:
        """The state a proposal for the next height is judged on: the last commit's, or
        InitChain's before the first block."""
        return self._genesis if self._genesis is not None else self.store.begin_block()

    def _next_block(self) -> BlockInfo:
        """What mempool checks assume of the block a tx will land in: the next height, and the
        last block's time (the next one's is not known yet)."""
        return BlockInfo(self.chain_id, self.store.height + 1, self.last_block.get("time_ns", 0))

    def finalize_block(self, req: abci.RequestFinalizeBlock) -> abci.ResponseFinalizeBlock:
        started = time.perf_counter()
        expected = self.store.height + 1 if self.store.height else self._initial_height
        if req.height != expected:
            raise RuntimeError(f"FinalizeBlock for height {req.height}, expected {expected}")
        if self.store.height == 0 and self._genesis is None:
            raise RuntimeError("FinalizeBlock before InitChain")
        state = self._genesis if self.store.height == 0 else self.store.begin_block()
        time_ns = req.time.seconds * 1_000_000_000 + req.time.nanos
        block = BlockInfo(self.chain_id, req.height, time_ns)
        hooks = Context.of(block, state, GasMeter(None))
        beacon = self.modules.beacon
        random = beacon.value(state, self.chain_id, req.height, req.proposer_address, req.txs,
                              req.hash)
        beacon.record(hooks.kv, random)
        # Every draw reads the block's random value where it would read its hash.
        self.modules.manager.begin_block(hooks, random)
        txs = req.txs[1:] if req.txs and proof_in(req.txs[0]) is not None else req.txs
        outcomes = [self.modules.runner.run(state, block, tx, Mode.DELIVER) for tx in txs]
        self.modules.manager.end_block(hooks)
        # After end-block, so an epoch's first block sees the weights the epoch starts with.
        validator_updates = self._validator_updates(hooks)
        beacon.remember(hooks.kv, (bytes(u.pub_key.ed25519) for u in validator_updates
                                   if u.power > 0))
        header = {"height": req.height, "time_ns": time_ns, "hash": req.hash.hex(),
                  "random": random.hex(), "proposer": req.proposer_address.hex(),
                  "txs": [t.hex() for t in txs]}
        response = abci.ResponseFinalizeBlock(app_hash=self.store.app_hash_of(state),
                                              validator_updates=validator_updates)
        _add_events(response.events, hooks.events)
        if len(txs) < len(req.txs):  # the beacon proof: a result for it, and no tx record
            _add_events(response.tx_results.add(log="block beacon proof").events, [(
                "block_beacon", {"value": random.hex(),
                                 "proposer": req.proposer_address.hex().upper()})])
        tx_responses, timestamp = [], rfc3339(time_ns)
        for outcome in outcomes:
            result = response.tx_results.add(
                code=outcome.code, codespace=outcome.codespace, log=outcome.log,
                gas_wanted=outcome.gas_wanted, gas_used=outcome.gas_used)
            _add_events(result.events, outcome.events)
            tx_responses.append(_tx_response(block.height, timestamp, outcome,
                                             result.events).SerializeToString())
        self._pending = PendingBlock(block, state, outcomes, tx_responses, header)
        failpoint.hit(failpoint.AFTER_FINALIZE, req.height)
        self.metrics.finalized([(o.codespace, o.code) for o in outcomes],
                               time.perf_counter() - started)
        return response

    def _validator_updates(self, hooks: Context) -> list[abci.ValidatorUpdate]:
        """CometBFT's validator changes; a failure to compute them leaves the set as it is."""
        try:
            return self.modules.validator_set.updates(hooks)
        except ENVIRONMENT_ERRORS:
            raise
        except Exception:
            log.exception("computing the validator updates failed at height %d; the "
                          "validator set stays as it is", hooks.block.height)
            return []

    def commit(self, req: abci.RequestCommit) -> abci.ResponseCommit:
        started = time.perf_counter()
        pending = self._pending
        if pending is None:
            raise RuntimeError("Commit without FinalizeBlock")
        header = {**pending.header, "app_hash": self.store.app_hash_of(pending.state).hex()}
        meta = {TX_META_PREFIX + o.hash.hex().upper(): response
                for o, response in zip(pending.outcomes, pending.tx_responses, strict=True)}
        meta[LAST_BLOCK_META] = json.dumps(header).encode()
        if pending.outcomes:
            meta[_txs_at(pending.block.height)] = b"".join(o.hash for o in pending.outcomes)
        meta[CHAIN_ID_META] = self.chain_id.encode()
        self.store.commit(pending.state, pending.block.height, meta)
        failpoint.hit(failpoint.AFTER_COMMIT, pending.block.height)
        self.metrics.committed(pending.block.height, [o.hash for o in pending.outcomes],
                               pending.block.time_ns, self.last_block.get("time_ns", 0),
                               time.perf_counter() - started)
        self.last_block = header
        self._pending = self._genesis = None
        self._check = self.store.begin_block()
        if self.snapshots is not None and self.snapshots.due(pending.block.height):
            self.snapshots.take(self.store, pending.block.height, self.chain_id, header)
        log.log(logging.INFO if pending.outcomes else logging.DEBUG,
                "committed height %d: %d tx(s), app hash %s", pending.block.height,
                len(pending.outcomes), header["app_hash"][:16])
        self._prune_history(pending.block.height)
        oldest = self.snapshots.oldest() if self.snapshots is not None else None
        return abci.ResponseCommit(
            retain_height=self.retention.retain_height(pending.block.height, oldest))

    def _prune_history(self, height: int) -> None:
        """Drops state history older than the node keeps (``history_keep_blocks``)."""
        writing = self.snapshots.writing() if self.snapshots is not None else None
        keep = self.retention.history_keep(height, writing)
        if keep is None:
            return
        started = time.perf_counter()
        try:
            deleted = self.store.prune(keep)
            dropped = self._drop_tx_results(self.store.earliest_height)
        except (OSError, sqlite3.Error) as exc:
            # The block is committed; pruning is bookkeeping and the next one catches up.
            log.warning("pruning state history failed at height %d (tried again in %d "
                        "blocks): %r", height, self.retention.prune_every, exc)
            return
        log.info("state history pruned to heights %d and later: %d rows and %d tx results "
                 "deleted in %.2fs", self.store.earliest_height, deleted, dropped,
                 time.perf_counter() - started)

    def _drop_tx_results(self, earliest: int) -> int:
        """GetTx answers for the txs of the heights whose history is kept: the results of
        older ones go with it. How many were dropped."""
        heights = self.store.meta_between(TXS_AT_META, _txs_at(earliest))
        results = [TX_META_PREFIX + hashes[i:i + 32].hex().upper()
                   for _, hashes in heights for i in range(0, len(hashes), 32)]
        self.store.drop_meta([*results, *(name for name, _ in heights)])
        return len(results)

    def list_snapshots(self, req: abci.RequestListSnapshots) -> abci.ResponseListSnapshots:
        if self.snapshots is None:
            return abci.ResponseListSnapshots()
        return abci.ResponseListSnapshots(snapshots=[
            abci.Snapshot(height=s.height, format=FORMAT, chunks=s.chunks, hash=s.hash,
                          metadata=s.metadata) for s in self.snapshots.list()])

    def load_snapshot_chunk(self, req: abci.RequestLoadSnapshotChunk
                            ) -> abci.ResponseLoadSnapshotChunk:
        if self.snapshots is None:
            return abci.ResponseLoadSnapshotChunk()
        return abci.ResponseLoadSnapshotChunk(
            chunk=self.snapshots.load_chunk(req.height, req.format, req.chunk))

    def offer_snapshot(self, req: abci.RequestOfferSnapshot) -> abci.ResponseOfferSnapshot:
        if self.restorer is None:
            return super().offer_snapshot(req)
        try:
            result = self.restorer.offer(self.store, req)
        except Exception:
            log.exception("OfferSnapshot failed; refusing the snapshot")
            result = abci.ResponseOfferSnapshot.REJECT
        return abci.ResponseOfferSnapshot(result=result)

    def apply_snapshot_chunk(self, req: abci.RequestApplySnapshotChunk
                             ) -> abci.ResponseApplySnapshotChunk:
        if self.restorer is None:
            return super().apply_snapshot_chunk(req)
        try:
            response = self.restorer.apply(self.store, req)
        except Exception:
            log.exception("ApplySnapshotChunk failed; refusing the snapshot")
            return abci.ResponseApplySnapshotChunk(
                result=abci.ResponseApplySnapshotChunk.REJECT_SNAPSHOT)
        restored = self.restorer.restored
        if restored is not None and restored.height == self.store.height:
            self.chain_id = restored.chain_id
            self.last_block = json.loads(self.store.get_meta(LAST_BLOCK_META) or b"{}")
            self._check = self.store.begin_block()
            self.metrics.height.set(self.store.height)
        return response

    def query(self, req: abci.RequestQuery) -> abci.ResponseQuery:
        try:
            return self.queries.abci_query(req)
        except Exception as exc:
            return abci.ResponseQuery(code=INTERNAL_ERROR, codespace="sdk",
                                      height=self.store.height, log=_internal("Query", exc))

    def committed_tx(self, tx_hash: str) -> TxResponse | None:
        data = self.store.get_meta(TX_META_PREFIX + tx_hash.upper())
        if data is None:
            return None
        response = TxResponse()
        response.ParseFromString(data)
        return response


def _tx_response(height: int, timestamp: str, outcome: Outcome,
                 events: RepeatedCompositeFieldContainer[abci.Event]) -> TxResponse:
    """The tx's stored result, built from what execution decoded: nothing is parsed again.
    ``timestamp`` is the block's time in RFC 3339, formatted once per block."""
    response = TxResponse(
        height=height, txhash=outcome.hash.hex().upper(), codespace=outcome.codespace,
        code=outcome.code, raw_log=outcome.log, gas_wanted=outcome.gas_wanted,
        gas_used=outcome.gas_used, timestamp=timestamp, events=events)
    if outcome.tx is not None:
        # A Tx and a TxRaw share field numbers and wire types, and decoding took only a TxRaw
        # whose body and auth info are each their message's canonical encoding: the raw
        # bytes are the Tx's own encoding, with no repacking.
        response.tx.type_url = TX_TYPE_URL
        response.tx.value = outcome.tx.raw
    return response


def _restored_meta(metadata: Metadata) -> dict[str, bytes]:
    """The node bookkeeping a node restored from a snapshot starts from: what Commit would have
    stored at that height, less the block's txs and the tx index, which are not in the state."""
    return {LAST_BLOCK_META: json.dumps({**metadata.last_block, "txs": []}).encode(),
            CHAIN_ID_META: metadata.chain_id.encode()}


def _internal(method: str, exc: Exception) -> str:
    """Logs an unexpected failure of a method that must answer, and the answer's log."""
    log.exception("%s failed with an internal error; answering it as an error", method)
    return f"internal error: {type(exc).__name__}"


def _txs_at(height: int) -> str:
    return f"{TXS_AT_META}{height:020d}"
