"""Maps message type URLs to handlers; a module joins by declaring its messages, not by
editing a switch.

Each module declares, for each message type it owns, the field naming the message's signer
(checked against the transaction's signers) and the handler itself (chain/module.py, Msg).
"""

from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.message import Message

from chain.errors import UnknownRequest
from chain.module import Msg
from chain.tx.canonical import parse_canonical


class Router:
    def __init__(self) -> None:
        self._routes: dict[str, Msg] = {}

    def register(self, route: Msg) -> None:
        if route.type_url in self._routes:
            raise ValueError(f"{route.type_url} is registered twice")
        self._routes[route.type_url] = route

    def unpack(self, packed: AnyPb, known: bool = False) -> tuple[Msg, Message]:
        """The message's route and the message; ``known`` as for parse_canonical."""
        route = self._routes.get(packed.type_url)
        if route is None:
            raise UnknownRequest(f"unrecognized message type: {packed.type_url}")
        message = route.message_type()
        parse_canonical(message, packed.value, packed.type_url, known)
        return route, message
