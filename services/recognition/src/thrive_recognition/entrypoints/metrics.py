"""Recognition's own metrics (the shared ones come from thrive_shared.observability)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter
from thrive_shared.contracts import Envelope, MilestoneReached

MILESTONES_REACHED = Counter(
    "thrive_recognition_milestones_reached_total",
    "Milestone levels reached (each person, rule and level once).",
    ["rule_id"],
)


def count_milestones(published: Iterable[Envelope[Any]]) -> None:
    """Count the milestones among committed events."""
    for env in published:
        if isinstance(env.data, MilestoneReached):
            MILESTONES_REACHED.labels(env.data.rule_id).inc()
