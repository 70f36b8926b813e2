"""ABCI 2.0 over CometBFT's socket protocol: uvarint length-prefixed protobuf messages.

CometBFT opens four connections (consensus, mempool, query, snapshot); each is an ordered
stream of requests answered in order. Responses are buffered and written out at each Flush,
which is when CometBFT waits for them. All connections share one application object on one
event loop, so ABCI calls never run concurrently.
"""

import asyncio
import logging

from cosmpy.protos.tendermint.abci.types_pb2 import Request, Response, ResponseException
from google.protobuf.message import DecodeError

from chain.abci.application import METHODS, BaseApplication, answer

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 << 20


async def read_uvarint(reader: asyncio.StreamReader) -> int:
    shift = result = 0
    while True:
        byte = (await reader.readexactly(1))[0]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def handle(app: BaseApplication, request: Request) -> Response:
    """Dispatches one request by its oneof field through the declared method table."""
    kind = request.WhichOneof("value")
    if kind == "flush":
        return Response(flush={})
    if kind == "echo":
        return Response(echo={"message": request.echo.message})
    if kind not in METHODS:  # an empty request: the table covers every kind there is
        return Response(exception=ResponseException(error=f"unsupported request {kind}"))
    return Response(**{kind: answer(app, kind, getattr(request, kind))})


class AbciServer:
    def __init__(self, app: BaseApplication) -> None:
        self._app = app
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        log.info("ABCI listening on %s:%d", host, port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        log.info("ABCI connection from %s", peer)
        try:
            while True:
                length = await read_uvarint(reader)
                if length > MAX_MESSAGE_BYTES:
                    raise ValueError(f"ABCI message of {length} bytes is over the limit")
                request = Request()
                request.ParseFromString(await reader.readexactly(length))
                try:
                    response = handle(self._app, request)
                except Exception as exc:
                    # The app cannot go on consistently; CometBFT stops on an exception reply.
                    log.exception("ABCI %s failed", request.WhichOneof("value"))
                    response = Response(exception=ResponseException(error=repr(exc)))
                body = response.SerializeToString()
                writer.write(uvarint(len(body)) + body)
                if request.WhichOneof("value") == "flush":
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            log.info("ABCI connection from %s closed", peer)
        except (DecodeError, ValueError) as exc:
            log.error("ABCI connection from %s sent garbage (%s); closing it", peer, exc)
        finally:
            writer.close()
