"""HTTP adapters for the services' internal JSON APIs (under /internal/v1/)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from thrive_shared.observability import inject_headers

from thrive_gateway.auth.principal import Principal
from thrive_gateway.clients.api import BoardQuery, Services
from thrive_gateway.clients.errors import ServiceError, ServiceUnavailable
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

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
PREFIX = "/internal/v1"


class _Client:
    """One service: actor headers, error mapping, and response parsing."""

    service = "service"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._http = client

    async def _call(
        self,
        method: str,
        path: str,
        actor: Principal,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        # W3C traceparent: the operation's span continues into the service.
        headers = inject_headers()
        if actor.person_id is not None:
            headers["X-Thrive-Actor"] = actor.person_id
            headers["X-Thrive-Roles"] = actor.role_header()
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(
                method, PREFIX + path, json=json, params=clean, headers=headers
            )
        except httpx.HTTPError as exc:
            log.warning("%s %s %s failed: %s", self.service, method, path, exc)
            raise ServiceUnavailable(self.service) from exc
        if response.status_code >= 500:
            log.warning("%s %s %s answered %d", self.service, method, path, response.status_code)
            raise ServiceUnavailable(self.service)
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError as exc:
            raise ServiceUnavailable(self.service) from exc
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict):
                error = {}
            raise ServiceError(
                status=response.status_code,
                code=str(error.get("code") or "error"),
                message=str(error.get("message") or "the request was refused"),
                field=error.get("field"),
                details=error.get("details") if isinstance(error.get("details"), dict) else {},
            )
        return body

    def _parse(self, model: type[M], body: Any) -> M:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            log.error("%s answered an unexpected %s: %s", self.service, model.__name__, exc)
            raise ServiceUnavailable(self.service) from exc

    def _parse_list(self, model: type[M], body: Any) -> list[M]:
        items = body.get("items") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ServiceUnavailable(self.service)
        # Batch endpoints answer null where an id is unknown (or not visible to the actor).
        return [self._parse(model, item) for item in items if item is not None]

    def _page(self, model: type[M], body: Any) -> Page[M]:
        items = self._parse_list(model, body)
        cursor = body.get("next_cursor") if isinstance(body, dict) else None
        return Page[model](items=items, next_cursor=cursor)  # type: ignore[valid-type]


class HttpRecognition(_Client):
    service = "recognition"

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
        payload = {
            "asker": actor.person_id,
            "title": title,
            "details": details,
            "themes": themes,
            "size": size,
            "expires_at": expires_at.isoformat() if expires_at else None,
        }
        return self._parse(AskDTO, await self._call("POST", "/asks", actor, json=payload))

    async def change_ask(self, actor: Principal, *, ask_id: str, action: str) -> AskDTO:
        body = await self._call(
            "POST", f"/asks/{_seg(ask_id)}/{action}", actor, json={"person": actor.person_id}
        )
        return self._parse(AskDTO, body)

    async def accept_offer(self, actor: Principal, *, ask_id: str, offer_id: str) -> AskDTO:
        body = await self._call(
            "POST",
            f"/asks/{_seg(ask_id)}/accept",
            actor,
            json={"person": actor.person_id, "offer_id": offer_id},
        )
        return self._parse(AskDTO, body)

    async def create_offer(
        self, actor: Principal, *, ask_id: str | None, themes: list[str], message: str
    ) -> OfferDTO:
        payload = {
            "helper": actor.person_id,
            "ask_id": ask_id,
            "themes": themes,
            "message": message,
        }
        return self._parse(OfferDTO, await self._call("POST", "/offers", actor, json=payload))

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
        payload = {
            "giver": actor.person_id,
            "helper": helper,
            "message": message,
            "themes": themes,
            "ask_id": ask_id,
            "offer_id": offer_id,
            "visibility": visibility,
        }
        return self._parse(ThanksDTO, await self._call("POST", "/thanks", actor, json=payload))

    async def get_person(self, actor: Principal, person_id: str) -> PersonDTO | None:
        try:
            body = await self._call("GET", f"/people/{_seg(person_id)}", actor)
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise
        return self._parse(PersonDTO, body)

    async def people_batch(self, actor: Principal, ids: list[str]) -> list[PersonDTO]:
        body = await self._call("POST", "/people/batch", actor, json={"ids": ids})
        return self._parse_list(PersonDTO, body)

    async def asks_batch(self, actor: Principal, ids: list[str]) -> list[AskDTO]:
        body = await self._call("POST", "/asks/batch", actor, json={"ids": ids})
        return self._parse_list(AskDTO, body)

    async def thanks_batch(self, actor: Principal, ids: list[str]) -> list[ThanksDTO]:
        body = await self._call("POST", "/thanks/batch", actor, json={"ids": ids})
        return self._parse_list(ThanksDTO, body)

    async def recent_thanks(
        self,
        actor: Principal,
        *,
        team: str | None,
        theme: str | None,
        first: int,
        after: str | None,
    ) -> Page[ThanksDTO]:
        params = {"team": team, "theme": theme, "first": first, "after": after}
        return self._page(ThanksDTO, await self._call("GET", "/thanks", actor, params=params))

    async def person_thanks(
        self,
        actor: Principal,
        *,
        person_id: str,
        direction: str,
        first: int,
        after: str | None,
    ) -> Page[ThanksDTO]:
        params = {"direction": direction, "first": first, "after": after}
        body = await self._call("GET", f"/people/{_seg(person_id)}/thanks", actor, params=params)
        return self._page(ThanksDTO, body)

    async def open_asks(
        self,
        actor: Principal,
        *,
        theme: str | None,
        size: str | None,
        first: int,
        after: str | None,
    ) -> Page[AskDTO]:
        params = {"theme": theme, "size": size, "first": first, "after": after}
        return self._page(AskDTO, await self._call("GET", "/asks", actor, params=params))

    async def recent_milestones(
        self,
        actor: Principal,
        *,
        team: str | None,
        theme: str | None,
        first: int,
        after: str | None,
    ) -> Page[MilestoneDTO]:
        params = {"team": team, "theme": theme, "first": first, "after": after}
        body = await self._call("GET", "/milestones", actor, params=params)
        return self._page(MilestoneDTO, body)

    async def themes(self, actor: Principal) -> list[ThemeCountDTO]:
        return self._parse_list(ThemeCountDTO, await self._call("GET", "/themes", actor))


class HttpLeaderboard(_Client):
    service = "leaderboard"

    @staticmethod
    def _board_params(board: BoardQuery) -> dict[str, Any]:
        return {
            "metric": board.metric,
            "window": board.window,
            "scope": board.scope,
            "scope_id": board.scope_id,
            "period": board.period,
        }

    async def top(self, actor: Principal, *, board: BoardQuery, first: int) -> BoardDTO:
        params = {**self._board_params(board), "first": first}
        return self._parse(BoardDTO, await self._call("GET", "/boards/top", actor, params=params))

    async def rank(self, actor: Principal, *, person_id: str, board: BoardQuery) -> RankDTO:
        params = {**self._board_params(board), "person": person_id}
        return self._parse(RankDTO, await self._call("GET", "/boards/rank", actor, params=params))

    async def get_opt_out(self, actor: Principal, *, person_id: str) -> bool:
        body = await self._call("GET", f"/people/{_seg(person_id)}/opt-out", actor)
        return bool(isinstance(body, dict) and body.get("opted_out"))

    async def set_opt_out(self, actor: Principal, *, person_id: str, opted_out: bool) -> bool:
        body = await self._call(
            "PUT", f"/people/{_seg(person_id)}/opt-out", actor, json={"opted_out": opted_out}
        )
        return bool(isinstance(body, dict) and body.get("opted_out", opted_out))


class HttpNotifier(_Client):
    service = "notifier"

    async def get_preferences(self, actor: Principal, *, person_id: str) -> PreferencesDTO:
        body = await self._call("GET", f"/people/{_seg(person_id)}/preferences", actor)
        return self._parse(PreferencesDTO, body)

    async def set_preferences(
        self, actor: Principal, *, person_id: str, preferences: PreferencesDTO
    ) -> PreferencesDTO:
        body = await self._call(
            "PUT",
            f"/people/{_seg(person_id)}/preferences",
            actor,
            json=preferences.as_payload(),
        )
        return self._parse(PreferencesDTO, body)

    async def add_filter(
        self, actor: Principal, *, person_id: str, filter_kind: str, kind: str, target: str
    ) -> FilterDTO:
        body = await self._call(
            "POST",
            f"/people/{_seg(person_id)}/{_filters(filter_kind)}",
            actor,
            json={"kind": kind, "target": target},
        )
        return self._parse(FilterDTO, body or {"kind": kind, "target": target})

    async def remove_filter(
        self, actor: Principal, *, person_id: str, filter_kind: str, kind: str, target: str
    ) -> None:
        await self._call(
            "DELETE",
            f"/people/{_seg(person_id)}/{_filters(filter_kind)}",
            actor,
            params={"kind": kind, "target": target},
        )

    async def list_filters(
        self, actor: Principal, *, person_id: str, filter_kind: str
    ) -> list[FilterDTO]:
        body = await self._call("GET", f"/people/{_seg(person_id)}/{_filters(filter_kind)}", actor)
        return self._parse_list(FilterDTO, body)

    async def inbox(
        self,
        actor: Principal,
        *,
        person_id: str,
        unread: bool | None,
        first: int,
        after: str | None,
    ) -> Page[InboxItemDTO]:
        params: dict[str, Any] = {"first": first, "after": after}
        if unread is not None:
            params["unread"] = "true" if unread else "false"
        body = await self._call("GET", f"/people/{_seg(person_id)}/inbox", actor, params=params)
        return self._page(InboxItemDTO, body)

    async def mark_read(self, actor: Principal, *, person_id: str, ids: list[str]) -> int:
        # The notifier numbers inbox items; GraphQL IDs are strings.
        numeric = [int(i) for i in ids if i.isdigit()]
        body = await self._call(
            "POST", f"/people/{_seg(person_id)}/inbox/read", actor, json={"ids": numeric}
        )
        if isinstance(body, dict) and isinstance(body.get("updated"), int):
            return int(body["updated"])
        return len(ids)


def _seg(value: str) -> str:
    """One URL path segment: ids never smuggle a '/' or '..' into the path."""
    return quote(value, safe="")


def _filters(filter_kind: str) -> str:
    if filter_kind not in ("follows", "mutes"):
        raise ValueError(f"unknown filter kind {filter_kind!r}")
    return filter_kind


def http_services(
    *,
    recognition_url: str,
    leaderboard_url: str,
    notifier_url: str,
    timeout: float = 3.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[Services, list[httpx.AsyncClient]]:
    """Services backed by HTTP; returns the clients so the app can close them."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)

    def client(url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits, transport=transport)

    clients = [client(recognition_url), client(leaderboard_url), client(notifier_url)]
    services = Services(
        recognition=HttpRecognition(clients[0]),
        leaderboard=HttpLeaderboard(clients[1]),
        notifier=HttpNotifier(clients[2]),
    )
    return services, clients
