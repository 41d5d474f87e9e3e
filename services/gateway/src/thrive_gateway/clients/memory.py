"""In-memory stand-ins for the three internal APIs.

Used by the gateway's unit tests and by `thrive-gateway serve --in-memory` for a demo
without the rest of the platform. It keeps the services' visible rules (allowance,
self-thanks, private visibility) so the gateway's mapping of them can be tested.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from thrive_gateway.auth.principal import Principal
from thrive_gateway.clients.api import BoardQuery, Services
from thrive_gateway.clients.errors import ServiceError
from thrive_gateway.clients.models import (
    AskDTO,
    BoardDTO,
    FilterDTO,
    InboxItemDTO,
    MilestoneDTO,
    OfferDTO,
    Page,
    PersonDTO,
    PreferencesDTO,
    RankDTO,
    StandingDTO,
    ThanksDTO,
    ThemeCountDTO,
)

T = TypeVar("T")


def _page(items: list[T], *, first: int, after: str | None) -> Page[T]:
    start = int(after) if after and after.isdigit() else 0
    chunk = items[start : start + first]
    more = start + first < len(items)
    return Page[T](items=chunk, next_cursor=str(start + first) if more else None)


class InMemoryPlatform:
    """Recognition, leaderboard and notifier in one object, with a call log."""

    def __init__(self, *, allowance: int = 5, clock: Callable[[], datetime] | None = None) -> None:
        self.allowance = allowance
        self._clock = clock or (lambda: datetime.now(UTC))
        self._ids = itertools.count(1)
        self.people: dict[str, PersonDTO] = {}
        self.thanks: list[ThanksDTO] = []
        self.asks: dict[str, AskDTO] = {}
        self.offers: dict[str, OfferDTO] = {}
        self.milestones: list[MilestoneDTO] = []
        self.opted_out: set[str] = set()
        self.preferences: dict[str, PreferencesDTO] = {}
        self.filters: dict[tuple[str, str], list[FilterDTO]] = {}
        self.inboxes: dict[str, list[InboxItemDTO]] = {}
        self.calls: Counter[str] = Counter()

    def services(self) -> Services:
        """This platform behind the three API protocols."""
        return Services(recognition=self, leaderboard=self, notifier=self)

    def add_person(self, person_id: str, name: str, team: str) -> None:
        """Mirror a directory person."""
        self.people[person_id] = PersonDTO(id=person_id, name=name, team=team)

    def _next(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def _visible(self, actor: Principal, thanks: ThanksDTO) -> bool:
        return (
            thanks.visibility == "public"
            or actor.is_admin
            or actor.person_id in (thanks.giver, thanks.helper)
        )

    def _counts(self, person_id: str) -> dict[str, int]:
        received = [t for t in self.thanks if t.helper == person_id]
        given = [t for t in self.thanks if t.giver == person_id]
        return {
            "thanks_received": len(received),
            "thanks_given": len(given),
            "people_helped": len({t.giver for t in received}),
        }

    def _person(self, person_id: str) -> PersonDTO | None:
        person = self.people.get(person_id)
        if person is None:
            return None
        mine = [m for m in self.milestones if m.person == person_id]
        return person.model_copy(update={"counts": self._counts(person_id), "milestones": mine})

    # recognition ---------------------------------------------------------------------------

    async def create_ask(
        self,
        actor: Principal,
        *,
        title: str,
        details: str,
        themes: list[str],
        size: str,
        expires_at: datetime | None,
    ) -> AskDTO:
        self.calls["create_ask"] += 1
        now = self._clock()
        ask = AskDTO(
            id=self._next("ask"),
            asker=actor.person_id or "",
            title=title,
            details=details,
            themes=themes,
            size=size,
            expires_at=expires_at or now + timedelta(days=7),
            created_at=now,
        )
        self.asks[ask.id] = ask
        return ask

    async def change_ask(self, actor: Principal, *, ask_id: str, action: str) -> AskDTO:
        self.calls["change_ask"] += 1
        ask = self.asks.get(ask_id)
        if ask is None:
            raise ServiceError(status=404, code="not_found", message="No such ask.", field="id")
        if ask.asker != actor.person_id:
            raise ServiceError(status=403, code="forbidden", message="Only the asker can do that.")
        status = {"withdraw": "withdrawn", "resolve": "resolved"}[action]
        ask = ask.model_copy(update={"status": status})
        self.asks[ask_id] = ask
        return ask

    async def accept_offer(self, actor: Principal, *, ask_id: str, offer_id: str) -> AskDTO:
        self.calls["accept_offer"] += 1
        ask = self.asks.get(ask_id)
        if ask is None or offer_id not in self.offers:
            raise ServiceError(status=404, code="not_found", message="No such ask or offer.")
        ask = ask.model_copy(update={"status": "accepted"})
        self.asks[ask_id] = ask
        return ask

    async def create_offer(
        self, actor: Principal, *, ask_id: str | None, themes: list[str], message: str
    ) -> OfferDTO:
        self.calls["create_offer"] += 1
        if ask_id is not None and ask_id not in self.asks:
            raise ServiceError(status=404, code="not_found", message="No such ask.", field="ask_id")
        offer = OfferDTO(
            id=self._next("offer"),
            helper=actor.person_id or "",
            ask_id=ask_id,
            themes=themes,
            message=message,
            created_at=self._clock(),
        )
        self.offers[offer.id] = offer
        return offer

    async def give_thanks(
        self,
        actor: Principal,
        *,
        helper: str,
        message: str,
        themes: list[str],
        ask_id: str | None,
        offer_id: str | None,
        visibility: str,
    ) -> ThanksDTO:
        self.calls["give_thanks"] += 1
        giver = actor.person_id or ""
        if helper == giver:
            raise ServiceError(
                status=422, code="self_thanks", message="You cannot thank yourself.", field="helper"
            )
        if helper not in self.people:
            raise ServiceError(
                status=422, code="unknown_person", message="Nobody has that id.", field="helper"
            )
        given = sum(1 for t in self.thanks if t.giver == giver)
        if given >= self.allowance:
            resets = self._clock() + timedelta(days=7)
            raise ServiceError(
                status=422,
                code="allowance_exceeded",
                message="You have used this week's thanks.",
                details={
                    "limit": self.allowance,
                    "period": "week",
                    "resets_at": resets.isoformat(),
                },
            )
        thanks = ThanksDTO(
            id=self._next("thanks"),
            giver=giver,
            helper=helper,
            giver_team=self.people[giver].team if giver in self.people else None,
            helper_team=self.people[helper].team,
            message=message,
            themes=themes,
            ask_id=ask_id,
            offer_id=offer_id,
            visibility=visibility,
            given_at=self._clock(),
        )
        self.thanks.insert(0, thanks)
        return thanks

    async def get_person(self, actor: Principal, person_id: str) -> PersonDTO | None:
        self.calls["get_person"] += 1
        return self._person(person_id)

    async def people_batch(self, actor: Principal, ids: list[str]) -> list[PersonDTO]:
        self.calls["people_batch"] += 1
        return [p for p in (self._person(i) for i in ids) if p is not None]

    async def asks_batch(self, actor: Principal, ids: list[str]) -> list[AskDTO]:
        self.calls["asks_batch"] += 1
        return [self.asks[i] for i in ids if i in self.asks]

    async def thanks_batch(self, actor: Principal, ids: list[str]) -> list[ThanksDTO]:
        self.calls["thanks_batch"] += 1
        wanted = set(ids)
        return [t for t in self.thanks if t.id in wanted and self._visible(actor, t)]

    async def recent_thanks(
        self,
        actor: Principal,
        *,
        team: str | None,
        theme: str | None,
        first: int,
        after: str | None,
    ) -> Page[ThanksDTO]:
        self.calls["recent_thanks"] += 1
        items = [
            t
            for t in self.thanks
            if t.visibility == "public"
            and (team is None or team in (t.giver_team, t.helper_team))
            and (theme is None or theme in t.themes)
        ]
        return _page(items, first=first, after=after)

    async def person_thanks(
        self,
        actor: Principal,
        *,
        person_id: str,
        direction: str,
        first: int,
        after: str | None,
    ) -> Page[ThanksDTO]:
        self.calls["person_thanks"] += 1
        side = "helper" if direction == "received" else "giver"
        items = [
            t for t in self.thanks if getattr(t, side) == person_id and self._visible(actor, t)
        ]
        return _page(items, first=first, after=after)

    async def open_asks(
        self,
        actor: Principal,
        *,
        theme: str | None,
        size: str | None,
        first: int,
        after: str | None,
    ) -> Page[AskDTO]:
        self.calls["open_asks"] += 1
        items = [
            a
            for a in reversed(self.asks.values())
            if a.status == "open"
            and (theme is None or theme in a.themes)
            and (size is None or a.size == size)
        ]
        return _page(items, first=first, after=after)

    async def recent_milestones(
        self,
        actor: Principal,
        *,
        team: str | None,
        theme: str | None,
        first: int,
        after: str | None,
    ) -> Page[MilestoneDTO]:
        self.calls["recent_milestones"] += 1
        items = [
            m
            for m in self.milestones
            if (team is None or m.team == team) and (theme is None or theme in m.themes)
        ]
        return _page(items, first=first, after=after)

    async def themes(self, actor: Principal) -> list[ThemeCountDTO]:
        self.calls["themes"] += 1
        counts = Counter(theme for t in self.thanks for theme in t.themes)
        return [ThemeCountDTO(theme=k, count=v) for k, v in counts.most_common()]

    # leaderboard ---------------------------------------------------------------------------

    def _standings(self) -> list[StandingDTO]:
        scores = Counter(
            t.helper for t in self.thanks if t.helper and t.helper not in self.opted_out
        )
        ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [
            StandingDTO(person=p, rank=i + 1, score=float(s)) for i, (p, s) in enumerate(ordered)
        ]

    async def top(self, actor: Principal, *, board: BoardQuery, first: int) -> BoardDTO:
        self.calls["top"] += 1
        return BoardDTO(period="all", items=self._standings()[:first])

    async def rank(self, actor: Principal, *, person_id: str, board: BoardQuery) -> RankDTO:
        self.calls["rank"] += 1
        if person_id in self.opted_out:
            return RankDTO(person=person_id, opted_out=True)
        for standing in self._standings():
            if standing.person == person_id:
                return RankDTO(person=person_id, rank=standing.rank, score=standing.score)
        return RankDTO(person=person_id)

    async def get_opt_out(self, actor: Principal, *, person_id: str) -> bool:
        self.calls["get_opt_out"] += 1
        return person_id in self.opted_out

    async def set_opt_out(self, actor: Principal, *, person_id: str, opted_out: bool) -> bool:
        self.calls["set_opt_out"] += 1
        (self.opted_out.add if opted_out else self.opted_out.discard)(person_id)
        return opted_out

    # notifier ------------------------------------------------------------------------------

    async def get_preferences(self, actor: Principal, *, person_id: str) -> PreferencesDTO:
        self.calls["get_preferences"] += 1
        return self.preferences.get(person_id, PreferencesDTO())

    async def set_preferences(
        self, actor: Principal, *, person_id: str, preferences: PreferencesDTO
    ) -> PreferencesDTO:
        self.calls["set_preferences"] += 1
        self.preferences[person_id] = preferences
        return preferences

    async def add_filter(
        self, actor: Principal, *, person_id: str, filter_kind: str, kind: str, target: str
    ) -> FilterDTO:
        self.calls[f"add_{filter_kind}"] += 1
        entry = FilterDTO(kind=kind, target=target)
        bucket = self.filters.setdefault((person_id, filter_kind), [])
        if entry not in bucket:
            bucket.append(entry)
        return entry

    async def remove_filter(
        self, actor: Principal, *, person_id: str, filter_kind: str, kind: str, target: str
    ) -> None:
        self.calls[f"remove_{filter_kind}"] += 1
        bucket = self.filters.get((person_id, filter_kind), [])
        self.filters[(person_id, filter_kind)] = [
            f for f in bucket if (f.kind, f.target) != (kind, target)
        ]

    async def list_filters(
        self, actor: Principal, *, person_id: str, filter_kind: str
    ) -> list[FilterDTO]:
        self.calls[f"list_{filter_kind}"] += 1
        return list(self.filters.get((person_id, filter_kind), []))

    async def inbox(
        self,
        actor: Principal,
        *,
        person_id: str,
        unread: bool | None,
        first: int,
        after: str | None,
    ) -> Page[InboxItemDTO]:
        self.calls["inbox"] += 1
        items = [i for i in self.inboxes.get(person_id, []) if unread is None or i.read != unread]
        return _page(items, first=first, after=after)

    async def mark_read(self, actor: Principal, *, person_id: str, ids: list[str]) -> int:
        self.calls["mark_read"] += 1
        wanted = set(ids)
        box = self.inboxes.get(person_id, [])
        marked = sum(1 for i in box if i.id in wanted and not i.read)
        self.inboxes[person_id] = [
            i.model_copy(update={"read_at": self._clock()}) if i.id in wanted else i for i in box
        ]
        return marked
