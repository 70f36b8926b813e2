"""What the API node reads from its chain node: participants, models, draws, inferences, accounts,
what its validator worker follows: epochs, seed commitments, validation tasks and votes, and
what its PoC worker follows: proof-of-compute submissions and their nonces.

Async over gRPC (``grpc.aio``), on a channel the caller opens once and shares with
``apinode.tx_sender``, e.g. ``grpc.aio.insecure_channel("127.0.0.1:9090")``. Methods are
called by path with the protobuf classes the chain itself uses, so no stubs are generated and
the Cosmos services need nothing beyond cosmpy's protos.

A query for one thing that the chain does not have (NOT_FOUND) answers None: "no such
inference yet" is a normal answer for a transfer agent. Every other failure raises: a
``ChainUnavailable`` when the node cannot be reached or does not answer in time (worth a retry,
or a 503 to the developer), a ``ChainQueryError`` when the node refused the query.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, NamedTuple, TypeVar

import grpc
from cosmpy.protos.cosmos.auth.v1beta1 import query_pb2 as auth_query
from cosmpy.protos.cosmos.auth.v1beta1.auth_pb2 import BaseAccount
from cosmpy.protos.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from google.protobuf.message import Message

from chain.query import HEIGHT_HEADER
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.epochs_pb2 import Epoch, PocNonce, PocSubmission
from inferchain_pb.inference.v1.inference_pb2 import (
    Inference,
    KeyRequestCommitment,
    Model,
    Participant,
    PassNotice,
)
from inferchain_pb.inference.v1.query_pb2 import ProbeCount
from inferchain_pb.inference.v1.validation_pb2 import (
    EpochMembers,
    SeedCommitment,
    ValidationTask,
)

INFERENCE = "/inference.v1.Query/"
AUTH_ACCOUNT = "/cosmos.auth.v1beta1.Query/Account"
LATEST_BLOCK = "/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock"
DEFAULT_TIMEOUT_S = 10.0
# How often a node waiting on the chain's height asks for it.
HEIGHT_POLL_S = 0.25
# The inference id of the draws that only ask whether a model has anyone to draw.
LISTING_DRAW_ID = "models-listing"
# The node is down, restarting or overloaded: nothing was decided, so asking again may work.
UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

Reply = TypeVar("Reply", bound=Message)


class ChainQueryError(Exception):
    """The chain node answered a call with an error; ``code`` is the gRPC status."""

    def __init__(self, path: str, code: grpc.StatusCode | None, details: str) -> None:
        status = code.name if code else "bad reply"
        super().__init__(f"{path}: {status}: {details}")
        self.path = path
        self.code = code
        self.details = details


class ChainUnavailable(ChainQueryError):
    """The chain node could not be reached or did not answer within the deadline."""


class Balances(NamedTuple):
    """An account's ninfer: spendable, held in escrow for open inferences, and earned as work."""

    balance: int
    escrow: int
    work_balance: int


class Draw(NamedTuple):
    """The executor order for an inference and the height whose block hash seeded it."""

    order: list[str]
    draw_height: int


class AuthAccount(NamedTuple):
    """What a signer needs: the account number (fixed) and the next sequence to sign with."""

    number: int
    sequence: int


class EpochInfo(NamedTuple):
    """The chain's current epoch, and the members of the epoch that was asked about."""

    current: Epoch
    members: EpochMembers


class ChainQueries:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.channel = channel
        self.timeout_s = timeout_s

    async def call(self, path: str, request: Message, reply_type: type[Reply],
                   height: int = 0) -> Reply:
        """One unary call by method path, as of ``height`` (0: the latest), its failures
        turned into this module's errors."""
        method = self.channel.unary_unary(path, request_serializer=_serialize,
                                          response_deserializer=reply_type.FromString)
        try:
            return await method(request, timeout=self.timeout_s,
                                metadata=((HEIGHT_HEADER, str(height)),) if height else None)
        except grpc.aio.AioRpcError as exc:
            error = ChainUnavailable if exc.code() in UNREACHABLE else ChainQueryError
            raise error(path, exc.code(), exc.details() or "") from exc

    async def find(self, path: str, request: Message, reply_type: type[Reply],
                   height: int = 0) -> Reply | None:
        """``call``, except that NOT_FOUND answers None."""
        try:
            return await self.call(path, request, reply_type, height)
        except ChainQueryError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    async def participants(self) -> list[Participant]:
        reply = await self.call(INFERENCE + "Participants", q.QueryParticipantsRequest(),
                                q.QueryParticipantsResponse)
        return list(reply.participants)

    async def participant(self, address: str) -> Participant | None:
        reply = await self.find(INFERENCE + "Participant",
                                q.QueryParticipantRequest(address=address),
                                q.QueryParticipantResponse)
        return reply.participant if reply else None

    async def models(self) -> list[Model]:
        reply = await self.call(INFERENCE + "Models", q.QueryModelsRequest(),
                                q.QueryModelsResponse)
        return list(reply.models)

    async def served_models(self) -> list[Model]:
        """Registry models the chain's draw can name someone for: served with the
        registry's weights by an active participant with weight, not INVALID, and checkable
        by other members (docs/design.md §3.3). What a developer can actually use: a model
        governance just registered appears once members enough to check it serve it."""
        return [m for m in await self.models() if await self._drawn_for(m.id)]

    async def _drawn_for(self, model_id: str) -> bool:
        """Whether a draw at the latest height names anyone for the model (any id will do:
        who is a candidate does not depend on it, only their order)."""
        try:
            await self.draw(LISTING_DRAW_ID, model_id)
        except ChainQueryError as exc:
            if exc.code == grpc.StatusCode.FAILED_PRECONDITION:
                return False
            raise
        return True

    async def model(self, model_id: str) -> Model | None:
        reply = await self.find(INFERENCE + "Model", q.QueryModelRequest(id=model_id),
                                q.QueryModelResponse)
        return reply.model if reply else None

    async def draw(self, inference_id: str, model_id: str, draw_height: int = 0,
                   request_timestamp: int = 0) -> Draw:
        """The executor order the chain will hold the transfer agent to; at ``draw_height``,
        else at the height bound to ``request_timestamp``, else at the latest height.

        Raises ``ChainQueryError`` with FAILED_PRECONDITION when nobody can serve the model
        (a 503 for the developer) and NOT_FOUND for an unknown model or height (or no block
        at or after the timestamp yet).
        """
        reply = await self.call(INFERENCE + "Draw", q.QueryDrawRequest(
            inference_id=inference_id, model_id=model_id, draw_height=draw_height,
            request_timestamp=request_timestamp), q.QueryDrawResponse)
        return Draw(list(reply.order), reply.draw_height)

    async def key_request_commitment(self, transfer_agent: str,
                                     inference_id: str) -> KeyRequestCommitment | None:
        """``transfer_agent``'s commitment of an API-key request, while no start took it."""
        reply = await self.find(INFERENCE + "KeyRequestCommitment",
                                q.QueryKeyRequestCommitmentRequest(
                                    transfer_agent=transfer_agent, inference_id=inference_id),
                                q.QueryKeyRequestCommitmentResponse)
        return reply.commitment if reply else None

    async def pass_notice(self, transfer_agent: str, inference_id: str,
                          attempt: int) -> PassNotice | None:
        """``transfer_agent``'s notice that it passes pick ``attempt`` of a request."""
        reply = await self.find(INFERENCE + "PassNotice", q.QueryPassNoticeRequest(
            transfer_agent=transfer_agent, inference_id=inference_id, attempt=attempt),
                                q.QueryPassNoticeResponse)
        return reply.notice if reply else None

    async def pass_notices(self, pick: str, since_height: int) -> list[PassNotice]:
        """The notices naming ``pick`` that blocks from ``since_height`` on took."""
        reply = await self.call(INFERENCE + "PassNotices", q.QueryPassNoticesRequest(
            pick=pick, since_height=since_height), q.QueryPassNoticesResponse)
        return list(reply.notices)

    async def inference(self, inference_id: str, height: int = 0) -> Inference | None:
        reply = await self.find(INFERENCE + "Inference",
                                q.QueryInferenceRequest(id=inference_id),
                                q.QueryInferenceResponse, height)
        return reply.inference if reply else None

    async def account(self, address: str) -> Balances:
        """Balances of any address; one the chain never saw simply has zeros."""
        reply = await self.call(INFERENCE + "Account", q.QueryAccountRequest(address=address),
                                q.QueryAccountResponse)
        return Balances(reply.balance, reply.escrow, reply.work_balance)

    async def allowance(self, developer: str, transfer_agent: str) -> int:
        """What ``developer`` still lets ``transfer_agent`` spend (MsgGrantAllowance)."""
        reply = await self.call(INFERENCE + "Allowance", q.QueryAllowanceRequest(
            developer=developer, transfer_agent=transfer_agent), q.QueryAllowanceResponse)
        return reply.remaining

    async def params(self, module: str = "inference") -> dict[str, Any]:
        """A module's params ("inference", "validation", "epochs") as the chain stores them."""
        reply = await self.call(INFERENCE + "Params", q.QueryParamsRequest(module=module),
                                q.QueryParamsResponse)
        return json.loads(reply.params_json)

    async def probes(self, address: str) -> list[ProbeCount]:
        """The probes ``address`` committed that no epoch's judging has counted yet."""
        reply = await self.call(INFERENCE + "Probes", q.QueryProbesRequest(address=address),
                                q.QueryProbesResponse)
        return list(reply.probes)

    async def epoch(self, number: int | None = None) -> EpochInfo:
        """The current epoch, with the members of epoch ``number`` (default: the current)."""
        request = q.QueryEpochRequest() if number is None else q.QueryEpochRequest(epoch=number)
        reply = await self.call(INFERENCE + "Epoch", request, q.QueryEpochResponse)
        return EpochInfo(reply.current, reply.members)

    async def seed_commitment(self, address: str, epoch: int) -> SeedCommitment | None:
        """What ``address`` committed (and maybe revealed) for ``epoch``; None if nothing."""
        reply = await self.find(INFERENCE + "SeedCommitment",
                                q.QuerySeedCommitmentRequest(address=address, epoch=epoch),
                                q.QuerySeedCommitmentResponse)
        return reply.commitment if reply else None

    async def validation_task(self, inference_id: str) -> ValidationTask | None:
        """The inference's validation task; None once it is summarized (or never was)."""
        reply = await self.find(INFERENCE + "ValidationTask",
                                q.QueryValidationTaskRequest(inference_id=inference_id),
                                q.QueryValidationTaskResponse)
        return reply.task if reply else None

    async def validation_tasks(self, from_height: int, to_height: int = 0,
                               limit: int = 0) -> list[ValidationTask]:
        """Tasks by finish height in [from_height, to_height] (0: latest), at most ``limit``."""
        reply = await self.call(INFERENCE + "ValidationTasks", q.QueryValidationTasksRequest(
            from_height=from_height, to_height=to_height, limit=limit),
            q.QueryValidationTasksResponse)
        return list(reply.tasks)

    async def pending_votes(self, voter: str) -> list[ValidationTask]:
        """Tasks in a vote that ``voter`` was drawn for and has not reported on yet."""
        reply = await self.call(INFERENCE + "PendingVotes",
                                q.QueryPendingVotesRequest(voter=voter),
                                q.QueryPendingVotesResponse)
        return list(reply.tasks)

    async def poc_submissions(self, epoch: int) -> list[PocSubmission]:
        """Every participant's proof-of-compute submission in ``epoch``, with its verdicts."""
        reply = await self.call(INFERENCE + "PocSubmissions",
                                q.QueryPocSubmissionsRequest(epoch=epoch),
                                q.QueryPocSubmissionsResponse)
        return list(reply.submissions)

    async def poc_nonces(self, epoch: int, participant: str) -> list[PocNonce]:
        """The nonces ``participant`` claimed in ``epoch`` (pruned once the next epoch's
        weights are set)."""
        reply = await self.call(INFERENCE + "PocNonces", q.QueryPocNoncesRequest(
            epoch=epoch, participant=participant), q.QueryPocNoncesResponse)
        return list(reply.nonces)

    async def latest_height(self) -> int:
        reply = await self.call(LATEST_BLOCK, tm_query.GetLatestBlockRequest(),
                                tm_query.GetLatestBlockResponse)
        return reply.block.header.height

    async def reached(self, height: int, wait_s: float, lead_blocks: int) -> bool:
        """Whether this node has applied ``height``, waiting up to ``wait_s`` for it: a peer
        acts on a block as soon as its own node applies it, and ours may apply it a moment
        later. A height more than ``lead_blocks`` past ours is no such lag and gets False at
        once, so a peer naming far heights cannot keep waits (and their queries) running."""
        give_up = time.monotonic() + wait_s
        latest = await self.latest_height()
        if height > latest + lead_blocks:
            return False
        while latest < height:
            if time.monotonic() >= give_up:
                return False
            await asyncio.sleep(HEIGHT_POLL_S)
            latest = await self.latest_height()
        return True

    async def auth_account(self, address: str) -> AuthAccount | None:
        """Account number and sequence; None until the account first receives funds."""
        reply = await self.find(AUTH_ACCOUNT, auth_query.QueryAccountRequest(address=address),
                                auth_query.QueryAccountResponse)
        if reply is None:
            return None
        account = BaseAccount()
        if not reply.account.Unpack(account):
            raise ChainQueryError(AUTH_ACCOUNT, None, f"account {address} is a "
                                  f"{reply.account.type_url}, not a BaseAccount")
        return AuthAccount(account.account_number, account.sequence)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
