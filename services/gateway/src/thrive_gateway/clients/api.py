"""The gateway's view of the other services: one protocol per internal API.

Resolvers only see these protocols; the HTTP adapter and the in-memory fake both
implement them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from thrive_gateway.auth.principal import Principal
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
    ThanksDTO,
    ThemeCountDTO,
)


@dataclass(frozen=True, slots=True)
class BoardQuery:
    """Which leaderboard: metric, window, scope (+ id) and optional period."""

    metric: str = "service"
    window: str = "month"
    scope: str = "company"
    scope_id: str | None = None
    period: str | None = None

    def key(self) -> str:
        """The board key as used by LeaderboardChanged events (metric:window:scope:id)."""
        return ":".join([self.metric, self.window, self.scope, self.scope_id or "*"])


class RecognitionApi(Protocol):
    async def create_ask(
        self,
        actor: Principal,
        *,
        title: str,
        details: str,
        themes: list[str],
        size: str,
        expires_at: datetime | None,
    ) -> AskDTO: ...

    async def change_ask(self, actor: Principal, *, ask_id: str, action: str) -> AskDTO: ...

    async def accept_offer(self, actor: Principal, *, ask_id: str, offer_id: str) -> AskDTO: ...

    async def create_offer(
        self, actor: Principal, *, ask_id: str | None, themes: list[str], message: str
    ) -> OfferDTO: ...

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
    ) -> ThanksDTO: ...

    async def get_person(self, actor: Principal, person_id: str) -> PersonDTO | None: ...

    async def people_batch(self, actor: Principal, ids: list[str]) -> list[PersonDTO]: ...

    async def asks_batch(self, actor: Principal, ids: list[str]) -> list[AskDTO]: ...

    async def thanks_batch(self, actor: Principal, ids: list[str]) -> list[ThanksDTO]: ...

    async def recent_thanks(
        self,
        actor: Principal,
        *,
        team: str | None,
        theme: str | None,
        first: int,
        after: str | None,
    ) -> Page[ThanksDTO]: ...

    async def person_thanks(
        self,
        actor: Principal,
        *,
        person_id: str,
        direction: str,
        first: int,
        after: str | None,
    ) -> Page[ThanksDTO]: ...

    async def open_asks(
        self,
        actor: Principal,
        *,
        theme: str | None,
        size: str | None,
        first: int,
        after: str | None,
    ) -> Page[AskDTO]: ...

    async def recent_milestones(
        self,
        actor: Principal,
        *,
        team: str | None,
        theme: str | None,
        first: int,
        after: str | None,
    ) -> Page[MilestoneDTO]: ...

    async def themes(self, actor: Principal) -> list[ThemeCountDTO]: ...


class LeaderboardApi(Protocol):
    async def top(self, actor: Principal, *, board: BoardQuery, first: int) -> BoardDTO: ...

    async def rank(self, actor: Principal, *, person_id: str, board: BoardQuery) -> RankDTO: ...

    async def get_opt_out(self, actor: Principal, *, person_id: str) -> bool: ...

    async def set_opt_out(self, actor: Principal, *, person_id: str, opted_out: bool) -> bool: ...


class NotifierApi(Protocol):
    async def get_preferences(self, actor: Principal, *, person_id: str) -> PreferencesDTO: ...

    async def set_preferences(
        self, actor: Principal, *, person_id: str, preferences: PreferencesDTO
    ) -> PreferencesDTO: ...

    async def add_filter(
        self, actor: Principal, *, person_id: str, filter_kind: str, kind: str, target: str
    ) -> FilterDTO: ...

    async def remove_filter(
        self, actor: Principal, *, person_id: str, filter_kind: str, kind: str, target: str
    ) -> None: ...

    async def list_filters(
        self, actor: Principal, *, person_id: str, filter_kind: str
    ) -> list[FilterDTO]: ...

    async def inbox(
        self,
        actor: Principal,
        *,
        person_id: str,
        unread: bool | None,
        first: int,
        after: str | None,
    ) -> Page[InboxItemDTO]: ...

    async def mark_read(self, actor: Principal, *, person_id: str, ids: list[str]) -> int: ...


@dataclass(frozen=True, slots=True)
class Services:
    """The three internal APIs the gateway composes."""

    recognition: RecognitionApi
    leaderboard: LeaderboardApi
    notifier: NotifierApi
