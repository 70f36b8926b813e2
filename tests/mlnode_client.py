"""Small helpers the ML node tests share for talking to a real server."""

from dataclasses import dataclass

from inferchain_pb.mlnode.v1 import mlnode_pb2 as pb
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as pb_grpc


@dataclass
class Generated:
    steps: list[pb.TokenStep]
    finish_reason: str

    @property
    def ids(self) -> list[int]:
        return [s.token_id for s in self.steps]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.steps)


def chat_ids(stub: pb_grpc.MLNodeStub, question: str) -> list[int]:
    chat = pb.ChatMessages(messages=[pb.ChatMessage(role="user", content=question)])
    return list(stub.Tokenize(pb.TokenizeRequest(chat=chat)).token_ids)


def generate(stub: pb_grpc.MLNodeStub, prompt_ids: list[int], top_logprobs: int = 5,
             **sampling: object) -> Generated:
    params = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 16, **sampling}
    request = pb.GenerateRequest(prompt_ids=prompt_ids, top_logprobs=top_logprobs,
                                 sampling=pb.SamplingParams(**params))
    steps, reason = [], ""
    for chunk in stub.Generate(request, timeout=300):
        if chunk.HasField("step"):
            steps.append(chunk.step)
        reason = chunk.finish_reason or reason
    return Generated(steps, reason)
