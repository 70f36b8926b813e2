"""Epochs' queries on inference.v1.Query: proof-of-compute submissions and their nonces,
settlements, and the CometBFT validator set the chain keeps."""

import grpc

from chain.epochs.keeper import EpochKeeper
from chain.epochs.validator_set import ValidatorSet
from chain.query import QueryError, QueryRouter, address_arg
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2 as q

PATH = "/inference.v1.Query/"


def register(queries: QueryRouter, epochs: EpochKeeper, validator_set: ValidatorSet) -> None:
    def consensus_validators(state: KVReader, req: q.QueryConsensusValidatorsRequest
                             ) -> q.QueryConsensusValidatorsResponse:
        return q.QueryConsensusValidatorsResponse(validators=validator_set.current(state))

    def submissions(state: KVReader, req: q.QueryPocSubmissionsRequest
                    ) -> q.QueryPocSubmissionsResponse:
        return q.QueryPocSubmissionsResponse(submissions=list(epochs.submissions(state,
                                                                                 req.epoch)))

    def nonces(state: KVReader, req: q.QueryPocNoncesRequest) -> q.QueryPocNoncesResponse:
        address_arg(req.participant, "participant")
        return q.QueryPocNoncesResponse(nonces=epochs.nonces(state, req.epoch,
                                                             req.participant))

    def settlement(state: KVReader, req: q.QueryEpochSettlementRequest
                   ) -> q.QueryEpochSettlementResponse:
        found = epochs.settlement(state, req.epoch)
        if found is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND,
                             f"epoch {req.epoch} is not settled yet")
        return q.QueryEpochSettlementResponse(settlement=found)

    for name, fn, request, response in [
        ("ConsensusValidators", consensus_validators, q.QueryConsensusValidatorsRequest,
         q.QueryConsensusValidatorsResponse),
        ("PocSubmissions", submissions, q.QueryPocSubmissionsRequest,
         q.QueryPocSubmissionsResponse),
        ("PocNonces", nonces, q.QueryPocNoncesRequest, q.QueryPocNoncesResponse),
        ("EpochSettlement", settlement, q.QueryEpochSettlementRequest,
         q.QueryEpochSettlementResponse),
    ]:
        queries.register(PATH + name, request, response, fn)
