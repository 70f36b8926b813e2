"""``inferchain query inference …``: participants, models, inferences, accounts, draws,
allowances."""

import argparse

from google.protobuf.message import Message

from client.arguments import count, parse_address
from client.commands.leaf import group, query
from client.commands.query.params import add_params
from client.node import Node
from inferchain_pb.inference.v1 import inference_pb2
from inferchain_pb.inference.v1 import query_pb2 as q

STATUSES = [name for name in inference_pb2.InferenceStatus.keys()
            if name != "INFERENCE_STATUS_UNSPECIFIED"]


def add_parser(modules: argparse._SubParsersAction) -> None:
    commands = group(modules, "inference", "participants, models, inferences, draws")
    query(commands, "participant", "one participant by address",
          participant).add_argument("address")
    query(commands, "participants", "every participant", participants)
    query(commands, "model", "one model of the registry by id", model).add_argument("id")
    query(commands, "models", "the model registry", models)
    query(commands, "inference", "one inference by id", inference).add_argument("id")
    listed = query(commands, "inferences", "inferences of a status changed in a height range",
                   inferences)
    listed.add_argument("--status", choices=STATUSES, default="FINISHED")
    listed.add_argument("--from-height", type=count, default=0)
    listed.add_argument("--to-height", type=count, default=0, help="0: the latest")
    listed.add_argument("--limit", type=count, default=100)
    query(commands, "account", "an address's balance, escrow and work balance",
          account).add_argument("address")
    draw_ = query(commands, "draw", "the executor order the chain draws for an inference",
                  draw)
    draw_.add_argument("inference_id")
    draw_.add_argument("model_id")
    draw_.add_argument("--height", type=count, default=0, help="draw height (0: the latest)")
    allowance_ = query(commands, "allowance", "what a developer still allows a transfer agent "
                       "to spend", allowance)
    allowance_.add_argument("developer")
    allowance_.add_argument("transfer_agent")
    add_params(commands, "inference")


def participant(args: argparse.Namespace, node: Node) -> Message:
    address = parse_address(args.address)
    return node.inference("Participant", q.QueryParticipantRequest(address=address),
                          q.QueryParticipantResponse).participant


def participants(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("Participants", q.QueryParticipantsRequest(),
                          q.QueryParticipantsResponse)


def model(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("Model", q.QueryModelRequest(id=args.id), q.QueryModelResponse).model


def models(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("Models", q.QueryModelsRequest(), q.QueryModelsResponse)


def inference(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("Inference", q.QueryInferenceRequest(id=args.id),
                          q.QueryInferenceResponse).inference


def inferences(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("Inferences", q.QueryInferencesRequest(
        status=inference_pb2.InferenceStatus.Value(args.status), from_height=args.from_height,
        to_height=args.to_height, limit=min(args.limit, 1000)), q.QueryInferencesResponse)


def account(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("Account", q.QueryAccountRequest(address=parse_address(args.address)),
                          q.QueryAccountResponse)


def draw(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("Draw", q.QueryDrawRequest(
        inference_id=args.inference_id, model_id=args.model_id, draw_height=args.height),
        q.QueryDrawResponse)


def allowance(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("Allowance", q.QueryAllowanceRequest(
        developer=parse_address(args.developer, "developer"),
        transfer_agent=parse_address(args.transfer_agent, "transfer agent")),
        q.QueryAllowanceResponse)
