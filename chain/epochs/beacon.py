"""The block beacon: each block's random value, proved by its proposer (docs/design.md §2.7).

Every draw of the chain (executors, voters, PoC seeds and samples) reads a block's random
value. A block hash would not do: its proposer makes it, and by ordering, leaving out or
adding txs of its own it can try hashes until one draws whom it likes. So the first tx of
every proposal is the proposer's VRF proof (chain/vrf.py) over the chain id, the height and
the previous block's value, and the block's value is the proof's output: one value per
proposer and height, fixed before the proposer saw the block's txs. What a proposer still
chooses is whether to propose at all (CometBFT then moves to the next round's proposer).

Keys:
  epochs/beacon               the last block's value (32 bytes)
  epochs/proposerkey/ADDRESS  a validator's ed25519 key by its CometBFT address (20 bytes):
                              every key CometBFT's set has held, since a validator the chain
                              removed still proposes in the two blocks before CometBFT drops it

ProcessProposal refuses a proposal whose first tx is no proof by its proposer, or that holds
a second one; FinalizeBlock, which must decide something for any block consensus committed,
takes the block hash instead of a value it cannot verify (only a proposal more than two
thirds of the voting power accepted against the rule could bring it there).
"""

import hashlib
import logging
from collections.abc import Iterable, Sequence

from chain import vrf
from chain.gas import GasKV
from chain.store import KVReader

log = logging.getLogger(__name__)

VALUE = b"epochs/beacon"
PROPOSER_KEY = b"epochs/proposerkey/"
# A proposal's first tx: this prefix, then the proof. No Cosmos tx starts so (its bytes are a
# TxRaw, whose first byte is a field tag), and CheckTx refuses one as undecodable.
TX_PREFIX = b"inferchain/beacon/v1\x00"
INPUT_TAG = b"inferchain/beacon-input/v1"
GENESIS_TAG = b"inferchain/beacon-genesis/v1"
VALUE_BYTES = 32
ADDRESS_BYTES = 20

State = GasKV | KVReader


def consensus_address(pubkey: bytes) -> bytes:
    """CometBFT's address of an ed25519 validator key: sha256(key)[:20]."""
    return hashlib.sha256(pubkey).digest()[:ADDRESS_BYTES]


def vrf_input(chain_id: str, height: int, previous: bytes) -> bytes:
    """What the proposer of ``height`` proves: the previous block's value chains the values,
    so nobody knows a block's before the block before it exists."""
    chain = chain_id.encode()
    return INPUT_TAG + len(chain).to_bytes(2, "big") + chain + height.to_bytes(8, "big") + \
        previous


def proof_in(tx: bytes) -> bytes | None:
    """The proof a beacon tx carries; None for any other tx."""
    return tx[len(TX_PREFIX):] if tx.startswith(TX_PREFIX) else None


class Beacon:
    def __init__(self) -> None:
        # The last proof verified, with its key, input and output: ProcessProposal and
        # FinalizeBlock check the same proof of a block, and verification is deterministic.
        self._verified: tuple[bytes, bytes, bytes, bytes] | None = None

    def previous(self, state: State, chain_id: str) -> bytes:
        """The value the next block's proof chains from: the last block's, or before the
        first block one fixed by the chain id."""
        return state.get(VALUE) or hashlib.sha256(GENESIS_TAG + chain_id.encode()).digest()

    def remember(self, kv: GasKV, pubkeys: Iterable[bytes]) -> None:
        """Records validator keys CometBFT's set holds or is about to hold."""
        for pubkey in pubkeys:
            kv.set(PROPOSER_KEY + consensus_address(pubkey), pubkey)

    def proposer_key(self, state: State, proposer: bytes) -> bytes | None:
        if len(proposer) != ADDRESS_BYTES:
            return None
        return state.get(PROPOSER_KEY + proposer)

    def proposal_tx(self, state: State, chain_id: str, height: int, secret: bytes) -> bytes:
        """The beacon tx a proposer holding ``secret`` puts first in its block at ``height``."""
        return TX_PREFIX + vrf.prove(secret, vrf_input(chain_id, height,
                                                       self.previous(state, chain_id)))

    def refusal(self, state: State, chain_id: str, height: int, proposer: bytes,
                txs: Sequence[bytes]) -> str | None:
        """Why a proposal breaks the beacon rule; None when its first tx is its proposer's
        proof for this height and no other tx is a proof."""
        if not txs or proof_in(txs[0]) is None:
            return "its first tx is no beacon proof"
        extra = next((i for i, tx in enumerate(txs[1:], 1) if proof_in(tx) is not None), None)
        if extra is not None:
            return f"tx {extra} is a second beacon proof"
        pubkey = self.proposer_key(state, proposer)
        if pubkey is None:
            return f"its proposer {proposer.hex().upper()} is no validator the chain knows"
        proof = proof_in(txs[0]) or b""
        alpha = vrf_input(chain_id, height, self.previous(state, chain_id))
        if self._verified is not None and self._verified[:3] == (pubkey, proof, alpha):
            return None
        try:
            output = vrf.verify(pubkey, proof, alpha)
        except vrf.InvalidProof as exc:
            return f"its beacon proof does not verify under its proposer's key: {exc}"
        self._verified = (pubkey, proof, alpha, output)
        return None

    def value(self, state: State, chain_id: str, height: int, proposer: bytes,
              txs: Sequence[bytes], block_hash: bytes) -> bytes:
        """The block's random value: its proof's output, or the block hash where the block
        breaks the rule (logged: consensus accepted a proposal honest nodes refuse)."""
        refusal = self.refusal(state, chain_id, height, proposer, txs)
        if refusal is None and self._verified is not None:
            return self._verified[3][:VALUE_BYTES]
        log.error("block %d breaks the beacon rule (%s); its random value is its hash",
                  height, refusal)
        return block_hash

    def record(self, kv: GasKV, value: bytes) -> None:
        kv.set(VALUE, value)
