"""Read-only queries by gRPC method path, served to gRPC clients and to ABCI Query alike.

Each module declares its query methods (its ``module.py``) and the app registers them here;
the gRPC server and the ABCI ``Query`` call both look them up by the same path, e.g.
"/cosmos.bank.v1beta1.Query/Balance".
Queries read the latest committed state, never a block in progress, or the state as of a
past height the node still keeps history for (``history_keep_blocks``): named by the gRPC
metadata ``x-cosmos-block-height``, as the Cosmos SDK names it, or by ABCI Query's
``height``. That is how a settled inference's task, or any record dropped since, is read as
it was (docs/chain.md).

Queries never raise past the router: a request is untrusted input, and an exception out of
ABCI Query would stop CometBFT. Handlers check every field they use with the ``*_arg``
helpers below (a bad one is INVALID_ARGUMENT, ABCI code 18); anything a handler still raises
is answered as an internal error (gRPC INTERNAL, ABCI code 1) and logged with its traceback.
Through ABCI the log reads as the Cosmos SDK writes a gRPC-routed query's error,
"rpc error: code = NotFound desc = …": CometBFT-RPC clients match on it (cosmjs's getAccount
answers null for an account that does not exist only on "code = NotFound").
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import DecodeError, Message

from chain.auth import address
from chain.errors import ChainError
from chain.store import HeightUnavailable, KVReader, StateAt

if TYPE_CHECKING:
    from chain.app import Application

log = logging.getLogger(__name__)

# The most entries one list query returns; a limit of 0 or above it is served as this.
MAX_PAGE = 1000
# The most heights one query over a height range scans: the store scans one prefix per height.
MAX_HEIGHT_SPAN = 1000
# The gRPC metadata key naming the height a query reads at, as the Cosmos SDK's.
HEIGHT_HEADER = "x-cosmos-block-height"
# ABCI codes in the "sdk" codespace, as the Cosmos SDK numbers them.
_ABCI_CODES = {grpc.StatusCode.NOT_FOUND: 38, grpc.StatusCode.INTERNAL: 1}
_INVALID_REQUEST = 18


class QueryError(Exception):
    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def invalid(message: str) -> QueryError:
    return QueryError(grpc.StatusCode.INVALID_ARGUMENT, message)


def enum_arg(enum: EnumTypeWrapper, value: int, field: str) -> int:
    """A request's enum field, refused unless it names a value of ``enum``: protobuf enums
    are open, so the wire carries any int32."""
    if value not in enum.values():
        raise invalid(f"{field} {value} is not a {enum.DESCRIPTOR.name}; known values: "
                      f"{', '.join(f'{n} ({v})' for n, v in enum.items())}")
    return value


def height_arg(value: int, field: str) -> int:
    """A block height from a request (int64 on the wire): 0 or more."""
    if value < 0:
        raise invalid(f"{field} {value} is negative")
    return value


def page_limit(limit: int) -> int:
    """How many entries a list query returns for a requested ``limit``."""
    return min(limit or MAX_PAGE, MAX_PAGE)


def address_arg(text: str, field: str) -> bytes:
    """The raw bytes of an account address, which must be in its canonical form (lowercase
    bech32 with the chain's prefix, as address.decode insists): state is keyed by that form,
    so another spelling of the same bytes would silently find nothing."""
    try:
        return address.decode(text)
    except ChainError as exc:
        raise invalid(f"{field}: {exc.message}") from exc


def abci_log(exc: QueryError) -> str:
    """The error's ABCI log, in the form of a Go gRPC status ("NOT_FOUND" is "NotFound")."""
    code = "".join(word.capitalize() for word in exc.status.name.split("_"))
    return f"rpc error: code = {code} desc = {exc.message}"


@dataclass(frozen=True)
class QueryMethod:
    request_type: type[Message]
    response_type: type[Message]
    handle: Callable[[KVReader, Message], Message]


class QueryRouter:
    def __init__(self, app: "Application") -> None:
        self._app = app
        self.methods: dict[str, QueryMethod] = {}

    def register(self, path: str, request_type: type[Message], response_type: type[Message],
                 handle: Callable[[KVReader, Message], Message]) -> None:
        if path in self.methods:
            raise ValueError(f"query {path} is registered twice")
        self.methods[path] = QueryMethod(request_type, response_type, handle)

    def call(self, path: str, request: Message, height: int = 0) -> Message:
        """The handler's response at ``height`` (0: the latest); QueryError, and nothing
        else, when it cannot answer."""
        method = self.methods.get(path)
        if method is None:
            raise QueryError(grpc.StatusCode.UNIMPLEMENTED, f"unknown query path {path}")
        try:
            return method.handle(self._state_at(height), request)
        except HeightUnavailable as exc:
            raise self._gone(height) from exc
        except QueryError:
            raise
        except ChainError as exc:
            raise invalid(exc.message) from exc
        except Exception as exc:
            log.exception("query %s failed on an unexpected error; answered as internal", path)
            raise QueryError(grpc.StatusCode.INTERNAL,
                             f"internal error in query {path}: {type(exc).__name__}: {exc}"
                             ) from exc

    def _state_at(self, height: int) -> KVReader:
        store = self._app.store
        if height < 0 or height > store.height:
            raise invalid(f"height {height} is not a committed height (latest {store.height})")
        if not height or height == store.height:
            return store.begin_block()
        if height < store.earliest_height:
            raise self._gone(height)
        return StateAt(store, height)

    def _gone(self, height: int) -> QueryError:
        return QueryError(grpc.StatusCode.NOT_FOUND, (
            f"height {height} is no longer kept: this node keeps state history from height "
            f"{self._app.store.earliest_height} (history_keep_blocks)"))

    def abci_query(self, req: abci.RequestQuery) -> abci.ResponseQuery:
        """Never raises: CometBFT stops on an exception reply."""
        height = self._app.store.height
        method = self.methods.get(req.path)
        if method is None:
            return abci.ResponseQuery(code=6, codespace="sdk", height=height,
                                      log=f"unknown query path {req.path}")
        request = method.request_type()
        try:
            request.ParseFromString(req.data)
        except (DecodeError, RecursionError) as exc:
            return abci.ResponseQuery(code=2, codespace="sdk", height=height,
                                      log=f"cannot decode request: {exc}")
        try:
            response = self.call(req.path, request, req.height)
        except QueryError as exc:
            return abci.ResponseQuery(code=_ABCI_CODES.get(exc.status, _INVALID_REQUEST),
                                      codespace="sdk", height=req.height or height,
                                      log=abci_log(exc))
        return abci.ResponseQuery(value=response.SerializeToString(),
                                  height=req.height or height)
