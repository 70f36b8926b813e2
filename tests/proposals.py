"""Blocks as CometBFT makes them, for apps driven in process: the proposer's PrepareProposal
(the app holds the validator's key, so it puts the block beacon's proof first), every
validator's ProcessProposal, which must accept, and the FinalizeBlock request of the txs
proposed. An app taking these blocks is built with ``validator_secret=VALIDATOR_SECRET`` and
starts from InitChain with ``validators=genesis_validators()``."""

import hashlib

from cosmpy.protos.tendermint.abci import types_pb2 as abci
from cosmpy.protos.tendermint.crypto.keys_pb2 import PublicKey
from google.protobuf.timestamp_pb2 import Timestamp

from chain import vrf
from chain.app import Application
from chain.epochs.beacon import consensus_address

VALIDATOR_SECRET = hashlib.sha256(b"inferchain in-process validator").digest()
VALIDATOR_ADDRESS = consensus_address(vrf.public_key(VALIDATOR_SECRET))
MAX_TX_BYTES = 1 << 30


def genesis_validators() -> list[abci.ValidatorUpdate]:
    return [abci.ValidatorUpdate(pub_key=PublicKey(ed25519=vrf.public_key(VALIDATOR_SECRET)),
                                 power=10)]


def proposed_block(app: Application, height: int, time: Timestamp, txs: list[bytes],
                   block_hash: bytes) -> abci.RequestFinalizeBlock:
    """The FinalizeBlock request of a block the app proposed with ``txs`` and accepted; its
    results are one longer than ``txs``, the beacon proof's first."""
    proposal = app.prepare_proposal(abci.RequestPrepareProposal(
        txs=txs, max_tx_bytes=MAX_TX_BYTES, height=height, time=time,
        proposer_address=VALIDATOR_ADDRESS))
    assert list(proposal.txs[1:]) == list(txs), "the proposal left out some of the txs"
    verdict = app.process_proposal(abci.RequestProcessProposal(
        txs=proposal.txs, height=height, time=time, hash=block_hash,
        proposer_address=VALIDATOR_ADDRESS))
    assert verdict.status == abci.ResponseProcessProposal.ACCEPT
    return abci.RequestFinalizeBlock(txs=proposal.txs, height=height, time=time,
                                     hash=block_hash, proposer_address=VALIDATOR_ADDRESS)
