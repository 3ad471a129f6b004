"""Prometheus metrics; multi-process safe when ``PROMETHEUS_MULTIPROC_DIR`` is set."""
from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

WEBHOOK_REQUESTS = Counter(
    "tributary_webhook_requests_total", "Webhook requests by connector and HTTP status.",
    ["connector", "code"],
)
WEBHOOK_SECONDS = Histogram(
    "tributary_webhook_request_seconds", "Time to answer a webhook request.", ["connector"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DRAIN_BATCH_SIZE = Histogram(
    "tributary_drain_batch_size", "Inbox rows claimed per drain batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
DRAIN_BATCH_SECONDS = Histogram(
    "tributary_drain_batch_seconds", "Time to process and commit one drain batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DRAINED_ROWS = Counter("tributary_drained_rows_total", "Inbox rows handled by drains.", ["outcome"])
ACCEPT_TO_PROCESSED = Histogram(
    "tributary_accept_to_processed_seconds", "Lag from accepting a record to processing it.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)

OUTBOUND_DELIVERIES = Counter(
    "tributary_outbound_deliveries_total",
    "Outbound webhook attempts by subscription and outcome (succeeded, retry, failed, gone, stale).",
    ["subscription", "outcome"],
)


class InboxCollector:
    """Reads inbox row counts by connector and status from the database at scrape time."""

    def __init__(self, hub):
        self.hub = hub

    def collect(self):
        from hub import inbox

        family = GaugeMetricFamily("tributary_inbox_rows", "Inbox rows by connector and status.",
                                   labels=["connector", "status"])
        with self.hub.session() as session:
            for (connector, status), n in sorted(inbox.counts(session).items()):
                family.add_metric([connector, status], n)
        yield family


def render(hub) -> bytes:
    """The exposition text: this process's (or every process's) metrics plus inbox counts."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    inbox_registry = CollectorRegistry()
    inbox_registry.register(InboxCollector(hub))
    return generate_latest(registry) + generate_latest(inbox_registry)
