"""``inferchain query epochs …``: the epoch, proof of compute, settlements, validator set."""

import argparse

from google.protobuf.message import Message

from client.arguments import count, parse_address
from client.commands.leaf import group, query
from client.commands.query.params import add_params
from client.node import Node
from inferchain_pb.inference.v1 import query_pb2 as q


def add_parser(modules: argparse._SubParsersAction) -> None:
    commands = group(modules, "epochs", "epochs, proof of compute, settlements")
    query(commands, "epoch", "the current epoch, and the members of EPOCH (default current)",
          epoch).add_argument("epoch", type=count, nargs="?")
    query(commands, "poc-submissions", "an epoch's proof-of-compute submissions",
          poc_submissions).add_argument("epoch", type=count)
    nonces = query(commands, "poc-nonces", "one participant's PoC nonces in an epoch",
                   poc_nonces)
    nonces.add_argument("epoch", type=count)
    nonces.add_argument("participant")
    query(commands, "settlement", "what an epoch's settlement paid, minted and burned",
          settlement).add_argument("epoch", type=count)
    query(commands, "consensus-validators", "the CometBFT validator set the chain last set",
          consensus_validators)
    add_params(commands, "epochs")


def epoch(args: argparse.Namespace, node: Node) -> Message:
    request = q.QueryEpochRequest() if args.epoch is None else q.QueryEpochRequest(
        epoch=args.epoch)
    return node.inference("Epoch", request, q.QueryEpochResponse)


def poc_submissions(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("PocSubmissions", q.QueryPocSubmissionsRequest(epoch=args.epoch),
                          q.QueryPocSubmissionsResponse)


def poc_nonces(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("PocNonces", q.QueryPocNoncesRequest(
        epoch=args.epoch, participant=parse_address(args.participant, "participant")),
        q.QueryPocNoncesResponse)


def settlement(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("EpochSettlement", q.QueryEpochSettlementRequest(epoch=args.epoch),
                          q.QueryEpochSettlementResponse).settlement


def consensus_validators(args: argparse.Namespace, node: Node) -> Message:
    return node.inference("ConsensusValidators", q.QueryConsensusValidatorsRequest(),
                          q.QueryConsensusValidatorsResponse).validators
