"""One stored board-period held in memory: everyone's counters and a rank index per metric.

Counters are the truth (mirrored from Postgres); a metric's RankIndex is built from them
the first time that metric is asked for and kept in step afterwards. Opted-out people keep
their counters (their help still counts for team totals) but are left out of every index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.ranking import RankIndex
from thrive_leaderboard.domain.scoring import ZERO, Counters, Metric, Scorer


class StoredBoard(NamedTuple):
    """A stored board-period: `company` or `theme:<t>`, a window, a period key.

    A tuple (hashed in C): every committed row looks its board up.
    """

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
        # Mutable [n, nd, d, x, m] lists: every committed row adds its change in place.
        # Summed on first use (the `teams` board), like an index: until then no committed
        # row pays a directory lookup and a team update (~20 % of mirroring a row).
        self._team_totals: dict[str, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.counters)

    @property
    def team_totals(self) -> dict[str, list[int]] | None:
        """Summed counters per team (None on boards without teams), summed on first use."""
        if self._team_totals is None and self._team_of is not None:
            team_of = self._team_of
            self._team_totals = {}
            for person, c in self.counters.items():
                self._add_team(team_of(person), c, ZERO)
        return self._team_totals

    def _add_team(self, team: str | None, new: Counters, old: Counters) -> None:
        """Add `new - old` to the team's total (dropped once it is all zeros)."""
        totals = self._team_totals
        if team is None or totals is None:
            return
        t = totals.get(team)
        if t is None:
            t = totals[team] = [0, 0, 0, 0, 0]
        t[0] += new[0] - old[0]
        t[1] += new[1] - old[1]
        t[2] += new[2] - old[2]
        t[3] += new[3] - old[3]
        t[4] += new[4] - old[4]
        if not (t[0] or t[1] or t[2] or t[3] or t[4]):
            del totals[team]

    def team_total(self, team: str) -> Counters:
        """A team's summed counters (zeros if none)."""
        t = (self.team_totals or {}).get(team)
        return Counters(*t) if t is not None else ZERO

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
        if self._team_totals is not None and self._team_of is not None:
            self._add_team(self._team_of(person), counters, old or ZERO)
        if self._hidden(person):
            return
        scorers = self._scorers
        for metric, idx in self._indexes.items():
            s = scorers[metric](counters)
            if s > 0:
                idx.set(person, s)
            else:
                idx.discard(person)

    def remove(self, person: str) -> None:
        """Forget the person entirely (erasure)."""
        old = self.counters.pop(person, None)
        if old is not None and self._team_totals is not None and self._team_of is not None:
            self._add_team(self._team_of(person), ZERO, old)
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
        """Carry the person's counters from one team's total to another's (if summed yet)."""
        c = self.counters.get(person)
        if c is None or old_team == new_team:
            return
        self._add_team(old_team, ZERO, c)
        self._add_team(new_team, c, ZERO)
