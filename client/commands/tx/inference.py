"""``inferchain tx inference register|update|withdraw|grant-allowance``.

A participant names its models by id; the weights hash each must carry is the registry's
(asked from the node) unless given as ``ID@SHA256``, and each is declared in the registry's
serving dtype, the only one the chain takes (the ML node must serve in it). The node key is
the API node's ed25519 key: its public key in hex (``--node-pubkey``) or the API node's
``node.key`` file (``--node-key``), of which only the public key is sent.
``--consensus-key`` names the node's CometBFT ``priv_validator_key.json``: its public key is
sent with its signature over the chain id, the participant and the key
(``consensus_key_payload``), the proof the chain requires before that validator's power
follows the participant's weight.
"""

import argparse
from pathlib import Path

from google.protobuf.message import Message
from nacl.signing import SigningKey

from chain.inference import payload
from client.arguments import count, parse_address
from client.commands.leaf import group
from client.commands.tx.signed import tx_command
from client.errors import CliError
from client.node import Node
from genesis.comet_keys import read_priv_validator_key
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    MsgGrantAllowance,
    MsgRegisterParticipant,
    MsgUpdateParticipant,
    MsgWithdrawParticipant,
    Participant,
    ServedModel,
)


def add_parser(modules: argparse._SubParsersAction) -> None:
    commands = group(modules, "inference", "participants and allowances")
    register_ = tx_command(commands, "register", "register the signer as a participant",
                           register)
    update_ = tx_command(commands, "update", "change the signer's URL, node key or models "
                         "(what is not given stays)", update)
    for parser, required in ((register_, True), (update_, False)):
        parser.add_argument("--url", required=required, help="the API node's public URL")
        keys = parser.add_mutually_exclusive_group(required=required)
        keys.add_argument("--node-pubkey", help="the API node's ed25519 public key, 64 hex")
        keys.add_argument("--node-key", type=Path,
                          help="the API node's node.key file (its public key is sent)")
        parser.add_argument("--model", action="append", dest="models", required=required,
                            metavar="ID[@SHA256]", help="a model served (repeat for more)")
        parser.add_argument("--consensus-key", type=Path, metavar="PRIV_VALIDATOR_KEY_JSON",
                            help="the node's CometBFT validator key file: the validator whose "
                                 "power follows this participant's weight")
    tx_command(commands, "withdraw", "leave the executor draw", withdraw)
    grant = tx_command(commands, "grant-allowance", "let a transfer agent spend up to LIMIT "
                       "ninfer on the signer's behalf (0 revokes)", grant_allowance)
    grant.add_argument("transfer_agent")
    grant.add_argument("limit", type=count)


def register(args: argparse.Namespace, signer: str, node: Node) -> list[Message]:
    pubkey, proof = _consensus_key(args, signer, node)
    return [MsgRegisterParticipant(creator=signer, url=args.url, node_pubkey=_node_pubkey(args),
                                   models=_models(args.models, node), consensus_pubkey=pubkey,
                                   consensus_key_signature=proof)]


def update(args: argparse.Namespace, signer: str, node: Node) -> list[Message]:
    current: Participant = node.inference(
        "Participant", q.QueryParticipantRequest(address=signer), q.QueryParticipantResponse,
        not_found=f"{signer} is not a participant; register it first").participant
    if args.url is None and args.models is None and not (args.node_pubkey or args.node_key) \
            and args.consensus_key is None:
        raise CliError("nothing to update: give --url, --node-pubkey/--node-key, --model or "
                       "--consensus-key")
    pubkey = (_node_pubkey(args) if args.node_pubkey or args.node_key
              else current.node_pubkey)
    models = _models(args.models, node) if args.models else list(current.models)
    consensus_pubkey, proof = _consensus_key(args, signer, node)
    return [MsgUpdateParticipant(creator=signer, url=args.url or current.url,
                                 node_pubkey=pubkey, models=models,
                                 consensus_pubkey=consensus_pubkey,
                                 consensus_key_signature=proof)]


def withdraw(args: argparse.Namespace, signer: str, node: Node) -> list[Message]:
    return [MsgWithdrawParticipant(creator=signer)]


def grant_allowance(args: argparse.Namespace, signer: str, node: Node) -> list[Message]:
    return [MsgGrantAllowance(creator=signer, limit=args.limit,
                              transfer_agent=parse_address(args.transfer_agent,
                                                           "transfer agent"))]


def _node_pubkey(args: argparse.Namespace) -> bytes:
    if args.node_key is not None:
        try:
            seed = bytes.fromhex(args.node_key.read_text().strip())
            return bytes(SigningKey(seed).verify_key)
        except (OSError, ValueError, TypeError) as exc:
            raise CliError(f"--node-key {args.node_key}: not a node key file (64 hex "
                           f"digits of an ed25519 seed): {exc}") from None
    try:
        pubkey = bytes.fromhex(args.node_pubkey)
    except ValueError:
        pubkey = b""
    if len(pubkey) != 32:
        raise CliError(f"--node-pubkey {args.node_pubkey!r} is not a 32-byte ed25519 public "
                       f"key in hex (64 digits)")
    return pubkey


def _consensus_key(args: argparse.Namespace, signer: str, node: Node) -> tuple[bytes, bytes]:
    """The validator's public key and its signature naming this participant on this chain;
    none when no key file is given."""
    if args.consensus_key is None:
        return b"", b""
    try:
        key = read_priv_validator_key(args.consensus_key)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"--consensus-key {args.consensus_key}: not a CometBFT "
                       f"priv_validator_key.json: {exc}") from None
    pubkey = bytes(key.verify_key)
    chain_id = node.status().chain_id
    return pubkey, key.sign(payload.consensus_key_payload(chain_id, signer, pubkey)).signature


def _models(specs: list[str], node: Node) -> list[ServedModel]:
    models = []
    for spec in specs:
        model_id, _, weights = spec.partition("@")
        registered = node.inference("Model", q.QueryModelRequest(id=model_id),
                                    q.QueryModelResponse,
                                    not_found=f"model {model_id!r} is not in the chain's "
                                              f"registry").model
        models.append(ServedModel(model_id=model_id,
                                  weights_sha256=weights or registered.weights_sha256,
                                  dtype=registered.serving_dtype))
    return models
