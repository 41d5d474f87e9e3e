"""Metrics and how a person's counters become a score on each of them.

Scores are integers in centi-points (1 point = 100), so ranking never compares floats
and every score is exact; the API shows them divided by 100.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

SCALE = 100


class Metric(StrEnum):
    """What a board ranks by."""

    SERVICE = "service"  # default: weighted help given, breadth counts more than volume
    THANKS_RECEIVED = "thanks_received"
    HELP_GIVEN = "help_given"
    PEOPLE_HELPED = "people_helped"
    CROSS_TEAM = "cross_team"
    MILESTONES = "milestones"


DEFAULT_METRIC = Metric.SERVICE


class Counters(NamedTuple):
    """What a person (or team) did in one period; every metric is a function of these."""

    n: int = 0  # thanks received as the helper
    nd: int = 0  # of which discounted (reciprocal ring)
    d: int = 0  # distinct people helped
    x: int = 0  # thanks across teams (giver's team differs from the helper's)
    m: int = 0  # milestone levels reached

    def plus(self, other: Counters) -> Counters:
        """Field-wise sum."""
        return Counters(
            self.n + other.n,
            self.nd + other.nd,
            self.d + other.d,
            self.x + other.x,
            self.m + other.m,
        )

    def minus(self, other: Counters) -> Counters:
        """Field-wise difference."""
        return Counters(
            self.n - other.n,
            self.nd - other.nd,
            self.d - other.d,
            self.x - other.x,
            self.m - other.m,
        )


ZERO = Counters()


@dataclass(frozen=True, slots=True)
class Weights:
    """How the default `service` board weighs volume, breadth and reach."""

    help: float = 1.0  # per thanks received for help
    discounted: float = 0.25  # fraction a discounted (ring) thanks is worth
    breadth: float = 2.0  # per distinct person helped
    cross_team: float = 1.0  # per thanks across teams

    def __post_init__(self) -> None:
        for name in ("help", "discounted", "breadth", "cross_team"):
            if getattr(self, name) < 0:
                raise ValueError(f"weight {name} must be >= 0")
        if self.discounted > 1:
            raise ValueError("a discounted thanks cannot be worth more than a normal one")


Scorer = Callable[[Counters], int]


def scorer(metric: Metric, weights: Weights) -> Scorer:
    """A function from counters to the metric's score in centi-points."""
    if metric is Metric.THANKS_RECEIVED:
        return lambda c: c.n * SCALE
    if metric is Metric.PEOPLE_HELPED:
        return lambda c: c.d * SCALE
    if metric is Metric.CROSS_TEAM:
        return lambda c: c.x * SCALE
    if metric is Metric.MILESTONES:
        return lambda c: c.m * SCALE
    disc = round(weights.discounted * SCALE)
    if metric is Metric.HELP_GIVEN:
        return lambda c: (c.n - c.nd) * SCALE + c.nd * disc
    full = round(weights.help * SCALE)
    part = round(weights.help * weights.discounted * SCALE)
    breadth = round(weights.breadth * SCALE)
    cross = round(weights.cross_team * SCALE)
    return lambda c: (c.n - c.nd) * full + c.nd * part + c.d * breadth + c.x * cross


def scorers(weights: Weights) -> dict[Metric, Scorer]:
    """One scorer per metric."""
    return {metric: scorer(metric, weights) for metric in Metric}


def display(score: int) -> float:
    """A centi-point score as the number people see."""
    return score / SCALE
