"""One stored board-period held in memory: everyone's counters and a rank index per metric.

Counters are the truth (mirrored from Postgres); a metric's RankIndex is built from them
the first time that metric is asked for and kept in step afterwards. Opted-out people keep
their counters (their help still counts for team totals) but are left out of every index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import NamedTuple

from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.ranking import RankIndex
from thrive_leaderboard.domain.scoring import ZERO, Counters, Metric, Scorer
from thrive_leaderboard.domain.visibility import Snapshot


class StoredBoard(NamedTuple):
    """A stored board-period: `company` or `theme:<t>`, a window, a period key.

    A tuple (hashed in C): every committed row looks its board up.
    """

    scope: str
    window: Window
    period: str


_tuple_new = tuple.__new__


@lru_cache(maxsize=65_536)
def board_key(scope: str, window: Window, period: str) -> StoredBoard:
    """The key object of a stored board (made once: boards repeat in every batch)."""
    return StoredBoard(scope, window, period)


def _add_into(totals: dict[str, list[int]], team: str | None, new: Counters, old: Counters) -> None:
    """Add `new - old` to `totals[team]` (dropped once it is all zeros)."""
    if team is None:
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
        snapshot: Snapshot | None = None,
    ) -> None:
        self.key = key
        # The snapshot the board was read in: a committed batch it shows is already in
        # the counters (None: a board that started empty, shows nothing).
        self.snapshot = snapshot
        self._scorers = scorers
        self._hidden = hidden
        self._team_of = team_of
        self.counters: dict[str, Counters] = counters or {}
        self._indexes: dict[Metric, RankIndex] = {}
        # (score function, index) per built index: what every committed row walks.
        self._scored: list[tuple[Scorer, RankIndex]] = []
        # Team totals include hidden (opted-out) people: their help counts in aggregate.
        # Mutable [n, nd, d, x, m] lists: every committed row adds its change in place.
        # Summed on first use (the `teams` board), like an index: until then no committed
        # row pays a directory lookup and a team update (~20 % of mirroring a row).
        self._team_totals: dict[str, list[int]] | None = None
        # A pass of `sum_team_slice` under way: people still to read, the totals so far and
        # the people already in them.
        self._to_sum: list[str] | None = None
        self._partial: dict[str, list[int]] = {}
        self._summed: set[str] = set()

    def __len__(self) -> int:
        return len(self.counters)

    @property
    def team_totals(self) -> dict[str, list[int]] | None:
        """Summed counters per team (None on boards without teams), summed on first use.

        Summing here takes one pass over the board at once (~1-2.5 s at 1M people); the
        `teams` query sums a slice at a time instead (`sum_team_slice`).
        """
        while not self.sum_team_slice(1 << 62):
            pass
        return self._team_totals

    def sum_team_slice(self, size: int) -> bool:
        """Add the next `size` people to the team totals; True once they are complete.

        Between slices, commits, erasures and team moves keep landing: a person already
        summed takes each change into the partial totals at once, a person not summed yet
        is read as they are when their slice comes, and a person who arrives meanwhile is
        summed on arrival. So the totals equal one pass over the board as it is then.
        """
        if self._team_totals is not None or self._team_of is None:
            return True
        if self._to_sum is None:
            self._to_sum = list(self.counters)
            self._partial, self._summed = {}, set()
        team_of, counters = self._team_of, self.counters
        partial, summed, to_sum = self._partial, self._summed, self._to_sum
        for _ in range(min(size, len(to_sum))):
            person = to_sum.pop()
            c = counters.get(person)
            if c is None or person in summed:  # erased, or summed on arrival
                continue
            summed.add(person)
            _add_into(partial, team_of(person), c, ZERO)
        if to_sum:
            return False
        self._team_totals, self._to_sum = partial, None
        self._partial, self._summed = {}, set()
        return True

    def _add_team(self, person: str, team: str | None, new: Counters, old: Counters) -> None:
        """Add `new - old` to the person's team total, or to a pass's partial totals."""
        if self._team_totals is not None:
            _add_into(self._team_totals, team, new, old)
        elif self._to_sum is not None:
            if person in self._summed:
                _add_into(self._partial, team, new, old)
            elif old is ZERO and new is not ZERO:
                # Arrived (or came back) after the pass began: summed from here on. A person
                # still listed and not summed yet is read when their slice comes instead.
                self._summed.add(person)
                _add_into(self._partial, team, new, ZERO)

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
            self._scored.append((score, idx))
        return idx

    def built(self) -> Iterable[Metric]:
        """Metrics whose index exists."""
        return tuple(self._indexes)

    def get(self, person: str) -> Counters:
        """The person's counters (zeros if absent)."""
        return self.counters.get(person, ZERO)

    def add(
        self, person: str, n: int, nd: int, d: int, x: int, m: int, hidden: bool | None = None
    ) -> None:
        """Add committed increments to the person's counters (the apply hot path).

        `hidden`: whether the person opted out, if the caller knows (asked once per row,
        not once per board).
        """
        counters = self.counters
        old = counters.get(person)
        # tuple.__new__ directly: a named tuple's own __new__ is a Python call (~0.3 µs).
        if old is None:
            new = _tuple_new(Counters, (n, nd, d, x, m))
        else:
            new = _tuple_new(
                Counters, (old[0] + n, old[1] + nd, old[2] + d, old[3] + x, old[4] + m)
            )
        counters[person] = new
        if self._team_of is not None and (self._team_totals is not None or self._to_sum):
            self._add_team(person, self._team_of(person), new, old or ZERO)
        if self._hidden(person) if hidden is None else hidden:
            return
        for score, idx in self._scored:
            s = score(new)
            if s > 0:
                idx.set(person, s)
            else:
                idx.discard(person)

    def remove(self, person: str) -> None:
        """Forget the person entirely (erasure)."""
        old = self.counters.pop(person, None)
        if old is not None and self._team_of is not None:
            self._add_team(person, self._team_of(person), ZERO, old)
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
        if person in self._summed or self._team_totals is not None:
            self._add_team(person, old_team, ZERO, c)
            self._add_team(person, new_team, c, ZERO)
