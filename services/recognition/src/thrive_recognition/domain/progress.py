"""Folding many progress updates into one change per person, and the result rules read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from thrive_recognition.domain.model import Counts, Progress, ProgressUpdate

COUNTERS = ("thanks_received", "thanks_given", "asks", "offers")


class PersonDelta:
    """Everything a batch of acts adds to one person."""

    # A plain slotted class: a dataclass's default factories cost more than the fold itself
    # (one delta per person per batch, thousands per batch).
    __slots__ = ("counters", "helped_people", "helped_teams", "person", "themes", "weeks")

    def __init__(self, person: str) -> None:
        self.person = person
        self.counters: dict[str, int] = {
            "thanks_received": 0,
            "thanks_given": 0,
            "asks": 0,
            "offers": 0,
        }
        self.helped_people: dict[str, None] = {}  # ordered set
        self.helped_teams: dict[str, None] = {}
        self.weeks: dict[date, None] = {}
        self.themes: dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"PersonDelta(person={self.person!r}, counters={self.counters!r}, "
            f"helped_people={list(self.helped_people)!r}, "
            f"helped_teams={list(self.helped_teams)!r}, weeks={list(self.weeks)!r}, "
            f"themes={self.themes!r})"
        )


def fold(updates: Iterable[ProgressUpdate]) -> dict[str, PersonDelta]:
    """One delta per person, in the order people first appear."""
    # Hot path (twice per ingested event): plain attribute reads, no per-update dicts.
    out: dict[str, PersonDelta] = {}
    for u in updates:
        d = out.get(u.person)
        if d is None:
            d = out[u.person] = PersonDelta(u.person)
        c = d.counters
        if u.thanks_received:
            c["thanks_received"] += u.thanks_received
        if u.thanks_given:
            c["thanks_given"] += u.thanks_given
        if u.asks:
            c["asks"] += u.asks
        if u.offers:
            c["offers"] += u.offers
        if u.helped_person:
            d.helped_people[u.helped_person] = None
        if u.helped_team:
            d.helped_teams[u.helped_team] = None
        if u.help_week:
            d.weeks[u.help_week] = None
        if u.themes:
            themes = d.themes
            for theme in u.themes if len(u.themes) < 2 else dict.fromkeys(u.themes):
                themes[theme] = themes.get(theme, 0) + 1
    return out


def result(
    delta: PersonDelta,
    *,
    counts: Counts,
    new_people: int,
    new_teams: int,
    themes: dict[str, int],
    new_week_runs: Sequence[int],
) -> Progress:
    """What the rules see: values after the change, and each changed metric's floor."""
    changed: set[str] = set()
    floors: dict[str, int] = {}
    for name in COUNTERS:
        if delta.counters[name]:
            changed.add(name)
            floors[name] = getattr(counts, name) - delta.counters[name]
    if new_people:
        changed.add("people_helped")
        floors["people_helped"] = counts.people_helped - new_people
    if new_teams:
        changed.add("teams_helped")
        floors["teams_helped"] = counts.teams_helped - new_teams
    snapshot = counts
    if new_week_runs:
        changed.add("streak_weeks")
        # Rules see the longest run a new week belongs to (a late event may extend an old run).
        # (A hand copy: dataclasses.replace costs more than the whole rule evaluation.)
        snapshot = Counts(
            thanks_received=counts.thanks_received,
            thanks_given=counts.thanks_given,
            asks=counts.asks,
            offers=counts.offers,
            people_helped=counts.people_helped,
            teams_helped=counts.teams_helped,
            streak_weeks=max(new_week_runs),
            longest_streak=counts.longest_streak,
            last_help_week=counts.last_help_week,
        )
    if themes:
        changed.add("themes")
    return Progress(
        person=delta.person,
        counts=snapshot,
        themes=themes,
        changed=frozenset(changed),
        floors=floors,
        theme_floors={t: n - delta.themes[t] for t, n in themes.items()},
    )
