"""Epochs' queries on inference.v1.Query: the epoch and its members, proof-of-compute
submissions and their nonces, settlements, and the CometBFT validator set the chain keeps."""

from collections.abc import Callable

import grpc

from chain.epochs.expected_keepers import ValidationKeeper
from chain.epochs.keeper import EpochKeeper
from chain.epochs.validator_set import ValidatorSet
from chain.query import QueryError, address_arg
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2 as q


class EpochsQueries:
    def __init__(self, keeper: EpochKeeper, validation: ValidationKeeper,
                 validator_set: ValidatorSet, latest_height: Callable[[], int]) -> None:
        self._keeper = keeper
        self._validation = validation
        self._validator_set = validator_set
        self._latest_height = latest_height

    def epoch(self, state: KVReader, req: q.QueryEpochRequest) -> q.QueryEpochResponse:
        current = self._keeper.current(state, max(self._latest_height(), 1))
        number = req.epoch if req.HasField("epoch") else current.number
        return q.QueryEpochResponse(current=current,
                                    members=self._validation.members(state, number))

    def consensus_validators(self, state: KVReader, req: q.QueryConsensusValidatorsRequest
                             ) -> q.QueryConsensusValidatorsResponse:
        return q.QueryConsensusValidatorsResponse(
            validators=self._validator_set.current(state))

    def poc_submissions(self, state: KVReader, req: q.QueryPocSubmissionsRequest
                        ) -> q.QueryPocSubmissionsResponse:
        return q.QueryPocSubmissionsResponse(
            submissions=list(self._keeper.submissions(state, req.epoch)))

    def poc_nonces(self, state: KVReader, req: q.QueryPocNoncesRequest
                   ) -> q.QueryPocNoncesResponse:
        address_arg(req.participant, "participant")
        return q.QueryPocNoncesResponse(nonces=self._keeper.nonces(state, req.epoch,
                                                                   req.participant))

    def settlement(self, state: KVReader, req: q.QueryEpochSettlementRequest
                   ) -> q.QueryEpochSettlementResponse:
        found = self._keeper.settlement(state, req.epoch)
        if found is None:
            kept = self._keeper.params(state).settled_epochs_kept
            if req.epoch + kept < 1 << 64 and \
                    self._keeper.settlement(state, req.epoch + kept) is not None:
                raise QueryError(grpc.StatusCode.NOT_FOUND, (
                    f"epoch {req.epoch} was settled; its records were dropped when epoch "
                    f"{req.epoch + kept} was (the chain keeps {kept} settled epochs)"))
            raise QueryError(grpc.StatusCode.NOT_FOUND,
                             f"epoch {req.epoch} is not settled yet")
        return q.QueryEpochSettlementResponse(settlement=found)
