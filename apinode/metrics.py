"""The API node's Prometheus metrics (docs/metrics.md): requests, latency, tokens, executor
fallbacks and the outbox.

The node owns its registry, so several nodes in one process (tests) keep apart. Request
metrics cost a few increments per request and one per token; the outbox is read from the
store only when a scrape asks for it.
"""

import asyncio
import logging
import time
from collections.abc import Iterator

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from apinode.outbox import Outbox
from apinode.store import OutboxState, utc_now

log = logging.getLogger(__name__)

# Seconds: a CPU model answers in seconds to minutes; an unanswered route in milliseconds.
LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
TOKENS_PER_S_BUCKETS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
UNMATCHED_ROUTE = "unmatched"
CLIENT_GONE = 499  # the client went away before its answer was complete (nginx's code)
# Why a transfer agent gave up on a pick (docs/metrics.md); each shows from the start, at 0.
FALLBACK_REASONS = ("refused", "failed", "timeout", "draw_expired", "recently_failed", "claimed")


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("inferchain_api_requests", "HTTP requests by route and status",
                                ["route", "code"], registry=r)
        self.request_seconds = Histogram("inferchain_api_request_seconds",
                                         "HTTP request latency, to the last byte of a stream",
                                         ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.first_token_seconds = Histogram(
            "inferchain_api_time_to_first_token_seconds",
            "From a completion request's arrival to its executor's first token",
            buckets=TTFT_BUCKETS, registry=r)
        self.output_tokens = Counter("inferchain_api_output_tokens",
                                     "Output tokens passed on to developers", registry=r)
        self.tokens_per_second = Histogram(
            "inferchain_api_output_tokens_per_second",
            "Per completion, output tokens per second after the first token",
            buckets=TOKENS_PER_S_BUCKETS, registry=r)
        self.fallbacks = Counter("inferchain_api_executor_fallbacks",
                                 "Picks a transfer agent gave up on for the next executor",
                                 ["reason"], registry=r)
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason)

    def watch_outbox(self, outbox: Outbox) -> None:
        self.registry.register(OutboxCollector(outbox))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler
                         ) -> web.StreamResponse:
        """Counts each request by its route's pattern (never its raw path, which anyone could
        vary) and the status it got, and times it."""
        started = time.perf_counter()
        route = request.match_info.route.resource
        name = route.canonical if route is not None else UNMATCHED_ROUTE
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_GONE
            raise
        finally:
            self.requests.labels(name, str(status)).inc()
            self.request_seconds.labels(name).observe(time.perf_counter() - started)

    def completed(self, first_token_s: float, tokens: int, total_s: float) -> None:
        """A completion served: its time to first token, and its output tokens over the time
        after that token."""
        self.first_token_seconds.observe(first_token_s)
        self.output_tokens.inc(tokens)
        if tokens > 1 and total_s > first_token_s:
            self.tokens_per_second.observe((tokens - 1) / (total_s - first_token_s))


class OutboxCollector(Collector):
    """The outbox's depth by state and the age of the oldest entry still owed, read from the
    store at scrape time; a store that does not answer leaves them out of that scrape."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts, oldest = self._outbox.depth()
        except SQLAlchemyError as exc:
            log.warning("metrics: could not read the outbox: %s", exc)
            return
        depth = GaugeMetricFamily("inferchain_api_outbox_entries",
                                  "Outbox entries by state", labels=["state"])
        for state in OutboxState:
            depth.add_metric([state.value], counts.get(state, 0))
        yield depth
        age = (utc_now() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily("inferchain_api_outbox_oldest_age_seconds",
                                "Age of the oldest entry still owed to the chain (pending or "
                                "sent); 0 when none", value=age)
