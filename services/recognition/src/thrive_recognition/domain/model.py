"""Entities of the recognition context: people, asks, offers, thanks, milestones."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar, dataclass_transform

from thrive_shared.contracts import AskSize, CelebrationSize, Visibility

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def hot_record(cls: type[_T]) -> type[_T]:
    """A frozen dataclass to the type checker, a plain slotted one at run time.

    For the few records made several times per ingested event: a frozen dataclass sets
    each field through object.__setattr__ (1.6-1.9 us for 10 fields against 0.2 us), which
    was ~13 us of every event's critical path. mypy still refuses any assignment to a field
    (so it stays immutable in this code base) and instances hash by value, as frozen ones.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)


ERASED_PREFIX = "erased:"
THRIVE_ORIGIN = "thrive"


def is_erased(person_id: str | None) -> bool:
    """Whether a stored person reference is the pseudonym left behind by an erasure."""
    return person_id is None or person_id.startswith(ERASED_PREFIX)


def shown(person_id: str | None) -> str | None:
    """A person reference as clients may see it: erased people are never named."""
    return None if is_erased(person_id) else person_id


class AskState(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


OPEN_STATES = frozenset({AskState.OPEN, AskState.ACCEPTED})


@hot_record
class Person:
    """An employee, mirrored from the HR directory."""

    id: str
    name: str
    email: str
    team: str
    timezone: str = "UTC"
    locale: str = "en"
    manager: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class Ask:
    """A sized, themed, expiring request for help."""

    id: str
    asker: str
    asker_team: str | None
    title: str
    details: str
    themes: tuple[str, ...]
    size: AskSize
    status: AskState
    created_at: datetime
    expires_at: datetime
    accepted_offer_id: str | None = None
    accepted_helper: str | None = None
    closed_at: datetime | None = None

    def with_status(
        self,
        status: AskState,
        *,
        at: datetime,
        offer_id: str | None = None,
        helper: str | None = None,
    ) -> Ask:
        """This ask moved to `status` at `at`."""
        return replace(
            self,
            status=status,
            accepted_offer_id=offer_id or self.accepted_offer_id,
            accepted_helper=helper or self.accepted_helper,
            closed_at=at if status not in OPEN_STATES else self.closed_at,
        )


@dataclass(frozen=True, slots=True)
class Offer:
    """Help offered: in reply to an ask, or standing on themes."""

    id: str
    helper: str
    ask_id: str | None
    themes: tuple[str, ...]
    message: str
    created_at: datetime
    origin: str = THRIVE_ORIGIN
    external_id: str | None = None


@hot_record
class Thanks:
    """Help received: `giver` was helped and thanks `helper`."""

    id: str
    giver: str
    helper: str
    giver_team: str | None
    helper_team: str | None
    message: str
    themes: tuple[str, ...]
    visibility: Visibility
    given_at: datetime
    ask_id: str | None = None
    offer_id: str | None = None
    discounted: bool = False
    origin: str = THRIVE_ORIGIN
    external_id: str | None = None

    def visible_to(self, actor: str | None, *, admin: bool = False) -> bool:
        """Private thanks are seen only by the two people in it (and admins)."""
        if self.visibility is Visibility.PUBLIC or admin:
            return True
        return actor is not None and actor in (self.giver, self.helper)


@hot_record
class Milestone:
    """A level of a rule that a person reached; reached once, never taken back."""

    id: str
    person: str
    team: str | None
    rule_id: str
    scope: str
    level: int
    size: CelebrationSize
    title: str
    themes: tuple[str, ...]
    reached_at: datetime


@dataclass(slots=True)
class Counts:
    """A person's running totals, the inputs of most milestone rules."""

    thanks_received: int = 0
    thanks_given: int = 0
    asks: int = 0
    offers: int = 0
    people_helped: int = 0
    teams_helped: int = 0
    streak_weeks: int = 0  # the run containing the latest week helped
    longest_streak: int = 0
    last_help_week: date | None = None

    def current_streak(self, this_week: date) -> int:
        """The streak still alive: helped this week or last week."""
        if self.last_help_week is None or (this_week - self.last_help_week).days > 7:
            return 0
        return self.streak_weeks

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain mapping (the API's `counts`)."""
        return {
            "thanks_received": self.thanks_received,
            "thanks_given": self.thanks_given,
            "asks": self.asks,
            "offers": self.offers,
            "people_helped": self.people_helped,
            "teams_helped": self.teams_helped,
            "streak_weeks": self.streak_weeks,
            "longest_streak": self.longest_streak,
        }


@dataclass(slots=True)
class Progress:
    """A person's counts after an update, plus the theme counts that update touched.

    `floors` hold each changed metric's value before the update (and `theme_floors` each
    theme's), so rules report only the levels crossed now; a metric without a floor (the
    streak, whose runs can merge) reports every level reached.
    """

    person: str
    counts: Counts = field(default_factory=Counts)
    themes: dict[str, int] = field(default_factory=dict)
    changed: frozenset[str] = frozenset()
    floors: dict[str, int] = field(default_factory=dict)
    theme_floors: dict[str, int] = field(default_factory=dict)


@hot_record
class ProgressUpdate:
    """What one act adds to a person's progress."""

    person: str
    thanks_received: int = 0
    thanks_given: int = 0
    asks: int = 0
    offers: int = 0
    helped_person: str | None = None  # a distinct-people candidate
    helped_team: str | None = None  # another team than the person's own
    themes: tuple[str, ...] = ()
    help_week: date | None = None  # Monday of the week helped, in the person's timezone

    def counters(self) -> dict[str, int]:
        """The plain counter increments that are not zero."""
        raw = {
            "thanks_received": self.thanks_received,
            "thanks_given": self.thanks_given,
            "asks": self.asks,
            "offers": self.offers,
        }
        return {k: v for k, v in raw.items() if v}
