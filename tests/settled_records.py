"""Test-side reads of the chain's queries, at the latest height or a past one, and of records
the chain drops once their epoch is settled (a validation task), as they stood before."""

from typing import Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from chain.query import HEIGHT_HEADER
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.validation_pb2 import ValidationTask

Reply = TypeVar("Reply", bound=Message)


class Query(Protocol):
    def __call__(self, name: str, request: Message, reply_type: type[Reply],
                 height: int = 0) -> Reply: ...


def query_at(channel: grpc.Channel, name: str, request: Message, reply_type: type[Reply],
             height: int = 0) -> Reply:
    """inference.v1.Query ``name`` as of ``height`` (0: the latest)."""
    call = channel.unary_unary(f"/inference.v1.Query/{name}",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=reply_type.FromString)
    return call(request, timeout=5,
                metadata=[(HEIGHT_HEADER, str(height))] if height else None)


def validation_task(query: Query, inference_id: str) -> ValidationTask:
    """The inference's validation task; once its epoch's settlement cut the inference to a
    summary and dropped the task, the task as it stood in the block before (from the node's
    state history)."""
    request = q.QueryValidationTaskRequest(inference_id=inference_id)
    try:
        return query("ValidationTask", request, q.QueryValidationTaskResponse).task
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        summarized = query("Inference", q.QueryInferenceRequest(id=inference_id),
                           q.QueryInferenceResponse).inference.summarized_height
        if not summarized:
            raise
    return query("ValidationTask", request, q.QueryValidationTaskResponse,
                 height=summarized - 1).task
