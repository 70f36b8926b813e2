"""Maps message type URLs to handlers; a module joins by registering, not by editing a switch.

Each module registers, for each message type it owns, the protobuf class, a function naming
the message's signers (checked against the transaction's signers) and the handler itself.
"""

from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.message import Message

from chain.context import Context
from chain.errors import UnknownRequest
from chain.tx.canonical import parse_canonical


@dataclass(frozen=True)
class Route:
    message_type: type[Message]
    signers: Callable[[Message], list[str]]
    handle: Callable[[Context, Message], None]


class Router:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def register(self, message_type: type[Message], signers: Callable[[Message], list[str]],
                 handle: Callable[[Context, Message], None]) -> None:
        url = "/" + message_type.DESCRIPTOR.full_name
        if url in self._routes:
            raise ValueError(f"{url} is registered twice")
        self._routes[url] = Route(message_type, signers, handle)

    def unpack(self, packed: AnyPb) -> tuple[Route, Message]:
        route = self._routes.get(packed.type_url)
        if route is None:
            raise UnknownRequest(f"unrecognized message type: {packed.type_url}")
        message = route.message_type()
        parse_canonical(message, packed.value, packed.type_url)
        return route, message
