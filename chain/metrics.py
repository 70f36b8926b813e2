"""The chain node's Prometheus metrics (docs/metrics.md) and the HTTP endpoint that serves them.

Each node owns its registry, so several nodes in one process (tests) keep apart. The app
updates them once per CheckTx, FinalizeBlock and Commit: a few counter increments, nothing
per key or per byte. ``serve_metrics`` is also what the API node serves its own registry with.
"""

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Seconds: solo blocks come every block_interval_ms (500 ms by default), CometBFT's after
# timeout_commit; a stalled chain shows up in the top buckets.
INTERVAL_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
TXS_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
# FinalizeBlock and Commit run from a millisecond (an empty block) to seconds (an epoch's end).
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MetricsUnavailable(ValueError):
    """The configured metrics port is not a port, or cannot be served; the message names the
    setting, so the process stops at start-up with it."""


class ChainMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("inferchain_chain_height", "Last committed block height",
                            registry=r)
        self.block_interval = Histogram(
            "inferchain_chain_block_interval_seconds",
            "Time between consecutive blocks' header times", buckets=INTERVAL_BUCKETS,
            registry=r)
        self.block_txs = Histogram("inferchain_chain_block_txs", "Transactions per block",
                                   buckets=TXS_BUCKETS, registry=r)
        self.txs = Counter("inferchain_chain_txs", "Transactions executed in blocks",
                           ["codespace", "code"], registry=r)
        self.checked = Counter("inferchain_chain_checktx", "CheckTx calls by kind (new or "
                               "recheck) and result", ["kind", "codespace", "code"], registry=r)
        # The txs CheckTx admitted that no committed block carried and no recheck dropped:
        # in solo mode exactly the node's mempool; under CometBFT, CometBFT's own mempool as
        # far as the app sees it (a tx CometBFT evicts without a recheck stays counted).
        self._admitted: set[bytes] = set()
        self.mempool = Gauge("inferchain_chain_mempool_txs", "Transactions waiting in the "
                             "mempool, as CheckTx admitted them", registry=r)
        self.mempool.set_function(lambda: len(self._admitted))
        self.finalize_seconds = Histogram("inferchain_chain_finalize_block_seconds",
                                          "Time the app spent in FinalizeBlock",
                                          buckets=STEP_BUCKETS, registry=r)
        self.commit_seconds = Histogram("inferchain_chain_commit_seconds",
                                        "Time the app spent in Commit", buckets=STEP_BUCKETS,
                                        registry=r)

    def check_tx(self, tx_hash: bytes, recheck: bool, codespace: str, code: int) -> None:
        self.checked.labels("recheck" if recheck else "new", codespace, str(code)).inc()
        if code == 0 and not recheck:
            self._admitted.add(tx_hash)
        elif code != 0 and recheck:
            self._admitted.discard(tx_hash)

    def finalized(self, results: list[tuple[str, int]], seconds: float) -> None:
        """One FinalizeBlock: its txs' (codespace, code) and how long it took."""
        self.finalize_seconds.observe(seconds)
        self.block_txs.observe(len(results))
        # Tallied per outcome first: a labelled child's lookup costs more than the increment.
        tally: dict[tuple[str, int], int] = {}
        for result in results:
            tally[result] = tally.get(result, 0) + 1
        for (codespace, code), count in tally.items():
            self.txs.labels(codespace, str(code)).inc(count)

    def committed(self, height: int, tx_hashes: list[bytes], time_ns: int,
                  previous_time_ns: int, seconds: float) -> None:
        self.commit_seconds.observe(seconds)
        self._admitted.difference_update(tx_hashes)
        self.height.set(height)
        if previous_time_ns:
            self.block_interval.observe(max(0, time_ns - previous_time_ns) / 1e9)


class MetricsServer:
    """The /metrics endpoint's HTTP server thread; ``close`` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, host: str, port: int,
                  setting: str) -> MetricsServer | None:
    """Serves ``registry`` at http://host:port/metrics; None when ``port`` is 0 (off).

    ``setting`` names where the port was configured, for the error a busy port raises.
    """
    if port == 0:
        return None
    try:
        server, thread = start_http_server(port, host, registry)
    except OSError as exc:
        raise MetricsUnavailable(f"{setting} = {port}: cannot serve metrics on {host}:{port} "
                                 f"({exc.strerror or exc}); choose a free port, or 0 to turn "
                                 "metrics off") from exc
    log.info("metrics at http://%s:%d/metrics", host, port)
    return MetricsServer(server, thread)


def check_port(port: object, setting: str) -> int:
    """``port`` as a metrics port (0 = off); MetricsUnavailable naming ``setting`` otherwise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise MetricsUnavailable(f"{setting} must be a port number from 1 to 65535, or 0 for no "
                         f"metrics; got {port!r}")
    return port
