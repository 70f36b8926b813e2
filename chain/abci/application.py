"""The ABCI application interface: every method CometBFT calls, each with a default answer.

As in CometBFT's ``abci/types.BaseApplication``, an application subclasses
``BaseApplication`` and writes only the methods it uses; the others answer as a chain
without that feature does (no vote extensions, no state-sync snapshots, every proposal
accepted). ``METHODS`` maps each ABCI request to the method answering it and is checked
against CometBFT's Request type when this module is imported, so a renamed method or a
request kind without one fails at start-up, never as an "unsupported request" at run time.
"""

from collections.abc import Callable

from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.message import Message

# Requests the socket layer answers itself: they carry nothing for the application.
CONNECTION_REQUESTS = ("echo", "flush")


class BaseApplication:
    def info(self, req: abci.RequestInfo) -> abci.ResponseInfo:
        return abci.ResponseInfo()

    def init_chain(self, req: abci.RequestInitChain) -> abci.ResponseInitChain:
        return abci.ResponseInitChain()

    def query(self, req: abci.RequestQuery) -> abci.ResponseQuery:
        return abci.ResponseQuery()

    def check_tx(self, req: abci.RequestCheckTx) -> abci.ResponseCheckTx:
        return abci.ResponseCheckTx()

    def prepare_proposal(self, req: abci.RequestPrepareProposal
                         ) -> abci.ResponsePrepareProposal:
        """The mempool's txs in order, up to the block's byte limit."""
        txs, size = [], 0
        for tx in req.txs:
            size += len(tx)
            if size > req.max_tx_bytes:
                break
            txs.append(tx)
        return abci.ResponsePrepareProposal(txs=txs)

    def process_proposal(self, req: abci.RequestProcessProposal
                         ) -> abci.ResponseProcessProposal:
        # Any tx is admissible: one that fails is recorded as failed, as the Cosmos SDK does.
        return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.ACCEPT)

    def extend_vote(self, req: abci.RequestExtendVote) -> abci.ResponseExtendVote:
        return abci.ResponseExtendVote()

    def verify_vote_extension(self, req: abci.RequestVerifyVoteExtension
                              ) -> abci.ResponseVerifyVoteExtension:
        return abci.ResponseVerifyVoteExtension(
            status=abci.ResponseVerifyVoteExtension.ACCEPT)

    def finalize_block(self, req: abci.RequestFinalizeBlock) -> abci.ResponseFinalizeBlock:
        return abci.ResponseFinalizeBlock(tx_results=[abci.ExecTxResult() for _ in req.txs])

    def commit(self, req: abci.RequestCommit) -> abci.ResponseCommit:
        return abci.ResponseCommit()

    def list_snapshots(self, req: abci.RequestListSnapshots) -> abci.ResponseListSnapshots:
        return abci.ResponseListSnapshots()

    def offer_snapshot(self, req: abci.RequestOfferSnapshot) -> abci.ResponseOfferSnapshot:
        return abci.ResponseOfferSnapshot(result=abci.ResponseOfferSnapshot.REJECT)

    def load_snapshot_chunk(self, req: abci.RequestLoadSnapshotChunk
                            ) -> abci.ResponseLoadSnapshotChunk:
        return abci.ResponseLoadSnapshotChunk()

    def apply_snapshot_chunk(self, req: abci.RequestApplySnapshotChunk
                             ) -> abci.ResponseApplySnapshotChunk:
        return abci.ResponseApplySnapshotChunk(result=abci.ResponseApplySnapshotChunk.ABORT)


AbciMethod = Callable[[BaseApplication, Message], Message]

# Each ABCI request (a field of the Request oneof) and the method that answers it.
METHODS: dict[str, AbciMethod] = {
    "info": BaseApplication.info,
    "init_chain": BaseApplication.init_chain,
    "query": BaseApplication.query,
    "check_tx": BaseApplication.check_tx,
    "prepare_proposal": BaseApplication.prepare_proposal,
    "process_proposal": BaseApplication.process_proposal,
    "extend_vote": BaseApplication.extend_vote,
    "verify_vote_extension": BaseApplication.verify_vote_extension,
    "finalize_block": BaseApplication.finalize_block,
    "commit": BaseApplication.commit,
    "list_snapshots": BaseApplication.list_snapshots,
    "offer_snapshot": BaseApplication.offer_snapshot,
    "load_snapshot_chunk": BaseApplication.load_snapshot_chunk,
    "apply_snapshot_chunk": BaseApplication.apply_snapshot_chunk,
}


def _check_methods() -> None:
    requests = {f.name for f in abci.Request.DESCRIPTOR.oneofs_by_name["value"].fields}
    missing = requests - set(CONNECTION_REQUESTS) - set(METHODS)
    unknown = set(METHODS) - requests
    if missing or unknown:
        raise TypeError(f"ABCI method table: no method for {sorted(missing)}, no such "
                        f"request {sorted(unknown)}")
    for kind, method in METHODS.items():
        if method.__name__ != kind:
            raise TypeError(f"ABCI request {kind} is answered by {method.__name__}")


_check_methods()


def answer(app: BaseApplication, kind: str, request: Message) -> Message:
    """The application's response to one ABCI request of ``kind``."""
    return getattr(app, METHODS[kind].__name__)(request)
