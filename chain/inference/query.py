"""Inference's gRPC queries (inference.v1.Query): what API nodes and validators read."""

from collections.abc import Callable, Mapping

import grpc

from chain.bank.coins import NATIVE_DENOM
from chain.bank.keeper import BankKeeper
from chain.inference.draw import NoEligibleExecutor
from chain.inference.keeper import DrawUnavailable, InferenceKeeper
from chain.params import ModuleParams
from chain.query import (
    MAX_HEIGHT_SPAN,
    QueryError,
    QueryRouter,
    address_arg,
    enum_arg,
    height_arg,
    invalid,
    page_limit,
)
from chain.store import KVReader
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import InferenceStatus

PATH = "/inference.v1.Query/"


def register(queries: QueryRouter, keeper: InferenceKeeper, bank: BankKeeper,
             latest_height: Callable[[], int],
             module_params: Mapping[str, Callable[[KVReader], ModuleParams]]) -> None:
    """``module_params`` maps each module name to its params reader, for the Params query."""
    def not_found(what: str) -> QueryError:
        return QueryError(grpc.StatusCode.NOT_FOUND, f"{what} not found")

    def participant(state: KVReader, req: q.QueryParticipantRequest
                    ) -> q.QueryParticipantResponse:
        address_arg(req.address, "address")
        found = keeper.participant(state, req.address)
        if found is None:
            raise not_found(f"participant {req.address}")
        return q.QueryParticipantResponse(participant=found)

    def participants(state: KVReader, req: q.QueryParticipantsRequest
                     ) -> q.QueryParticipantsResponse:
        return q.QueryParticipantsResponse(participants=list(keeper.participants(state)))

    def model(state: KVReader, req: q.QueryModelRequest) -> q.QueryModelResponse:
        found = keeper.model(state, req.id)
        if found is None:
            raise not_found(f"model {req.id!r}")
        return q.QueryModelResponse(model=found)

    def models(state: KVReader, req: q.QueryModelsRequest) -> q.QueryModelsResponse:
        return q.QueryModelsResponse(models=list(keeper.models(state)))

    def inference(state: KVReader, req: q.QueryInferenceRequest) -> q.QueryInferenceResponse:
        found = keeper.inference(state, req.id)
        if found is None:
            raise not_found(f"inference {req.id!r}")
        return q.QueryInferenceResponse(inference=found)

    def inferences(state: KVReader, req: q.QueryInferencesRequest
                   ) -> q.QueryInferencesResponse:
        """From ``from_height`` (when 0: the last MAX_HEIGHT_SPAN heights up to ``to_height``)
        to ``to_height`` (when 0: the latest height), at most MAX_HEIGHT_SPAN heights."""
        status = enum_arg(InferenceStatus, req.status, "status")
        to_height = height_arg(req.to_height, "to_height") or latest_height()
        from_height = height_arg(req.from_height, "from_height") or \
            max(to_height - MAX_HEIGHT_SPAN + 1, 1)
        if req.to_height and to_height < from_height:
            raise invalid(f"to_height {to_height} is below from_height {from_height}")
        to_height = min(to_height, from_height + MAX_HEIGHT_SPAN - 1)
        limit = page_limit(req.limit)
        found = []
        for item in keeper.inferences_by_status(state, status, from_height, to_height):
            found.append(item)
            if len(found) == limit:
                break
        return q.QueryInferencesResponse(inferences=found)

    def account(state: KVReader, req: q.QueryAccountRequest) -> q.QueryAccountResponse:
        raw = address_arg(req.address, "address")
        return q.QueryAccountResponse(balance=bank.balance(state, raw, NATIVE_DENOM),
                                      escrow=keeper.escrow_of(state, raw),
                                      work_balance=keeper.work_balance(state, raw))

    def draw(state: KVReader, req: q.QueryDrawRequest) -> q.QueryDrawResponse:
        height = height_arg(req.draw_height, "draw_height") or latest_height()
        found = keeper.model(state, req.model_id)
        if found is None:
            raise not_found(f"model {req.model_id!r}")
        try:
            order = keeper.draw(state, req.inference_id, found, height)
        except DrawUnavailable as exc:
            raise QueryError(grpc.StatusCode.NOT_FOUND, str(exc)) from exc
        except NoEligibleExecutor as exc:
            raise QueryError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc
        return q.QueryDrawResponse(order=order, draw_height=height)

    def params(state: KVReader, req: q.QueryParamsRequest) -> q.QueryParamsResponse:
        read = module_params.get(req.module or "inference")
        if read is None:
            raise QueryError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"no params for module {req.module!r}; modules with params: "
                             f"{', '.join(sorted(module_params))}")
        return q.QueryParamsResponse(params_json=read(state).to_bytes().decode())

    def allowance(state: KVReader, req: q.QueryAllowanceRequest) -> q.QueryAllowanceResponse:
        return q.QueryAllowanceResponse(remaining=keeper.allowance(
            state, address_arg(req.developer, "developer"),
            address_arg(req.transfer_agent, "transfer_agent")))

    for name, fn, request, response in [
        ("Allowance", allowance, q.QueryAllowanceRequest, q.QueryAllowanceResponse),
        ("Participant", participant, q.QueryParticipantRequest, q.QueryParticipantResponse),
        ("Participants", participants, q.QueryParticipantsRequest, q.QueryParticipantsResponse),
        ("Model", model, q.QueryModelRequest, q.QueryModelResponse),
        ("Models", models, q.QueryModelsRequest, q.QueryModelsResponse),
        ("Inference", inference, q.QueryInferenceRequest, q.QueryInferenceResponse),
        ("Inferences", inferences, q.QueryInferencesRequest, q.QueryInferencesResponse),
        ("Account", account, q.QueryAccountRequest, q.QueryAccountResponse),
        ("Draw", draw, q.QueryDrawRequest, q.QueryDrawResponse),
        ("Params", params, q.QueryParamsRequest, q.QueryParamsResponse),
    ]:
        queries.register(PATH + name, request, response, fn)
