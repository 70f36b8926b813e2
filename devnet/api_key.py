"""The devnet's developer API key: issued by participant 0's transfer agent for a signed
request, and backed by an on-chain allowance so that requests with it are paid for.

Both steps are what any developer would do (apinode's /v1/inferchain/api-keys, then
MsgGrantAllowance), so the quickstart's key works with the plain openai client.
"""

import asyncio
import json
import urllib.request

import grpc

from apinode.request_auth import API_KEYS_PATH, sign_request
from apinode.tx_sender import TxSender
from chain.inference.payload import RequestPurpose
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import MsgGrantAllowance

ALLOWANCE = 10**15  # ninfer: the developer's whole genesis funds, so it never runs short


def issue_key(api_url: str, private_key_hex: str, transfer_agent: str, chain_id: str) -> str:
    body = b"{}"
    request = urllib.request.Request(
        f"{api_url}{API_KEYS_PATH}", data=body, method="POST",
        headers=sign_request(bytes.fromhex(private_key_hex), body, transfer_agent, chain_id,
                             RequestPurpose.API_KEY))
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())["api_key"]


def grant_allowance(chain_grpc: str, chain_id: str, developer: dict, transfer_agent: str
                    ) -> None:
    """Grants the allowance unless the chain already holds one (a resumed devnet)."""

    async def grant() -> None:
        async with grpc.aio.insecure_channel(chain_grpc) as channel:
            sender = TxSender(channel, developer["private_key_hex"], chain_id)
            if await allowance(channel, developer["address"], transfer_agent):
                return
            await sender.send([MsgGrantAllowance(creator=developer["address"],
                                                 transfer_agent=transfer_agent,
                                                 limit=ALLOWANCE)])
            for _ in range(120):
                if await allowance(channel, developer["address"], transfer_agent):
                    return
                await asyncio.sleep(0.25)
            raise TimeoutError("the developer's allowance did not reach the chain in 30s")

    asyncio.run(grant())


async def allowance(channel: grpc.aio.Channel, developer: str, transfer_agent: str) -> int:
    call = channel.unary_unary("/inference.v1.Query/Allowance",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=q.QueryAllowanceResponse.FromString)
    reply = await call(q.QueryAllowanceRequest(developer=developer,
                                               transfer_agent=transfer_agent), timeout=10)
    return reply.remaining
