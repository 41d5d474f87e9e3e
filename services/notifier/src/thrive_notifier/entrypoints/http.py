"""Internal JSON API under /internal/v1/: preferences, follows, mutes, inbox, team channels.

Every person-scoped route is answered only for the acting person (X-Thrive-Actor): mutes in
particular are never visible to anyone but the muter.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from thrive_shared.http import ApiError
from thrive_shared.http import error_response as shared_error_response

from thrive_notifier.adapters.egress import DestinationRefused, EgressPolicy
from thrive_notifier.domain.model import (
    Channel,
    DigestFrequency,
    Follow,
    FollowKind,
    Mute,
    MuteKind,
    Preferences,
)
from thrive_notifier.service_layer.ports import InboxItem, Page, UnitOfWork
from thrive_notifier.service_layer.preferences import CommandRejected, make_follow, make_mute

MAX_BODY = 64 * 1024
MAX_PAGE = 100
_PERSON = re.compile(r"^[A-Za-z0-9._@:-]{1,100}$")

Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(err: ApiError) -> Response:
    resp: Response = shared_error_response(
        err.status, err.code, err.message, field=err.field, details=err.details
    )
    return resp


def _validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__") or None
    return ApiError(
        422,
        "validation",
        first.get("msg", "invalid value"),
        field=loc,
        details={
            "errors": [
                {"field": ".".join(map(str, e.get("loc", ()))), "message": e.get("msg")}
                for e in exc.errors()[:10]
            ]
        },
    )


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: time
    end: time


class PreferencesBody(BaseModel):
    """The preferences document, as read and written through the API."""

    model_config = ConfigDict(extra="forbid")

    daily_budget: int = Field(default=10, ge=0, le=1000)
    quiet_hours: QuietHours | None = None
    timezone: str | None = Field(default=None, max_length=64)
    channels: list[Channel] = Field(default_factory=lambda: [Channel.IN_APP], max_length=3)
    digest_frequency: DigestFrequency = DigestFrequency.DAILY
    digest_hour: int = Field(default=8, ge=0, le=23)
    webhook_url: str | None = Field(default=None, max_length=2000)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    def to_domain(self) -> Preferences:
        return Preferences(
            daily_budget=self.daily_budget,
            quiet_start=self.quiet_hours.start if self.quiet_hours else None,
            quiet_end=self.quiet_hours.end if self.quiet_hours else None,
            timezone=self.timezone,
            channels=frozenset(self.channels) | {Channel.IN_APP},
            digest_frequency=self.digest_frequency,
            digest_hour=self.digest_hour,
            webhook_url=self.webhook_url,
        )

    @classmethod
    def from_domain(cls, p: Preferences) -> PreferencesBody:
        quiet = (
            QuietHours(start=p.quiet_start, end=p.quiet_end)
            if p.quiet_start is not None and p.quiet_end is not None
            else None
        )
        return cls(
            daily_budget=p.daily_budget,
            quiet_hours=quiet,
            timezone=p.timezone,
            channels=sorted(p.channels),
            digest_frequency=p.digest_frequency,
            digest_hour=p.digest_hour,
            webhook_url=p.webhook_url,
        )


class FollowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FollowKind
    target: str = Field(min_length=1, max_length=100)


class MuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: MuteKind
    target: str = Field(min_length=1, max_length=100)


class ReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(min_length=1, max_length=500)


class TeamChannelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhook_url: str = Field(min_length=1, max_length=2000)


async def _json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, "too_large", f"request body is larger than {MAX_BODY} bytes")
    try:
        return orjson.loads(body or b"null")
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"request body is not JSON: {exc.msg}") from exc


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from exc


def _person(request: Request) -> str:
    """The path's person, who must be the acting person."""
    person: str = request.path_params["person"]
    if not _PERSON.match(person):
        raise ApiError(422, "validation", "not a valid person id", field="id")
    actor = request.headers.get("x-thrive-actor")
    if not actor:
        raise ApiError(401, "unauthenticated", "X-Thrive-Actor header is required")
    if actor != person:
        # Same answer whatever the reason: nothing about another person's filters leaks.
        raise ApiError(403, "forbidden", "you can only see and change your own settings")
    return person


def _require_admin(request: Request) -> None:
    if not request.headers.get("x-thrive-actor"):
        raise ApiError(401, "unauthenticated", "X-Thrive-Actor header is required")
    roles = {r.strip() for r in request.headers.get("x-thrive-roles", "").split(",")}
    if "admin" not in roles:
        raise ApiError(403, "forbidden", "this needs the admin role")


def _first(request: Request) -> int:
    raw = request.query_params.get("first", "20")
    try:
        first = int(raw)
    except ValueError as exc:
        raise ApiError(422, "validation", "first must be a number", field="first") from exc
    if not 1 <= first <= MAX_PAGE:
        raise ApiError(422, "validation", f"first must be between 1 and {MAX_PAGE}", field="first")
    return first


def _page_json(page: Page[Any], render: Callable[[Any], Any]) -> dict[str, Any]:
    return {"items": [render(i) for i in page.items], "next_cursor": page.next_cursor}


def _follow_json(f: Follow | Mute) -> dict[str, str]:
    return {"kind": f.kind.value, "target": f.target}


def _inbox_json(i: InboxItem) -> dict[str, Any]:
    return {
        "id": i.id,
        "kind": i.kind,
        "about": i.about,
        "subject": i.subject,
        "title": i.title,
        "body": i.body,
        "themes": list(i.themes),
        "quiet": i.quiet,
        "sections": i.payload.get("sections", []),
        "created_at": i.created_at.isoformat(),
        "read_at": i.read_at.isoformat() if i.read_at else None,
    }


def _bad_cursor() -> ApiError:
    return ApiError(422, "validation", "after is not a cursor from this API", field="after")


class NotifierApi:
    """Route handlers bound to a unit of work and the SSRF policy."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        policy: EgressPolicy,
        defaults: Preferences | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.uow, self.policy, self.clock = uow, policy, clock
        self.defaults = defaults or Preferences()

    def routes(self) -> list[BaseRoute]:
        p = "/internal/v1/people/{person}"
        return [
            Route(f"{p}/preferences", self._wrap(self.get_preferences), methods=["GET"]),
            Route(f"{p}/preferences", self._wrap(self.put_preferences), methods=["PUT"]),
            Route(f"{p}/follows", self._wrap(self.list_follows), methods=["GET"]),
            Route(f"{p}/follows", self._wrap(self.add_follow), methods=["POST"]),
            Route(f"{p}/follows", self._wrap(self.remove_follow), methods=["DELETE"]),
            Route(f"{p}/mutes", self._wrap(self.list_mutes), methods=["GET"]),
            Route(f"{p}/mutes", self._wrap(self.add_mute), methods=["POST"]),
            Route(f"{p}/mutes", self._wrap(self.remove_mute), methods=["DELETE"]),
            Route(f"{p}/inbox", self._wrap(self.inbox), methods=["GET"]),
            Route(f"{p}/inbox/read", self._wrap(self.mark_read), methods=["POST"]),
            Route(
                "/internal/v1/teams/{team}/channel",
                self._wrap(self.put_team_channel),
                methods=["PUT"],
            ),
            Route(
                "/internal/v1/teams/{team}/channel",
                self._wrap(self.delete_team_channel),
                methods=["DELETE"],
            ),
        ]

    @staticmethod
    def _wrap(fn: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except ApiError as err:
                return error_response(err)
            except CommandRejected as err:
                return error_response(ApiError(422, err.code, err.message, field=err.field))

        endpoint.__name__ = fn.__name__
        return endpoint

    # preferences ------------------------------------------------------------------------
    async def get_preferences(self, request: Request) -> Response:
        person = _person(request)
        async with self.uow() as repo:
            prefs = await repo.get_preferences(person) or self.defaults
        return json_response(PreferencesBody.from_domain(prefs).model_dump(mode="json"))

    async def put_preferences(self, request: Request) -> Response:
        person = _person(request)
        body = _parse(PreferencesBody, await _json(request))
        if body.webhook_url is not None:
            try:
                self.policy.check_literal(body.webhook_url)
            except DestinationRefused as exc:
                raise ApiError(422, "refused_destination", str(exc), field="webhook_url") from exc
        if Channel.WEBHOOK in body.channels and not body.webhook_url:
            raise ApiError(
                422, "validation", "the webhook channel needs a webhook_url", field="webhook_url"
            )
        prefs = body.to_domain()
        async with self.uow() as repo:
            await repo.put_preferences(person, prefs)
        return json_response(PreferencesBody.from_domain(prefs).model_dump(mode="json"))

    # follows and mutes ------------------------------------------------------------------
    async def list_follows(self, request: Request) -> Response:
        person, first = _person(request), _first(request)
        try:
            async with self.uow() as repo:
                page = await repo.list_follows(
                    person, first=first, after=request.query_params.get("after")
                )
        except ValueError as exc:
            raise _bad_cursor() from exc
        return json_response(_page_json(page, _follow_json))

    async def add_follow(self, request: Request) -> Response:
        person = _person(request)
        body = _parse(FollowBody, await _json(request))
        follow = make_follow(person, body.kind, body.target)
        async with self.uow() as repo:
            created = await repo.add_follow(person, follow)
        return json_response(_follow_json(follow), 201 if created else 200)

    async def remove_follow(self, request: Request) -> Response:
        person = _person(request)
        body = _parse(FollowBody, dict(request.query_params))
        follow = make_follow(person, body.kind, body.target)
        async with self.uow() as repo:
            removed = await repo.remove_follow(person, follow)
        if not removed:
            raise ApiError(404, "not_found", "you do not follow that")
        return Response(status_code=204)

    async def list_mutes(self, request: Request) -> Response:
        person, first = _person(request), _first(request)
        try:
            async with self.uow() as repo:
                page = await repo.list_mutes(
                    person, first=first, after=request.query_params.get("after")
                )
        except ValueError as exc:
            raise _bad_cursor() from exc
        return json_response(_page_json(page, _follow_json))

    async def add_mute(self, request: Request) -> Response:
        person = _person(request)
        body = _parse(MuteBody, await _json(request))
        mute = make_mute(person, body.kind, body.target)
        async with self.uow() as repo:
            created = await repo.add_mute(person, mute)
        return json_response(_follow_json(mute), 201 if created else 200)

    async def remove_mute(self, request: Request) -> Response:
        person = _person(request)
        body = _parse(MuteBody, dict(request.query_params))
        mute = make_mute(person, body.kind, body.target)
        async with self.uow() as repo:
            removed = await repo.remove_mute(person, mute)
        if not removed:
            raise ApiError(404, "not_found", "you have not muted that")
        return Response(status_code=204)

    # inbox ------------------------------------------------------------------------------
    async def inbox(self, request: Request) -> Response:
        person, first = _person(request), _first(request)
        raw = request.query_params.get("unread")
        unread: bool | None
        if raw in (None, ""):
            unread = None
        elif raw.lower() in ("true", "1"):
            unread = True
        elif raw.lower() in ("false", "0"):
            unread = False
        else:
            raise ApiError(422, "validation", "unread must be true or false", field="unread")
        try:
            async with self.uow() as repo:
                page = await repo.inbox(
                    person, unread=unread, first=first, after=request.query_params.get("after")
                )
        except ValueError as exc:
            raise _bad_cursor() from exc
        return json_response(_page_json(page, _inbox_json))

    async def mark_read(self, request: Request) -> Response:
        person = _person(request)
        body = _parse(ReadBody, await _json(request))
        async with self.uow() as repo:
            n = await repo.mark_read(person, body.ids, self.clock())
        return json_response({"updated": n})

    # team channels (admin) --------------------------------------------------------------
    async def put_team_channel(self, request: Request) -> Response:
        _require_admin(request)
        team = request.path_params["team"]
        body = _parse(TeamChannelBody, await _json(request))
        try:
            self.policy.check_literal(body.webhook_url)
        except DestinationRefused as exc:
            raise ApiError(422, "refused_destination", str(exc), field="webhook_url") from exc
        async with self.uow() as repo:
            await repo.set_team_channel(team, body.webhook_url)
        return json_response({"team": team, "webhook_url": body.webhook_url})

    async def delete_team_channel(self, request: Request) -> Response:
        _require_admin(request)
        async with self.uow() as repo:
            await repo.set_team_channel(request.path_params["team"], None)
        return Response(status_code=204)
