"""``python -m chain gov …``: submit proposals, deposit, vote and read gov state from a node.

Transactions are signed with an account key (a hex secp256k1 key, or a file holding one, like
an API node's ``account.key``) and sent to the node's gRPC with cosmpy, which simulates for
gas and pays it at the chain's minimum gas price. The chain id is read from the node.

A proposal file is JSON: ``{"title", "summary", "deposit" (ninfer), "messages": [...]}``,
each message an object with ``"@type"`` (e.g. ``"/inference.v1.ParamChange"``) and the
content's fields; a ParamChange may give its new value as ``"value"`` (any JSON) instead of
``"value_json"``. docs/gov.md has examples.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import grpc
from cosmpy.aerial.client import LedgerClient, NetworkConfig
from cosmpy.aerial.client.utils import prepare_and_broadcast_basic_transaction
from cosmpy.aerial.exceptions import BroadcastError
from cosmpy.aerial.tx import Transaction
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from google.protobuf import json_format
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.message import Message

from chain.auth.address import PREFIX
from chain.bank.coins import NATIVE_DENOM
from inferchain_pb.inference.v1 import gov_pb2
from inferchain_pb.inference.v1 import query_pb2 as q

QUERY = "/inference.v1.Query/"
CONTENT_TYPES = {"/" + m.DESCRIPTOR.full_name: m for m in [
    gov_pb2.ParamChange, gov_pb2.RegisterModel, gov_pb2.UpdateModel, gov_pb2.RetireModel,
    gov_pb2.SoftwareUpgrade]}
OPTIONS = {"yes": gov_pb2.VOTE_OPTION_YES, "no": gov_pb2.VOTE_OPTION_NO,
           "abstain": gov_pb2.VOTE_OPTION_ABSTAIN,
           "no_with_veto": gov_pb2.VOTE_OPTION_NO_WITH_VETO}
MODULES = ["auth", "bank", "inference", "epochs", "validation", "gov"]


def add_parser(parts: argparse._SubParsersAction) -> None:
    gov = parts.add_parser("gov", help="governance: proposals, deposits, votes, params")
    gov.add_argument("--grpc", default="127.0.0.1:9090", help="the node's gRPC address")
    commands = gov.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="submit the proposal in a JSON file")
    submit.add_argument("file", type=Path)
    deposit = commands.add_parser("deposit", help="add ninfer to a proposal's deposit")
    deposit.add_argument("proposal_id", type=int)
    deposit.add_argument("amount", type=int)
    vote = commands.add_parser("vote", help="vote on a proposal (again: replaces the vote)")
    vote.add_argument("proposal_id", type=int)
    vote.add_argument("option", choices=sorted(OPTIONS))
    for signed in (submit, deposit, vote):
        signed.add_argument("--key", required=True,
                            help="hex account key, or a file holding one")
    proposals = commands.add_parser("proposals", help="list proposals")
    proposals.add_argument("--status", choices=["deposit_period", "voting_period", "passed",
                                                "rejected", "failed"])
    proposal = commands.add_parser("proposal", help="one proposal, its votes and tally")
    proposal.add_argument("proposal_id", type=int)
    params = commands.add_parser("params", help="params of the modules named (default all)")
    params.add_argument("modules", nargs="*", default=MODULES, help=", ".join(MODULES))
    commands.add_parser("upgrade-plan", help="the last upgrade plan governance approved")


def run(args: argparse.Namespace) -> None:
    """Prints the outcome as JSON; a refusal exits non-zero with the chain's message."""
    with grpc.insecure_channel(args.grpc) as channel:
        node = Node(channel)
        try:
            if args.command in ("submit", "deposit", "vote"):
                wallet = LocalWallet(PrivateKey(bytes.fromhex(_key_hex(args.key))),
                                     prefix=PREFIX)
                outcome = node.send(args.grpc, wallet, _message(args, str(wallet.address())))
            else:
                outcome = node.read(args)
        except grpc.RpcError as exc:
            raise SystemExit(f"refused: {exc.details()}") from exc
        except BroadcastError as exc:
            raise SystemExit(f"the tx failed: {exc}") from exc
        print(json.dumps(outcome, indent=2))


def proposal_file(path: Path) -> dict[str, Any]:
    """The proposal JSON with its messages packed: the fields of MsgSubmitProposal."""
    raw = json.loads(path.read_text())
    unknown = set(raw) - {"title", "summary", "deposit", "messages"}
    if unknown:
        raise SystemExit(f"{path}: unknown fields {sorted(unknown)}")
    packed = []
    for item in raw.get("messages", []):
        fields = dict(item)
        type_url = fields.pop("@type", "")
        if type_url not in CONTENT_TYPES:
            raise SystemExit(f"{path}: message @type {type_url!r} is not one of "
                             f"{', '.join(sorted(CONTENT_TYPES))}")
        if "value" in fields:
            fields["value_json"] = json.dumps(fields.pop("value"))
        content = json_format.ParseDict(fields, CONTENT_TYPES[type_url]())
        any_ = AnyPb()
        any_.Pack(content, type_url_prefix="/")
        packed.append(any_)
    return {"title": raw.get("title", ""), "summary": raw.get("summary", ""),
            "initial_deposit": int(raw.get("deposit", 0)), "messages": packed}


def _message(args: argparse.Namespace, signer: str) -> Message:
    if args.command == "submit":
        return submit_message(args.file, signer)
    if args.command == "deposit":
        return deposit_message(args.proposal_id, args.amount, signer)
    return vote_message(args.proposal_id, args.option, signer)


def submit_message(path: Path, proposer: str) -> gov_pb2.MsgSubmitProposal:
    return gov_pb2.MsgSubmitProposal(proposer=proposer, **proposal_file(path))


def deposit_message(proposal_id: int, amount: int, depositor: str) -> gov_pb2.MsgDeposit:
    return gov_pb2.MsgDeposit(depositor=depositor, proposal_id=proposal_id, amount=amount)


def vote_message(proposal_id: int, option: str, voter: str) -> gov_pb2.MsgVote:
    """``option`` is one of OPTIONS' names: yes, no, abstain, no_with_veto."""
    return gov_pb2.MsgVote(voter=voter, proposal_id=proposal_id, option=OPTIONS[option])


def _key_hex(value: str) -> str:
    path = Path(value)
    return path.read_text().strip() if path.is_file() else value.strip()


class Node:
    """The node's inference.v1.Query service, and transactions through cosmpy."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel

    def query(self, name: str, request: Message, reply_type: type[Message]) -> Message:
        call = self._channel.unary_unary(QUERY + name,
                                         request_serializer=lambda m: m.SerializeToString(),
                                         response_deserializer=reply_type.FromString)
        return call(request, timeout=10)

    def send(self, grpc_address: str, wallet: LocalWallet, message: Message) -> dict:
        """Simulates, signs, broadcasts and waits for the block: the tx's outcome."""
        chain_id = self.query("Status", q.QueryStatusRequest(), q.QueryStatusResponse).chain_id
        client = LedgerClient(NetworkConfig(
            chain_id=chain_id, url=f"grpc+http://{grpc_address}", fee_minimum_gas_price=0.01,
            fee_denomination=NATIVE_DENOM, staking_denomination=NATIVE_DENOM))
        tx = Transaction()
        tx.add_message(message)
        submitted = prepare_and_broadcast_basic_transaction(client, tx, wallet)
        submitted.wait_to_complete()
        response = submitted.response
        events = {kind: dict(attributes) for kind, attributes in response.events.items()}
        return {"txhash": submitted.tx_hash, "height": response.height, "code": response.code,
                "log": response.raw_log, "events": events}

    def read(self, args: argparse.Namespace) -> Any:
        if args.command == "proposals":
            return self.proposals(args.status)
        if args.command == "proposal":
            return self.proposal(args.proposal_id)
        if args.command == "params":
            return self.params(args.modules)
        return self.upgrade_plan()

    def proposals(self, status: str | None) -> list[dict]:
        """Every proposal, or those whose status is ``status`` (e.g. ``voting_period``)."""
        value = getattr(gov_pb2, f"PROPOSAL_STATUS_{status.upper()}") if status else 0
        reply = self.query("Proposals", q.QueryProposalsRequest(status=value),
                           q.QueryProposalsResponse)
        return [_dict(p) for p in reply.proposals]

    def proposal(self, pid: int) -> dict:
        """One proposal with its votes and tally."""
        return {"proposal": _dict(self.query("Proposal", q.QueryProposalRequest(
                    proposal_id=pid), q.QueryProposalResponse).proposal),
                "votes": [_dict(v) for v in self.query("ProposalVotes",
                          q.QueryProposalVotesRequest(proposal_id=pid),
                          q.QueryProposalVotesResponse).votes],
                "tally": _dict(self.query("ProposalTally", q.QueryProposalTallyRequest(
                    proposal_id=pid), q.QueryProposalTallyResponse).tally)}

    def params(self, modules: list[str]) -> dict[str, Any]:
        return {m: json.loads(self.query("Params", q.QueryParamsRequest(module=m),
                                         q.QueryParamsResponse).params_json)
                for m in modules}

    def upgrade_plan(self) -> dict:
        return _dict(self.query("UpgradePlan", q.QueryUpgradePlanRequest(),
                                q.QueryUpgradePlanResponse).plan)


def _dict(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)
