"""One stored board-period held in memory: everyone's counters and a rank index per metric.

Counters are the truth (mirrored from Postgres); a metric's RankIndex is built from them
the first time that metric is asked for and kept in step afterwards. Opted-out people keep
their counters (their help still counts for team totals) but are left out of every index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.ranking import RankIndex
from thrive_leaderboard.domain.scoring import ZERO, Counters, Metric, Scorer


@dataclass(frozen=True, slots=True)
class StoredBoard:
    """A stored board-period: `company` or `theme:<t>`, a window, a period key."""

    scope: str
    window: Window
    period: str


class PeriodStandings:
    """Counters of everyone on one stored board-period, plus lazily built rank indexes."""

    def __init__(
        self,
        key: StoredBoard,
        *,
        scorers: Mapping[Metric, Scorer],
        hidden: Callable[[str], bool],
        team_of: Callable[[str], str | None] | None = None,
        counters: dict[str, Counters] | None = None,
    ) -> None:
        self.key = key
        self._scorers = scorers
        self._hidden = hidden
        self._team_of = team_of
        self.counters: dict[str, Counters] = counters or {}
        self._indexes: dict[Metric, RankIndex] = {}
        # Team totals include hidden (opted-out) people: their help counts in aggregate.
        self.team_totals: dict[str, Counters] | None = None
        if team_of is not None:
            self.team_totals = {}
            for person, c in self.counters.items():
                self._add_team(team_of(person), c)

    def __len__(self) -> int:
        return len(self.counters)

    def _add_team(self, team: str | None, c: Counters) -> None:
        if team is None or self.team_totals is None:
            return
        self.team_totals[team] = self.team_totals.get(team, ZERO).plus(c)

    def _sub_team(self, team: str | None, c: Counters) -> None:
        if team is None or self.team_totals is None:
            return
        left = self.team_totals.get(team, ZERO).minus(c)
        if any(left):
            self.team_totals[team] = left
        else:
            self.team_totals.pop(team, None)

    def index(self, metric: Metric) -> RankIndex:
        """The rank index for `metric`, built on first use."""
        idx = self._indexes.get(metric)
        if idx is None:
            score = self._scorers[metric]
            hidden = self._hidden
            idx = RankIndex(
                {p: score(c) for p, c in self.counters.items() if not hidden(p) and score(c) > 0}
            )
            self._indexes[metric] = idx
        return idx

    def built(self) -> Iterable[Metric]:
        """Metrics whose index exists."""
        return tuple(self._indexes)

    def get(self, person: str) -> Counters:
        """The person's counters (zeros if absent)."""
        return self.counters.get(person, ZERO)

    def put(self, person: str, counters: Counters) -> None:
        """Set the person's counters (absolute values, as committed in Postgres)."""
        old = self.counters.get(person)
        if old == counters:
            return
        self.counters[person] = counters
        if self.team_totals is not None and self._team_of is not None:
            team = self._team_of(person)
            if old is not None:
                self._sub_team(team, old)
            self._add_team(team, counters)
        if self._hidden(person):
            return
        for metric, idx in self._indexes.items():
            s = self._scorers[metric](counters)
            if s > 0:
                idx.set(person, s)
            else:
                idx.discard(person)

    def remove(self, person: str) -> None:
        """Forget the person entirely (erasure)."""
        old = self.counters.pop(person, None)
        if old is not None and self._team_of is not None:
            self._sub_team(self._team_of(person), old)
        for idx in self._indexes.values():
            idx.discard(person)

    def hide(self, person: str) -> None:
        """Leave the person out of rankings (opt-out); counters and team totals stay."""
        for idx in self._indexes.values():
            idx.discard(person)

    def show(self, person: str) -> None:
        """Rank the person again (opt back in)."""
        c = self.counters.get(person)
        if c is None:
            return
        for metric, idx in self._indexes.items():
            s = self._scorers[metric](c)
            if s > 0:
                idx.set(person, s)

    def move_team(self, person: str, old_team: str | None, new_team: str | None) -> None:
        """Carry the person's counters from one team's total to another's."""
        c = self.counters.get(person)
        if c is None or old_team == new_team:
            return
        self._sub_team(old_team, c)
        self._add_team(new_team, c)
