"""Every Prometheus metric leadflow exports (names start with ``leadflow_``, the process's
own ones too: ``leadflow_process_cpu_seconds_total``, ``leadflow_process_resident_memory_bytes``,
...; the client library's ``python_*`` families are left out).

HTTP services serve them on their own port (``/metrics``); a worker process serves them
from a thread (``serve_metrics``) on ``LEADFLOW_METRICS_PORT``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

logger = logging.getLogger(__name__)

for _default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.unregister(_default)
ProcessCollector(namespace="leadflow")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

LEADS_RECEIVED = Counter(
    "leadflow_leads_received",
    "Leads stored by intake, by the outcome they were answered",
    ["flow", "source", "outcome"],
)
PINGS = Counter("leadflow_pings", "Pings answered by intake", ["flow", "source", "outcome"])
BIDS = Counter("leadflow_bids", "Buyers' answers to pings", ["recipient", "outcome"])
INTAKE_SECONDS = Histogram(
    "leadflow_intake_request_seconds", "Time to answer a submission", buckets=LATENCY_BUCKETS
)
FLOWS_COMPLETED = Counter("leadflow_flows_completed", "Leads whose flow ended", ["flow", "outcome"])
DELIVERIES = Counter(
    "leadflow_deliveries", "Deliveries that reached an outcome", ["recipient", "outcome"]
)
ATTEMPT_SECONDS = Histogram(
    "leadflow_delivery_attempt_seconds",
    "One delivery attempt",
    ["recipient"],
    buckets=LATENCY_BUCKETS,
)
RETRIES = Counter("leadflow_retries", "Messages sent to a retry tier", ["queue"])
DEAD_LETTERS = Counter("leadflow_dead_letters", "Messages parked in a dead-letter queue", ["queue"])
GROUP_COMMIT_SIZE = Histogram(
    "leadflow_group_commit_size",
    "Messages served by one worker transaction",
    ["work"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
GROUP_COMMIT_SECONDS = Histogram(
    "leadflow_group_commit_seconds",
    "Time a worker transaction of grouped messages takes",
    ["work"],
    buckets=LATENCY_BUCKETS,
)
FEEDBACK = Counter(
    "leadflow_feedback", "Feedback requests by type and outcome", ["type", "outcome"]
)


class QueueDepthCollector:
    """``leadflow_queue_messages{queue}`` read from RabbitMQ when scraped."""

    def __init__(self, read_depths: Callable[[], dict[str, int]]) -> None:
        self._read_depths = read_depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "leadflow_queue_messages", "Messages waiting in a queue", labels=["queue"]
        )
        try:
            for queue, depth in self._read_depths().items():
                family.add_metric([queue], depth)
        except Exception as exc:
            logger.warning("queue depths unavailable: %s", exc)
        yield family


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_metrics(port: int, extra: Iterable[Any] = ()) -> WSGIServer | None:
    """``/metrics`` (this process's metrics and ``extra`` collectors) and ``/healthz`` on
    ``port``, in a thread. A port that is taken is logged and skipped: the worker goes
    on without metrics.
    """
    registry = CollectorRegistry()
    registry.register(_Process())
    for collector in extra:
        registry.register(collector)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return iter([b'{"status": "ok"}'])
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return iter([generate_latest(registry)])

    try:
        server = make_server("0.0.0.0", port, app, handler_class=_QuietHandler)
    except OSError as exc:
        logger.warning("metrics port %d unavailable (%s); running without metrics", port, exc)
        return None
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    logger.info("metrics on :%d/metrics", port)
    return server


class _Process:
    """This process's own metrics (the default registry), beside the extra collectors."""

    def collect(self) -> Iterable[Any]:
        yield from REGISTRY.collect()


def latest() -> tuple[bytes, str]:
    """This process's metrics (for aiohttp services)."""
    return generate_latest(), CONTENT_TYPE_LATEST
