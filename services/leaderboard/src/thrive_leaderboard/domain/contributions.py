"""What an event adds to standings: one day row per scope, counting towards every window.

Scopes stored per person are `company` and `theme:<theme>`. Team boards are not stored:
they are the company standings of the team's current members (see README).

Distinct people helped is decided per (helper, scope, giver) pair from the local days on
which the giver thanked the helper: every window is a union of days, so a thanks is the
first from that giver in a period exactly when no known day of the pair falls in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from thrive_leaderboard.domain.periods import Window, periods_of_day

COMPANY = "company"
THEME_PREFIX = "theme:"


def theme_scope(theme: str) -> str:
    """The stored scope key of a theme board."""
    return THEME_PREFIX + theme


class Delta(NamedTuple):
    """Counter increments for one person on one stored board-period.

    A tuple (not a dataclass): an event makes 5-15 of these, on the hot path.
    """

    scope: str
    window: Window
    period: str
    person: str
    n: int = 0
    nd: int = 0
    x: int = 0
    m: int = 0


@dataclass(frozen=True, slots=True)
class Thanks:
    """The parts of a HelpReceived event the leaderboard needs."""

    helper: str
    giver: str | None
    helper_team: str | None
    giver_team: str | None
    themes: tuple[str, ...]
    discounted: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Milestone:
    """The parts of a MilestoneReached event the leaderboard needs."""

    person: str
    themes: tuple[str, ...]
    at: datetime


class PersonKeys:
    """Keyed hashes of person ids: giver identities for distinct counts, erasure tombstones.

    Keyed (BLAKE2b with a secret), so the stored values cannot be linked back to a person
    by hashing a guessed id without the key.
    """

    def __init__(self, key: bytes) -> None:
        if not 1 <= len(key) <= 64:
            raise ValueError("person hash key must be 1..64 bytes")
        self._key = key
        self._tombstones: dict[str, bytes] = {}
        self._givers: dict[str, int] = {}

    def giver(self, person: str) -> int:
        """A signed 64-bit identity for distinct counting (fits a Postgres bigint)."""
        # People thank again and again: remember recent ones (a keyed hash is ~1.5 µs).
        found = self._givers.get(person)
        if found is None:
            if len(self._givers) >= _TOMBSTONE_CACHE:
                self._givers.clear()
            digest = hashlib.blake2b(person.encode(), digest_size=8, key=self._key).digest()
            found = self._givers[person] = int.from_bytes(digest, "big", signed=True)
        return found

    def tombstone(self, person: str) -> bytes:
        """A 16-byte key remembering that `person` was erased."""
        # Every applied row carries its person's tombstone key: remember recent ones.
        key = self._tombstones.get(person)
        if key is None:
            if len(self._tombstones) >= _TOMBSTONE_CACHE:
                self._tombstones.clear()
            key = self._tombstones[person] = hashlib.blake2b(
                person.encode(), digest_size=16, key=self._key, person=b"erased"
            ).digest()
        return key


_TOMBSTONE_CACHE = 200_000


# (helper, scope, keyed hash of the giver): one row of the `helped` table.
PairKey = tuple[str, str, int]


class Fact(NamedTuple):
    """What one help or milestone event adds, before it is spread over windows.

    One person, one company-local day, the stored scopes it counts on, and for a thanks
    the keyed hash of the giver (distinct counting; None when the giver is unknown).
    """

    person: str
    scopes: tuple[str, ...]
    day: int
    n: int
    nd: int
    x: int
    m: int
    giver: int | None


def scopes_of(themes: tuple[str, ...]) -> tuple[str, ...]:
    """The stored scopes an event with these themes counts on."""
    if not themes:
        return _CO_SCOPES
    return _theme_scopes(themes)


@lru_cache(maxsize=4096)
def _theme_scopes(themes: tuple[str, ...]) -> tuple[str, ...]:
    # A handful of theme combinations recur on every batch: build each scope tuple once.
    return (COMPANY, *(theme_scope(th) for th in dict.fromkeys(themes)))


_CO_SCOPES = (COMPANY,)


def thanks_fact(t: Thanks, *, tz: ZoneInfo, keys: PersonKeys) -> Fact:
    """The fact a thanks makes for its helper."""
    return help_fact(
        t.helper, t.giver, t.helper_team, t.giver_team, t.themes, t.discounted, t.at, tz, keys
    )


def help_fact(
    helper: str,
    giver: str | None,
    helper_team: str | None,
    giver_team: str | None,
    themes: tuple[str, ...],
    discounted: bool,
    at: datetime,
    tz: ZoneInfo,
    keys: PersonKeys,
) -> Fact:
    """`thanks_fact` from the fields themselves (the apply path makes no `Thanks`)."""
    cross = int(helper_team is not None and giver_team is not None and helper_team != giver_team)
    hashed = keys.giver(giver) if giver is not None else None
    return Fact(helper, scopes_of(themes), local_day(at, tz), 1, int(discounted), cross, 0, hashed)


def milestone_fact(ms: Milestone, *, tz: ZoneInfo) -> Fact:
    """The fact a milestone makes for its person."""
    return Fact(ms.person, scopes_of(ms.themes), local_day(ms.at, tz), 0, 0, 0, 1, None)


def spread(f: Fact) -> list[Delta]:
    """A fact as counter increments on every window and scope it counts towards."""
    return [
        Delta(scope, window, period, f.person, f.n, f.nd, f.x, f.m)
        for window, period in periods_of_day(f.day)
        for scope in f.scopes
    ]


def fact_pairs(f: Fact) -> list[tuple[PairKey, int]]:
    """(pair, local day) per stored scope: the facts distinct-people-helped is decided from."""
    if f.giver is None:
        return []
    return [((f.person, scope, f.giver), f.day) for scope in f.scopes]


def thanks_deltas(t: Thanks, *, tz: ZoneInfo, keys: PersonKeys) -> list[Delta]:
    """The counter increments a thanks makes for its helper, on every window and scope.

    Distinct people helped (`d`) is not here: it depends on the pair's history, see
    `thanks_pairs` and `distinct_increments`.
    """
    return spread(thanks_fact(t, tz=tz, keys=keys))


def local_day(at: datetime, tz: ZoneInfo) -> int:
    """The company-local calendar day of an instant, as a date ordinal."""
    local = at.astimezone(tz) if at.tzinfo is not None else at.replace(tzinfo=tz)
    return local.date().toordinal()


def thanks_pairs(t: Thanks, *, tz: ZoneInfo, keys: PersonKeys) -> list[tuple[PairKey, int]]:
    """(pair, local day) per stored scope: the facts distinct-people-helped is decided from."""
    if t.giver is None:  # the giver was erased before the event was made: not countable
        return []
    return fact_pairs(thanks_fact(t, tz=tz, keys=keys))


def milestone_deltas(ms: Milestone, *, tz: ZoneInfo) -> list[Delta]:
    """The increments a milestone makes for its person."""
    return spread(milestone_fact(ms, tz=tz))


@dataclass(slots=True)
class Aggregate:
    """Deltas for one row summed over a batch (a statement may update a row only once)."""

    n: int = 0
    nd: int = 0
    d: int = 0
    x: int = 0
    m: int = 0


RowKey = tuple[str, str, str, str]  # scope, window, period, person


def aggregate(deltas: Iterable[Delta]) -> dict[RowKey, Aggregate]:
    """Sum deltas per stored row."""
    out: dict[RowKey, Aggregate] = {}
    for d in deltas:
        key: RowKey = d[:4]  # Window is a str enum: the key equals its string form
        agg = out.get(key)
        if agg is None:
            agg = out[key] = Aggregate()
        agg.n += d.n
        agg.nd += d.nd
        agg.x += d.x
        agg.m += d.m
    return out


# scope, company-local day (a date ordinal), person: one `standing_day` row.
DayKey = tuple[str, int, str]


class DayAgg:
    """A batch's increments for one day row: counters, and `d` per window (WINDOWS order).

    `d[i]` is the distinct-people-helped increment of the i-th window's period holding the
    day (a thanks that was its pair's first in that week, month, ...). A plain slotted
    class, not a dataclass: every applied row makes one, on the hot path.
    """

    __slots__ = ("d", "m", "n", "nd", "x")

    def __init__(self, n: int = 0, nd: int = 0, x: int = 0, m: int = 0) -> None:
        self.n = n
        self.nd = nd
        self.x = x
        self.m = m
        self.d = [0, 0, 0, 0, 0]

    def __repr__(self) -> str:
        return f"DayAgg(n={self.n}, nd={self.nd}, x={self.x}, m={self.m}, d={self.d})"


def accumulate(rows: dict[DayKey, DayAgg], f: Fact) -> None:
    """Add a fact's increments to its day row per scope, in place (the hot path)."""
    person, day = f.person, f.day
    for scope in f.scopes:
        key = (scope, day, person)
        agg = rows.get(key)
        if agg is None:
            rows[key] = DayAgg(f.n, f.nd, f.x, f.m)
        else:
            agg.n += f.n
            agg.nd += f.nd
            agg.x += f.x
            agg.m += f.m


def unfold(rows: Mapping[DayKey, DayAgg]) -> dict[RowKey, Aggregate]:
    """Day rows as the board-period rows they count towards (summed, zeros left out)."""
    out: dict[RowKey, Aggregate] = {}
    for (scope, day, person), a in rows.items():
        for i, (window, period) in enumerate(periods_of_day(day)):
            key = (scope, window, period, person)
            agg = out.get(key)
            if agg is None:
                agg = out[key] = Aggregate()
            agg.n += a.n
            agg.nd += a.nd
            agg.d += a.d[i]
            agg.x += a.x
            agg.m += a.m
    return {k: v for k, v in out.items() if v != Aggregate()}


def distinct_increments(
    batch: Mapping[PairKey, Iterable[int]],
    known: Mapping[PairKey, Sequence[int]],
    rows: Mapping[DayKey, DayAgg],
) -> dict[PairKey, list[int]]:
    """Add new distinct-people-helped to `rows`; return each changed pair's sorted days.

    `batch` holds the days each pair was thanked on in this batch, `known` the days already
    stored, `rows` the batch's day rows (one exists for every day of `batch`). A pair adds
    1 to a window the first time one of its days falls in that window's period; the +1
    goes on that day's row (a day inside the period). A day seen before (a replay, a
    second thanks the same day) adds nothing, whatever the order the events arrive in.
    """
    merged: dict[PairKey, list[int]] = {}
    for pair, days in batch.items():
        old = known.get(pair)
        helper, scope, _giver = pair
        if not old:  # most pairs: never seen before, every period of every day is new
            new_days = sorted(set(days))
            merged[pair] = new_days
            if len(new_days) == 1:  # the common case: one day, each of its periods once
                d = rows[(scope, new_days[0], helper)].d
                d[0] += 1
                d[1] += 1
                d[2] += 1
                d[3] += 1
                d[4] += 1
                continue
            seen: set[tuple[Window, str]] = set()
        else:
            new_days = sorted(set(days).difference(old))
            if not new_days:
                continue
            seen = {wp for day in old for wp in periods_of_day(day)}
            merged[pair] = sorted({*old, *new_days})
        for day in new_days:
            d = rows[(scope, day, helper)].d
            for i, wp in enumerate(periods_of_day(day)):
                if wp not in seen:
                    seen.add(wp)
                    d[i] += 1
    return merged
