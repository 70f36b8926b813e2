"""The explorer's web server: aiohttp with Jinja2 templates (autoescaped: everything shown
comes from the chain, and prompts, stop sequences, titles and URLs are anyone's text).

Pages render server-side. A page's live part is its ``{% block live %}``: with ``?partial=1``
the same handler answers that block alone, and static/explorer.js swaps it in every few
seconds, so lists refresh without a reload; the status bar reads ``/api/status``.
A chain node that does not answer gives a 503 page that says so; an unknown or malformed id a
404 page. Nothing the chain or a visitor sends stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp_jinja2
import grpc
import jinja2
from aiohttp import web

from apinode.chain_queries import ChainQueries, ChainQueryError, ChainUnavailable
from apinode.mlnode_client import MlNodeClient
from explorer.block_follower import BlockFollower
from explorer.chain_reader import ChainReader, ParticipantRow
from explorer.token_view import decode_artifact
from inferchain_pb.inference.v1.epochs_pb2 import EpochStage
from inferchain_pb.inference.v1.gov_pb2 import ProposalStatus, VoteOption
from inferchain_pb.inference.v1.inference_pb2 import Inference, InferenceStatus
from inferchain_pb.inference.v1.validation_pb2 import TaskState

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
RECENT_INFERENCES = 50
# How many settled epochs the epochs page lists, newest first.
EPOCHS_LISTED = 10
# A query the node refused because of the id in the URL: the thing does not exist.
NOT_FOUND_CODES = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Explorer:
    """The pages, each a named handler, and the clients they read with: opened by ``start``
    (gRPC channels belong to the running event loop), closed by ``stop``."""

    def __init__(self, chain_grpc: str, mlnode: str | None, poll_s: float) -> None:
        self.chain_grpc = chain_grpc
        self.mlnode_address = mlnode
        self.poll_s = poll_s
        self._at_head: dict[str, tuple[int, Any]] = {}

    async def start(self) -> None:
        self.channel = grpc.aio.insecure_channel(self.chain_grpc)
        self.reader = ChainReader(ChainQueries(self.channel, timeout_s=5.0))
        self.mlnode = MlNodeClient(self.mlnode_address) if self.mlnode_address else None
        self.follower = BlockFollower(self.reader, self.poll_s)
        self._follow = asyncio.create_task(self.follower.run())

    async def stop(self) -> None:
        self._follow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._follow
        if self.mlnode is not None:
            await self.mlnode.close()
        await self.channel.close()

    async def at_head(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """``fetch()``'s answer, asked once per block while the chain is up: the list pages
        scan the chain's indexes, and every open page refreshes every few seconds."""
        head = self.follower.head
        cached = self._at_head.get(key)
        if head.up and cached is not None and cached[0] == head.height:
            return cached[1]
        value = await fetch()
        self._at_head[key] = (head.height, value)
        return value

    async def recent_inferences(self) -> list[Inference]:
        return await self.at_head("inferences", lambda: self.reader.recent_inferences(
            RECENT_INFERENCES))

    async def participants(self) -> list[ParticipantRow]:
        return await self.at_head("participants", self.reader.participants)

    def page(self, request: web.Request, template: str, context: dict[str, Any]
             ) -> web.Response:
        return aiohttp_jinja2.render_template(template, request, {
            **context, "partial": request.query.get("partial") == "1"})

    async def status_page(self, request: web.Request) -> web.Response:
        return self.page(request, "status.html", {
            "blocks": list(self.follower.blocks)[:10],
            "inferences": (await self.recent_inferences())[:10],
            "participants": await self.participants()})

    async def status_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.follower.head.as_json())

    async def blocks_page(self, request: web.Request) -> web.Response:
        return self.page(request, "blocks.html", {"blocks": list(self.follower.blocks)})

    async def participants_page(self, request: web.Request) -> web.Response:
        return self.page(request, "participants.html",
                         {"participants": await self.participants()})

    async def participant_page(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        row = await self.reader.participant(address)
        if row is None:
            raise web.HTTPNotFound(text=f"no participant {address}")
        return self.page(request, "participant.html", {
            "row": row, "account": await self.reader.queries.account(address)})

    async def inferences_page(self, request: web.Request) -> web.Response:
        return self.page(request, "inferences.html", {
            "inferences": await self.recent_inferences()})

    async def inference_page(self, request: web.Request) -> web.Response:
        inference_id = request.match_info["id"]
        inference = await self.reader.queries.inference(inference_id)
        if inference is None:
            raise web.HTTPNotFound(text=f"no inference {inference_id}")
        summary, height = None, 0
        if inference.summarized_height:
            # Settled: shown as it stood in the block before, while the node keeps that
            # height's history; the summary alone after that.
            height = inference.summarized_height - 1
            whole = await self.reader.queries.inference(inference_id, height)
            if whole is not None:
                summary, inference = inference, whole
        return self.page(request, "inference.html", {
            "inference": inference, "summary": summary,
            "task": await self.reader.validation_task(inference_id, height),
            "artifact": await decode_artifact(inference, self.mlnode)})

    async def epochs_page(self, request: web.Request) -> web.Response:
        info = await self.reader.queries.epoch()
        current = info.current.number
        settled = [s for n in range(current, max(current - EPOCHS_LISTED, -1), -1)
                   if (s := await self.reader.settlement(n)) is not None]
        return self.page(request, "epochs.html", {
            "current": info.current, "members": info.members, "settlements": settled})

    async def epoch_page(self, request: web.Request) -> web.Response:
        number = _number(request.match_info["number"], "epoch")
        settlement, reason = await self.reader.settlement_or_reason(number)
        info = await self.reader.queries.epoch(number)
        if settlement is None and info.members.epoch != number:
            raise web.HTTPNotFound(text=f"nothing to show for epoch {number}: {reason}")
        return self.page(request, "epoch.html", {
            "number": number, "settlement": settlement, "members": info.members,
            "current": info.current})

    async def proposals_page(self, request: web.Request) -> web.Response:
        return self.page(request, "proposals.html", {"rows": await self.reader.proposals()})

    async def proposal_page(self, request: web.Request) -> web.Response:
        proposal_id = _number(request.match_info["id"], "proposal")
        row = await self.reader.proposal(proposal_id)
        if row is None:
            raise web.HTTPNotFound(text=f"no proposal {proposal_id}")
        return self.page(request, "proposal.html", {
            "row": row, "votes": await self.reader.votes(proposal_id)})

    async def search(self, request: web.Request) -> web.Response:
        """An inference id, a participant address, or a proposal number, in that order."""
        text = request.query.get("q", "").strip()
        if text and await self.reader.queries.inference(text) is not None:
            raise web.HTTPFound(request.app.router["inference"].url_for(id=text))
        if text.startswith("infer1"):
            raise web.HTTPFound(request.app.router["participant"].url_for(address=text))
        if text.isdigit():
            raise web.HTTPFound(request.app.router["proposal"].url_for(id=text))
        raise web.HTTPNotFound(text=f"nothing on chain is called {text!r}")


def _number(text: str, what: str) -> int:
    if not text.isdigit():
        raise web.HTTPNotFound(text=f"{what} {text!r} is not a number")
    return int(text)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Failures as pages: 404 for what does not exist, 503 while the chain node is down,
    502 for anything else the node refused."""
    try:
        return await handler(request)
    except web.HTTPNotFound as exc:
        return _error_page(request, 404, "Not found", exc.text or "no such page")
    except ChainUnavailable as exc:
        return _error_page(request, 503, "Chain node unreachable",
                           f"the chain node does not answer: {exc}")
    except ChainQueryError as exc:
        if exc.code in NOT_FOUND_CODES:
            return _error_page(request, 404, "Not found", exc.details)
        log.warning("the chain node refused a query for %s: %s", request.path, exc)
        return _error_page(request, 502, "The chain node refused the query", str(exc))


def _error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    response = aiohttp_jinja2.render_template("error.html", request, {
        "title": title, "message": message, "partial": False, "live": False}, status=status)
    return response


def _time(ns: int) -> str:
    if not ns:
        return "–"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _percent(ppm: int) -> str:
    return f"{ppm / 10_000:.1f}%"


TEMPLATE_GLOBALS = {
    "inference_status": InferenceStatus.Name, "task_state": TaskState.Name,
    "stage_name": EpochStage.Name, "proposal_status": ProposalStatus.Name,
    "vote_option": VoteOption.Name,
}
TEMPLATE_FILTERS = {"time": _time, "percent": _percent, "hex": lambda b: bytes(b).hex()}


def make_app(chain_grpc: str, mlnode: str | None, poll_s: float) -> web.Application:
    """The explorer for the chain node at ``chain_grpc`` (and an ML node to detokenize)."""
    app = web.Application(middlewares=[error_pages])
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined,
                               context_processors=[_head_context])
    env.globals.update(TEMPLATE_GLOBALS)
    env.filters.update(TEMPLATE_FILTERS)

    explorer = Explorer(chain_grpc, mlnode, poll_s)
    app["explorer"] = explorer

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await explorer.start()
        yield
        await explorer.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_static("/static", HERE / "static", name="static")
    _routes(app, explorer)
    return app


async def _head_context(request: web.Request) -> dict[str, Any]:
    return {"head": request.app["explorer"].follower.head}


def _routes(app: web.Application, explorer: Explorer) -> None:
    router = app.router
    router.add_get("/", explorer.status_page, name="status")
    router.add_get("/api/status", explorer.status_json)
    router.add_get("/health", explorer.status_json)
    router.add_get("/blocks", explorer.blocks_page, name="blocks")
    router.add_get("/participants", explorer.participants_page, name="participants")
    router.add_get("/participants/{address}", explorer.participant_page, name="participant")
    router.add_get("/inferences", explorer.inferences_page, name="inferences")
    router.add_get("/inferences/{id:.+}", explorer.inference_page, name="inference")
    router.add_get("/epochs", explorer.epochs_page, name="epochs")
    router.add_get("/epochs/{number}", explorer.epoch_page, name="epoch")
    router.add_get("/proposals", explorer.proposals_page, name="proposals")
    router.add_get("/proposals/{id}", explorer.proposal_page, name="proposal")
    router.add_get("/search", explorer.search, name="search")
