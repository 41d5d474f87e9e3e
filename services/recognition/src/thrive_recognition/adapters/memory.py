"""An in-memory repository: the fake that unit tests run the service layer against.

It follows the same contract as the SQL repository (the shared contract tests prove it),
but holds no locks: it is for single-task tests only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any, TypeVar

from thrive_shared.contracts import AskSize, Envelope, Visibility

from thrive_recognition.adapters.repository import Direction, Repository
from thrive_recognition.domain import progress as progress_rules
from thrive_recognition.domain.allowance import AllowanceWindows, Usage
from thrive_recognition.domain.model import (
    Ask,
    AskState,
    Counts,
    Milestone,
    Offer,
    Person,
    Progress,
    ProgressUpdate,
    Thanks,
)
from thrive_recognition.domain.pagination import Cursor, Page, PageRequest
from thrive_recognition.domain.periods import run_length

T = TypeVar("T")


def _paginate(
    items: Iterable[T], page: PageRequest, key: Callable[[T], tuple[datetime, str]]
) -> Page[T]:
    ordered = sorted(items, key=key, reverse=True)
    if page.after is not None:
        edge = (page.after.at, page.after.id)
        ordered = [i for i in ordered if key(i) < edge]
    chunk = ordered[: page.first]
    more = len(ordered) > page.first
    last = key(chunk[-1]) if chunk and more else None
    return Page(items=chunk, next_cursor=Cursor(*last) if last else None)


class InMemoryRepository:
    """Dicts and sets standing in for the recognition schema."""

    def __init__(self) -> None:
        self.people: dict[str, Person] = {}
        self.asks: dict[str, Ask] = {}
        self.offers: dict[str, Offer] = {}
        self.thanks: dict[str, Thanks] = {}
        self.counts: dict[str, Counts] = {}
        self.helped_people: set[tuple[str, str]] = set()
        self.helped_teams: set[tuple[str, str]] = set()
        self.help_weeks: set[tuple[str, date]] = set()
        self.theme_progress: dict[tuple[str, str], int] = {}
        self.milestones: dict[tuple[str, str, str, int], Milestone] = {}
        self.locked: list[str] = []

    # people
    async def get_people(self, ids: Sequence[str], *, lock: bool = False) -> dict[str, Person]:
        if lock:
            self.locked.extend(sorted(set(ids)))
        return {i: self.people[i] for i in ids if i in self.people}

    async def upsert_person(self, person: Person) -> None:
        self.people[person.id] = person

    async def lock_people(self, ids: Sequence[str]) -> None:
        self.locked.extend(ids)

    async def erase_person(self, person_id: str, *, token: str) -> None:
        self.people.pop(person_id, None)
        for pid, p in list(self.people.items()):
            if p.manager == person_id:
                self.people[pid] = replace(p, manager=None)
        for k, a in list(self.asks.items()):
            if a.asker == person_id:
                a = replace(a, asker=token, title="", details="")
            if a.accepted_helper == person_id:
                a = replace(a, accepted_helper=token)
            self.asks[k] = a
        for k, o in list(self.offers.items()):
            if o.helper == person_id:
                self.offers[k] = replace(o, helper=token, message="")
        for k, t in list(self.thanks.items()):
            if person_id in (t.giver, t.helper):
                self.thanks[k] = replace(
                    t,
                    giver=token if t.giver == person_id else t.giver,
                    helper=token if t.helper == person_id else t.helper,
                    message="",
                )
        self.counts.pop(person_id, None)
        self.helped_people = {
            (h, token if g == person_id else g) for h, g in self.helped_people if h != person_id
        }
        self.helped_teams = {(h, t) for h, t in self.helped_teams if h != person_id}
        self.help_weeks = {(p, w) for p, w in self.help_weeks if p != person_id}
        self.theme_progress = {k: v for k, v in self.theme_progress.items() if k[0] != person_id}
        self.milestones = {k: v for k, v in self.milestones.items() if k[0] != person_id}

    # asks and offers
    async def add_ask(self, ask: Ask) -> None:
        self.asks[ask.id] = ask

    async def get_ask(self, ask_id: str, *, for_update: bool = False) -> Ask | None:
        return self.asks.get(ask_id)

    async def save_ask(self, ask: Ask) -> None:
        self.asks[ask.id] = ask

    async def get_asks(self, ids: Sequence[str]) -> dict[str, Ask]:
        return {i: self.asks[i] for i in ids if i in self.asks}

    async def list_open_asks(
        self, *, theme: str | None, size: AskSize | None, page: PageRequest
    ) -> Page[Ask]:
        items = [
            a
            for a in self.asks.values()
            if a.status is AskState.OPEN
            and (theme is None or theme in a.themes)
            and (size is None or a.size is size)
        ]
        return _paginate(items, page, lambda a: (a.created_at, a.id))

    async def expire_due_asks(self, *, now: datetime, limit: int) -> list[Ask]:
        due = sorted(
            (a for a in self.asks.values() if a.status is AskState.OPEN and a.expires_at <= now),
            key=lambda a: a.expires_at,
        )[:limit]
        out = []
        for a in due:
            a = a.with_status(AskState.EXPIRED, at=now)
            self.asks[a.id] = a
            out.append(a)
        return out

    async def add_offer(self, offer: Offer) -> bool:
        if offer.external_id is not None and await self.find_offer(
            origin=offer.origin, external_id=offer.external_id
        ):
            return False
        self.offers[offer.id] = offer
        return True

    async def get_offer(self, offer_id: str) -> Offer | None:
        return self.offers.get(offer_id)

    async def find_offer(self, *, origin: str, external_id: str) -> Offer | None:
        return next(
            (
                o
                for o in self.offers.values()
                if o.origin == origin and o.external_id == external_id
            ),
            None,
        )

    # thanks
    async def add_thanks(self, thanks: Sequence[Thanks]) -> set[str]:
        inserted: set[str] = set()
        for t in thanks:
            if t.external_id is not None and await self.find_thanks(
                origin=t.origin, external_id=t.external_id
            ):
                continue
            self.thanks[t.id] = t
            inserted.add(t.id)
        return inserted

    async def find_thanks(self, *, origin: str, external_id: str) -> Thanks | None:
        return next(
            (
                t
                for t in self.thanks.values()
                if t.origin == origin and t.external_id == external_id
            ),
            None,
        )

    async def get_thanks(self, ids: Sequence[str]) -> dict[str, Thanks]:
        return {i: self.thanks[i] for i in ids if i in self.thanks}

    async def allowance_usage(
        self, *, giver: str, helper: str, windows: AllowanceWindows, origin: str | None
    ) -> Usage:
        mine = [
            t
            for t in self.thanks.values()
            if t.giver == giver and (origin is None or t.origin == origin)
        ]
        given = tuple(
            sum(1 for t in mine if w.start <= t.given_at < w.end) for _, w in windows.limits
        )
        pair = 0
        if windows.pair is not None:
            w = windows.pair[1]
            pair = sum(1 for t in mine if t.helper == helper and w.start <= t.given_at < w.end)
        return Usage(given=given, to_pair=pair)

    async def pair_counts(self, pairs: Sequence[tuple[str, str, datetime]]) -> list[int]:
        return [
            sum(
                1
                for t in self.thanks.values()
                if t.giver == giver and t.helper == helper and t.given_at >= since
            )
            for giver, helper, since in pairs
        ]

    async def ring_edges(self, *, start: str, since: datetime, depth: int) -> dict[str, set[str]]:
        edges: dict[str, set[str]] = {}
        for t in self.thanks.values():
            if t.given_at >= since:
                edges.setdefault(t.giver, set()).add(t.helper)
        return edges

    async def list_public_thanks(
        self, *, team: str | None, theme: str | None, page: PageRequest
    ) -> Page[Thanks]:
        items = [
            t
            for t in self.thanks.values()
            if t.visibility is Visibility.PUBLIC
            and (team is None or team in (t.giver_team, t.helper_team))
            and (theme is None or theme in t.themes)
        ]
        return _paginate(items, page, lambda t: (t.given_at, t.id))

    async def list_person_thanks(
        self,
        *,
        person: str,
        direction: Direction,
        viewer: str | None,
        admin: bool,
        page: PageRequest,
    ) -> Page[Thanks]:
        items = [
            t
            for t in self.thanks.values()
            if (t.helper if direction == "received" else t.giver) == person
            and t.visible_to(viewer, admin=admin)
        ]
        return _paginate(items, page, lambda t: (t.given_at, t.id))

    async def theme_counts(self) -> list[tuple[str, int]]:
        tally: dict[str, int] = {}
        for t in self.thanks.values():
            if t.visibility is Visibility.PUBLIC:
                for theme in t.themes:
                    tally[theme] = tally.get(theme, 0) + 1
        return sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))

    # progress and milestones
    async def apply_progress(self, updates: Sequence[ProgressUpdate]) -> dict[str, Progress]:
        out: dict[str, Progress] = {}
        for person, delta in progress_rules.fold(updates).items():
            counts = self.counts.setdefault(person, Counts())
            for name, inc in delta.counters.items():
                setattr(counts, name, getattr(counts, name) + inc)
            new_people = [g for g in delta.helped_people if (person, g) not in self.helped_people]
            self.helped_people.update((person, g) for g in new_people)
            counts.people_helped += len(new_people)
            new_teams = [t for t in delta.helped_teams if (person, t) not in self.helped_teams]
            self.helped_teams.update((person, t) for t in new_teams)
            counts.teams_helped += len(new_teams)
            new_weeks = [w for w in delta.weeks if (person, w) not in self.help_weeks]
            self.help_weeks.update((person, w) for w in new_weeks)
            runs: list[int] = []
            if new_weeks:
                weeks = {w for p, w in self.help_weeks if p == person}
                runs = [run_length(weeks, w) for w in new_weeks]
                latest = max(
                    [*new_weeks, *([counts.last_help_week] if counts.last_help_week else [])]
                )
                counts.last_help_week = latest
                counts.streak_weeks = run_length(weeks, latest)
                counts.longest_streak = max(counts.longest_streak, *runs)
            themes: dict[str, int] = {}
            for theme, inc in delta.themes.items():
                key = (person, theme)
                self.theme_progress[key] = self.theme_progress.get(key, 0) + inc
                themes[theme] = self.theme_progress[key]
            out[person] = progress_rules.result(
                delta,
                counts=replace(counts),
                new_people=len(new_people),
                new_teams=len(new_teams),
                themes=themes,
                new_week_runs=runs,
            )
        return out

    async def get_counts(self, ids: Sequence[str]) -> dict[str, Counts]:
        return {i: replace(self.counts[i]) for i in ids if i in self.counts}

    async def add_milestones(self, milestones: Sequence[Milestone]) -> list[Milestone]:
        new = []
        for m in milestones:
            key = (m.person, m.rule_id, m.scope, m.level)
            if key not in self.milestones:
                self.milestones[key] = m
                new.append(m)
        return new

    async def person_milestones(self, person: str) -> list[Milestone]:
        return sorted(
            (m for m in self.milestones.values() if m.person == person),
            key=lambda m: (m.reached_at, m.id),
            reverse=True,
        )

    async def list_milestones(
        self, *, team: str | None, theme: str | None, page: PageRequest
    ) -> Page[Milestone]:
        items = [
            m
            for m in self.milestones.values()
            if (team is None or m.team == team) and (theme is None or theme in m.themes)
        ]
        return _paginate(items, page, lambda m: (m.reached_at, m.id))


class InMemoryUnitOfWork:
    """A unit of work whose outbox is a list."""

    def __init__(self, repo: InMemoryRepository | None = None) -> None:
        self.repo = repo or InMemoryRepository()
        self.published: list[Envelope[Any]] = []

    async def publish(self, envelope: Envelope[Any]) -> None:
        self.published.append(envelope)

    def render(self) -> None:
        """Nothing to serialise in memory."""

    def events(self, kind: type[Any]) -> list[Any]:
        """Payloads published so far of one event type."""
        return [e.data for e in self.published if isinstance(e.data, kind)]


def _conforms(repo: InMemoryRepository) -> Repository:
    return repo  # mypy proves the fake implements the whole port
