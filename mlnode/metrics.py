"""The ML node's Prometheus metrics (docs/metrics.md): tokens, queue, batch sizes, scoring.

The node owns its registry, so several in one process keep apart. The gRPC service counts
tokens and times score jobs; the torch scheduler reports each decode step's batch size; the
queue is read from the engine only when a scrape asks. The ML node imports nothing of the
chain, so it serves its registry itself rather than through chain.metrics.
"""

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from mlnode.engine import Engine

log = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# A score job is one teacher-forced forward pass: milliseconds on a GPU, seconds on a CPU.
SCORE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class MlNodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.generated_tokens = Counter("inferchain_mlnode_generated_tokens",
                                        "Tokens generated and streamed", registry=r)
        self.queued = Gauge("inferchain_mlnode_queued_requests",
                            "Generations and score jobs waiting for the model", registry=r)
        self.running = Gauge("inferchain_mlnode_running_requests",
                             "Generations in the running batch", registry=r)
        self.batch_size = Histogram("inferchain_mlnode_batch_size",
                                    "Generations in each decode step (torch engine)",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.score_seconds = Histogram("inferchain_mlnode_score_seconds",
                                       "Score jobs answered, and how long each took",
                                       buckets=SCORE_BUCKETS, registry=r)
        self.score_refused = Counter("inferchain_mlnode_score_refused",
                                     "Score requests refused as invalid", registry=r)

    def watch(self, engine: Engine) -> None:
        """Reads the engine's queue and batch at each scrape."""
        self.queued.set_function(lambda: engine.load().queued)
        self.running.set_function(lambda: engine.load().running)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> WSGIServer | None:
    """Serves ``registry`` at http://host:port/metrics; None when ``port`` is 0 (off);
    SystemExit naming --metrics-port when the port cannot be served."""
    if port == 0:
        return None
    try:
        server, _ = start_http_server(port, host, registry)
    except OSError as exc:
        raise SystemExit(f"mlnode: --metrics-port {port}: cannot serve metrics on {host}:{port} "
                         f"({exc.strerror or exc}); choose a free port, or 0 for none") from exc
    log.info("metrics at http://%s:%d/metrics", host, port)
    return server
