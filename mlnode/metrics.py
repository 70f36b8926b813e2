"""The ML node's Prometheus metrics (docs/metrics.md): tokens, queue, batch sizes, scoring.

The node owns its registry, so several in one process keep apart. The gRPC service counts
tokens and times score jobs; the torch scheduler reports each decode step's batch size; the
queue is read from the engine only when a scrape asks. The command line serves the registry
(``--metrics-port``).
"""

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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

