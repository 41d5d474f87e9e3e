"""What an event adds to standings: one Delta per (scope, window, period, person).

Scopes stored per person are `company` and `theme:<theme>`. Team boards are not stored:
they are the company standings of the team's current members (see README).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from thrive_leaderboard.domain.periods import Window, periods_of

COMPANY = "company"
THEME_PREFIX = "theme:"


def theme_scope(theme: str) -> str:
    """The stored scope key of a theme board."""
    return THEME_PREFIX + theme


@dataclass(frozen=True, slots=True)
class Delta:
    """Counter increments for one person on one stored board-period."""

    scope: str
    window: Window
    period: str
    person: str
    n: int = 0
    nd: int = 0
    x: int = 0
    m: int = 0
    giver: int | None = None  # keyed hash of who was helped, for distinct counting


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

    def giver(self, person: str) -> int:
        """A signed 64-bit identity for distinct counting (fits a Postgres bigint)."""
        digest = hashlib.blake2b(person.encode(), digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "big", signed=True)

    def tombstone(self, person: str) -> bytes:
        """A 16-byte key remembering that `person` was erased."""
        return hashlib.blake2b(
            person.encode(), digest_size=16, key=self._key, person=b"erased"
        ).digest()


def thanks_deltas(t: Thanks, *, tz: ZoneInfo, keys: PersonKeys) -> list[Delta]:
    """The increments a thanks makes for its helper, on every window and stored scope."""
    cross = int(
        t.helper_team is not None and t.giver_team is not None and t.helper_team != t.giver_team
    )
    giver = keys.giver(t.giver) if t.giver is not None else None
    nd = int(t.discounted)
    scopes = [COMPANY, *(theme_scope(th) for th in dict.fromkeys(t.themes))]
    return [
        Delta(scope, window, period, t.helper, n=1, nd=nd, x=cross, giver=giver)
        for window, period in periods_of(t.at, tz)
        for scope in scopes
    ]


def milestone_deltas(ms: Milestone, *, tz: ZoneInfo) -> list[Delta]:
    """The increments a milestone makes for its person."""
    scopes = [COMPANY, *(theme_scope(th) for th in dict.fromkeys(ms.themes))]
    return [
        Delta(scope, window, period, ms.person, m=1)
        for window, period in periods_of(ms.at, tz)
        for scope in scopes
    ]


@dataclass(slots=True)
class Aggregate:
    """Deltas for one row summed over a batch (a statement may update a row only once)."""

    n: int = 0
    nd: int = 0
    x: int = 0
    m: int = 0
    givers: set[int] | None = None


RowKey = tuple[str, str, str, str]  # scope, window, period, person


def aggregate(deltas: Iterable[Delta]) -> dict[RowKey, Aggregate]:
    """Sum deltas per stored row, collecting the distinct givers."""
    out: dict[RowKey, Aggregate] = {}
    for d in deltas:
        key = (d.scope, d.window.value, d.period, d.person)
        agg = out.get(key)
        if agg is None:
            agg = out[key] = Aggregate()
        agg.n += d.n
        agg.nd += d.nd
        agg.x += d.x
        agg.m += d.m
        if d.giver is not None:
            if agg.givers is None:
                agg.givers = set()
            agg.givers.add(d.giver)
    return out
