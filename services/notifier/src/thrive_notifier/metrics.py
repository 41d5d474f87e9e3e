"""The notifier's own Prometheus metrics (names as in the team brief)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "thrive_deliveries_total",
    "Deliveries by channel and outcome (delivered, failed, parked, deferred, skipped).",
    ["channel", "outcome"],
)
DELIVERY_RETRIES = Counter(
    "thrive_delivery_retries_total", "Failed attempts that will be retried.", ["channel"]
)
DELIVERIES_PARKED = Gauge(
    "thrive_deliveries_parked", "Deliveries parked, waiting for an operator.", ["channel"]
)
DIGEST_SIZE = Histogram(
    "thrive_digest_size",
    "Items per delivered digest.",
    buckets=(1, 2, 3, 5, 10, 20, 50, 100, 250),
)
BUDGET_DEFERRALS = Counter(
    "thrive_budget_deferrals_total",
    "Live notifications deferred to a digest (or quietly to the inbox).",
    ["reason"],
)
