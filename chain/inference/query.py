"""Inference's gRPC queries (inference.v1.Query): what API nodes and validators read.

Every module's params are read through the ``Params`` query, which the app serves from each
module's declaration (chain/module_manager.py).
"""

from collections.abc import Callable

import grpc

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.inference import key_commitments, pass_notices, probes
from chain.inference.draw import NoEligibleExecutor
from chain.inference.expected_keepers import BankKeeper
from chain.inference.keeper import DrawUnavailable, InferenceKeeper
from chain.query import (
    MAX_HEIGHT_SPAN,
    QueryError,
    address_arg,
    enum_arg,
    height_arg,
    invalid,
    page_limit,
)
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import InferenceStatus


def _not_found(what: str) -> QueryError:
    return QueryError(grpc.StatusCode.NOT_FOUND, f"{what} not found")


class InferenceQueries:
    def __init__(self, keeper: InferenceKeeper, bank: BankKeeper,
                 latest_height: Callable[[], int]) -> None:
        self._keeper = keeper
        self._bank = bank
        self._latest_height = latest_height

    def participant(self, state: KVReader, req: q.QueryParticipantRequest
                    ) -> q.QueryParticipantResponse:
        address_arg(req.address, "address")
        found = self._keeper.participant(state, req.address)
        if found is None:
            raise _not_found(f"participant {req.address}")
        return q.QueryParticipantResponse(participant=found)

    def participants(self, state: KVReader, req: q.QueryParticipantsRequest
                     ) -> q.QueryParticipantsResponse:
        return q.QueryParticipantsResponse(participants=list(self._keeper.participants(state)))

    def model(self, state: KVReader, req: q.QueryModelRequest) -> q.QueryModelResponse:
        found = self._keeper.model(state, req.id)
        if found is None:
            raise _not_found(f"model {req.id!r}")
        return q.QueryModelResponse(model=found)

    def models(self, state: KVReader, req: q.QueryModelsRequest) -> q.QueryModelsResponse:
        return q.QueryModelsResponse(models=list(self._keeper.models(state)))

    def key_request_commitment(self, state: KVReader, req: q.QueryKeyRequestCommitmentRequest
                               ) -> q.QueryKeyRequestCommitmentResponse:
        found = key_commitments.commitment(
            state, address.encode(address_arg(req.transfer_agent, "transfer_agent")),
            req.inference_id)
        if found is None:
            raise _not_found(f"{req.transfer_agent}'s commitment of inference "
                             f"{req.inference_id[:80]!r}")
        return q.QueryKeyRequestCommitmentResponse(commitment=found)

    def probes(self, state: KVReader, req: q.QueryProbesRequest) -> q.QueryProbesResponse:
        """Bounded by the chain: a member's counts leave state when their epoch is judged."""
        agent = address.encode(address_arg(req.address, "address"))
        return q.QueryProbesResponse(probes=probes.committed(state, agent))

    def pass_notice(self, state: KVReader, req: q.QueryPassNoticeRequest
                    ) -> q.QueryPassNoticeResponse:
        found = pass_notices.notice(
            state, address.encode(address_arg(req.transfer_agent, "transfer_agent")),
            req.inference_id, req.attempt)
        if found is None:
            raise _not_found(f"{req.transfer_agent}'s notice of pick {req.attempt} of "
                             f"inference {req.inference_id[:80]!r}")
        return q.QueryPassNoticeResponse(notice=found)

    def pass_notices(self, state: KVReader, req: q.QueryPassNoticesRequest
                     ) -> q.QueryPassNoticesResponse:
        pick = address.encode(address_arg(req.pick, "pick"))
        limit = req.limit if 0 < req.limit < pass_notices.MAX_LISTED else \
            pass_notices.MAX_LISTED
        return q.QueryPassNoticesResponse(
            notices=pass_notices.notices_to(state, pick, req.since_height, limit))

    def inference(self, state: KVReader, req: q.QueryInferenceRequest
                  ) -> q.QueryInferenceResponse:
        found = self._keeper.inference(state, req.id)
        if found is None:
            raise _not_found(f"inference {req.id!r}")
        return q.QueryInferenceResponse(inference=found)

    def inferences(self, state: KVReader, req: q.QueryInferencesRequest
                   ) -> q.QueryInferencesResponse:
        """From ``from_height`` (when 0: the last MAX_HEIGHT_SPAN heights up to ``to_height``)
        to ``to_height`` (when 0: the latest height), at most MAX_HEIGHT_SPAN heights."""
        status = enum_arg(InferenceStatus, req.status, "status")
        to_height = height_arg(req.to_height, "to_height") or self._latest_height()
        from_height = height_arg(req.from_height, "from_height") or \
            max(to_height - MAX_HEIGHT_SPAN + 1, 1)
        if req.to_height and to_height < from_height:
            raise invalid(f"to_height {to_height} is below from_height {from_height}")
        to_height = min(to_height, from_height + MAX_HEIGHT_SPAN - 1)
        limit = page_limit(req.limit)
        found = []
        for item in self._keeper.inferences_by_status(state, status, from_height, to_height):
            found.append(item)
            if len(found) == limit:
                break
        return q.QueryInferencesResponse(inferences=found)

    def account(self, state: KVReader, req: q.QueryAccountRequest) -> q.QueryAccountResponse:
        raw = address_arg(req.address, "address")
        return q.QueryAccountResponse(balance=self._bank.balance(state, raw, NATIVE_DENOM),
                                      escrow=self._keeper.escrow_of(state, raw),
                                      work_balance=self._keeper.work_balance(state, raw))

    def draw(self, state: KVReader, req: q.QueryDrawRequest) -> q.QueryDrawResponse:
        height = height_arg(req.draw_height, "draw_height")
        if not height and req.request_timestamp:
            height = self._keeper.request_draw_height(state, req.request_timestamp)
            if height is None:
                raise QueryError(grpc.StatusCode.NOT_FOUND, f"no block is at or after "
                                 f"{req.request_timestamp} yet, or it is no longer kept")
        height = height or self._latest_height()
        found = self._keeper.model(state, req.model_id)
        if found is None:
            raise _not_found(f"model {req.model_id!r}")
        try:
            order = list(self._keeper.draw(state, req.inference_id, found, height))
        except DrawUnavailable as exc:
            raise QueryError(grpc.StatusCode.NOT_FOUND, str(exc)) from exc
        except NoEligibleExecutor as exc:
            raise QueryError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc
        return q.QueryDrawResponse(order=order, draw_height=height)

    def allowance(self, state: KVReader, req: q.QueryAllowanceRequest
                  ) -> q.QueryAllowanceResponse:
        return q.QueryAllowanceResponse(remaining=self._keeper.allowance(
            state, address_arg(req.developer, "developer"),
            address_arg(req.transfer_agent, "transfer_agent")))
