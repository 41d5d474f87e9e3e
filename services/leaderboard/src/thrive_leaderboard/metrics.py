"""The leaderboard's own Prometheus metrics (names from the team's metric catalogue)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter(
    "thrive_leaderboard_events_applied_total",
    "Help, milestone and directory events applied to standings (committed).",
)
QUERY_DURATION = Histogram(
    "thrive_leaderboard_query_duration_seconds",
    "Time to answer a board query inside the service.",
    ["query"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
)
RESIDENT_ENTRIES = Gauge(
    "thrive_leaderboard_resident_entries",
    "People-on-board entries held in memory across resident boards.",
)
