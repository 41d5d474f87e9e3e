"""Prometheus metrics shared by every service: one name, one label set, everywhere.

Dashboards and alert rules in deploy/observability reference exactly these names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EVENTS_CONSUMED = Counter(
    "thrive_events_consumed_total",
    "Events consumed, by outcome (ok, duplicate, dead_lettered, error).",
    ["service", "topic", "type", "outcome"],
)
EVENTS_PRODUCED = Counter(
    "thrive_events_produced_total",
    "Events produced to Kafka (acknowledged by the broker).",
    ["service", "topic", "type"],
)
HANDLER_DURATION = Histogram(
    "thrive_handler_duration_seconds",
    "Time to apply one consumed batch, per topic, including its DB transaction.",
    ["service", "topic"],
    buckets=_LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "thrive_consumer_lag",
    "Records between the committed position and the end of the partition.",
    ["service", "topic", "partition"],
)
OUTBOX_BACKLOG = Gauge("thrive_outbox_backlog", "Outbox rows not yet relayed.", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "thrive_outbox_oldest_age_seconds", "Age of the oldest unrelayed outbox row.", ["service"]
)
DLQ_EVENTS = Counter(
    "thrive_dlq_events_total",
    "Records sent to the dead-letter topic, by error class.",
    ["service", "topic", "error"],
)
DB_POOL_CONNECTIONS = Gauge(
    "thrive_db_pool_connections", "Database pool connections by state.", ["service", "state"]
)
HTTP_REQUESTS = Counter(
    "thrive_http_requests_total",
    "HTTP requests served.",
    ["service", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "thrive_http_request_duration_seconds",
    "HTTP request latency.",
    ["service", "route"],
    buckets=_LATENCY_BUCKETS,
)
