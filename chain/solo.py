"""Solo mode: a single-validator block producer inside the node, for the quickstart.

It is not a second state machine: it drives the same Application through the same ABCI
calls CometBFT makes (InitChain from genesis.json, CheckTx into a mempool, then per block
PrepareProposal, ProcessProposal, FinalizeBlock, Commit, and a recheck of what is left), on a
timer. Multi-validator networks use CometBFT.
"""

import asyncio
import base64
import hashlib
import json
import logging
import time
from datetime import datetime
from pathlib import Path

from cosmpy.protos.tendermint.abci import types_pb2 as abci
from cosmpy.protos.tendermint.crypto.keys_pb2 import PublicKey
from google.protobuf.timestamp_pb2 import Timestamp

from chain.app import Application
from chain.services.broadcast import Admission
from chain.tx.decode import tx_hash

log = logging.getLogger(__name__)

MAX_BLOCK_BYTES = 22020096
MAX_MEMPOOL_TXS = 5000


def _timestamp(time_ns: int) -> Timestamp:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return Timestamp(seconds=seconds, nanos=nanos)


class SoloChain:
    def __init__(self, app: Application, genesis_file: Path, interval_s: float) -> None:
        self._app = app
        self._genesis = json.loads(genesis_file.read_text())
        self._interval = interval_s
        validators = self._genesis.get("validators") or []
        self._proposer = bytes.fromhex(validators[0]["address"]) if validators else b""
        self._mempool: dict[bytes, bytes] = {}
        self._last_hash = bytes.fromhex(app.last_block.get("hash", ""))

    def init_chain(self) -> None:
        """InitChain from genesis.json on a fresh store, as CometBFT's handshake does."""
        if self._app.height:
            return
        genesis_time = datetime.fromisoformat(self._genesis["genesis_time"].replace("Z", "+00:00"))
        time_ns = int(genesis_time.timestamp()) * 1_000_000_000
        validators = [abci.ValidatorUpdate(
            pub_key=PublicKey(ed25519=base64.b64decode(v["pub_key"]["value"])),
            power=int(v["power"])) for v in self._genesis.get("validators") or []]
        self._app.init_chain(abci.RequestInitChain(
            time=_timestamp(time_ns), chain_id=self._genesis["chain_id"],
            initial_height=int(self._genesis.get("initial_height", 1)), validators=validators,
            app_state_bytes=json.dumps(self._genesis.get("app_state", {})).encode()))

    async def broadcast(self, tx: bytes) -> Admission:
        key = tx_hash(tx)
        if key in self._mempool:
            return Admission(code=19, codespace="sdk", log="tx already in mempool")
        if len(self._mempool) >= MAX_MEMPOOL_TXS:
            return Admission(code=20, codespace="sdk", log="mempool is full")
        result = self._app.check_tx(abci.RequestCheckTx(tx=tx, type=abci.NEW))
        if result.code == 0:
            self._mempool[key] = tx
        return Admission(result.code, result.codespace, result.log, result.gas_wanted,
                         result.gas_used)

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            self.produce_block()
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    def produce_block(self) -> None:
        height = (self._app.height + 1) if self._app.height else \
            int(self._genesis.get("initial_height", 1))
        now = _timestamp(max(time.time_ns(), self._app.last_block.get("time_ns", 0) + 1))
        proposal = self._app.prepare_proposal(abci.RequestPrepareProposal(
            max_tx_bytes=MAX_BLOCK_BYTES, txs=list(self._mempool.values()), height=height,
            time=now, proposer_address=self._proposer))
        block_hash = hashlib.sha256(b"".join([
            height.to_bytes(8, "big"), self._last_hash, now.SerializeToString(),
            *(tx_hash(t) for t in proposal.txs)])).digest()
        verdict = self._app.process_proposal(abci.RequestProcessProposal(
            txs=proposal.txs, hash=block_hash, height=height, time=now,
            proposer_address=self._proposer))
        if verdict.status != abci.ResponseProcessProposal.ACCEPT:
            raise RuntimeError(f"the app rejected its own proposal at height {height}")
        self._app.finalize_block(abci.RequestFinalizeBlock(
            txs=proposal.txs, hash=block_hash, height=height, time=now,
            proposer_address=self._proposer))
        self._app.commit(abci.RequestCommit())
        self._last_hash = block_hash
        for tx in proposal.txs:
            self._mempool.pop(tx_hash(tx), None)
        self._recheck()

    def _recheck(self) -> None:
        """Drops mempool txs the new state makes invalid, as CometBFT's recheck does."""
        for key, tx in list(self._mempool.items()):
            result = self._app.check_tx(abci.RequestCheckTx(tx=tx,
                                                            type=abci.RECHECK))
            if result.code != 0:
                log.info("dropping tx %s from the mempool: %s", key.hex().upper(), result.log)
                del self._mempool[key]
