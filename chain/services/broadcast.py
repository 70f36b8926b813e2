"""Where BroadcastTx sends a transaction: the solo producer's mempool, or CometBFT's RPC."""

import base64
import json
import logging
from dataclasses import dataclass
from typing import Protocol

import aiohttp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """The mempool's verdict on a tx (CheckTx), as BroadcastTx reports it."""

    code: int
    codespace: str
    log: str
    gas_wanted: int = 0
    gas_used: int = 0


class BroadcastUnavailable(Exception):
    """The consensus engine could not be asked (its RPC not listening yet while it starts or
    replays, or gone): nothing was admitted, and the client may send the tx again."""


class Broadcaster(Protocol):
    async def broadcast(self, tx: bytes) -> Admission: ...


class CometBroadcaster:
    """Forwards to CometBFT's ``broadcast_tx_sync``, which runs CheckTx on every node's app."""

    def __init__(self, rpc_url: str) -> None:
        self._url = rpc_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def broadcast(self, tx: bytes) -> Admission:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        payload = {"jsonrpc": "2.0", "id": 1, "method": "broadcast_tx_sync",
                   "params": {"tx": base64.b64encode(tx).decode()}}
        try:
            async with self._session.post(self._url, json=payload) as reply:
                body = json.loads(await reply.text())
            if "error" in body:
                error = body["error"]
                return Admission(code=1, codespace="cometbft",
                                 log=f"{error.get('message', '')}: {error.get('data', '')}")
            result = body["result"]
            return Admission(code=int(result["code"]), codespace=result.get("codespace", ""),
                             log=result.get("log", ""))
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning("broadcast: CometBFT's RPC at %s did not take the tx: %r",
                        self._url, exc)
            raise BroadcastUnavailable(
                f"this node's CometBFT cannot take txs now (it is starting, replaying or down: "
                f"{type(exc).__name__}); send the tx again later") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
