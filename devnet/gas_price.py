"""The chain's minimum gas price, as a client must know it to have its txs accepted.

Read from the running chain's auth params, not from the genesis template, so that what the
devnet prints and exports is what the chain enforces, even after governance changed it.
"""

import asyncio

import grpc

from apinode.chain_queries import ChainQueries
from chain.bank.coins import NATIVE_DENOM


def min_gas_price(chain_grpc: str) -> str:
    """The price in Cosmos's spelling, ``0.01ninfer``: a tx's fee must be at least its gas
    limit times this (rounded up), so cosmpy's ``NetworkConfig`` needs it as
    ``fee_minimum_gas_price`` with ``fee_denomination="ninfer"``."""

    async def read() -> str:
        async with grpc.aio.insecure_channel(chain_grpc) as channel:
            params = await ChainQueries(channel).params("auth")
        return f"{params['min_gas_price']}{NATIVE_DENOM}"

    return asyncio.run(read())
