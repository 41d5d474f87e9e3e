"""Internal HTTP API (JSON under /internal/v1/): parse, call a handler or a view, answer."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from thrive_shared.contracts import AskSize
from thrive_shared.contracts.events import PersonId
from thrive_shared.http import ApiError, JSONResponse, read_json
from thrive_shared.service import runtime_of

from thrive_recognition.adapters.sql import SqlRepository
from thrive_recognition.adapters.unit_of_work import SqlUnitOfWork
from thrive_recognition.domain.commands import (
    AcceptOffer,
    CreateAsk,
    GiveThanks,
    MakeOffer,
    ResolveAsk,
    WithdrawAsk,
)
from thrive_recognition.domain.errors import DomainError
from thrive_recognition.domain.pagination import PageRequest
from thrive_recognition.entrypoints.metrics import count_milestones
from thrive_recognition.service_layer import handlers, views
from thrive_recognition.service_layer.handlers import Policies

PREFIX = "/internal/v1"
T = TypeVar("T")
# A deadlock or serialisation failure between two commands is nobody's fault: retry.
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
THEMES_TTL_S = 10.0


class PersonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: PersonId


class AcceptBody(PersonBody):
    offer_id: str = Field(min_length=1, max_length=100)


class IdsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(max_length=500)


def _json(content: Any, status_code: int = 200) -> Response:
    response: Response = JSONResponse(content, status_code=status_code)
    return response


def _api_error(err: DomainError) -> ApiError:
    return ApiError(err.status, err.code, err.message, field=err.field, details=err.details)


def _policies(request: Request) -> Policies:
    policies: Policies = runtime_of(request).state["policies"]
    return policies


def _actor(request: Request) -> tuple[str | None, bool]:
    actor = request.headers.get("x-thrive-actor") or None
    roles = {r.strip() for r in request.headers.get("x-thrive-roles", "").split(",")}
    return actor, "admin" in roles


def _acting_as(request: Request, person: str, field: str) -> None:
    """The gateway names the signed-in person; nobody acts in someone else's name."""
    actor, admin = _actor(request)
    if actor is not None and actor != person and not admin:
        raise ApiError(403, "forbidden", f"You cannot act as {person!r}.", field=field, details={})


async def _command(request: Request, run: Callable[[SqlUnitOfWork], Awaitable[T]]) -> T:
    pool = runtime_of(request).pool
    for attempt in range(3):
        try:
            async with pool.acquire() as conn, conn.transaction():
                uow = SqlUnitOfWork(conn)
                result = await run(uow)
                await uow.flush()
        except DomainError as err:
            raise _api_error(err) from err
        except RETRYABLE:
            if attempt == 2:
                raise
            continue
        count_milestones(uow.published)
        return result
    raise AssertionError("unreachable")


async def _query(request: Request, run: Callable[[SqlRepository], Awaitable[T]]) -> T:
    async with runtime_of(request).pool.acquire() as conn:
        try:
            return await run(SqlRepository(conn))
        except DomainError as err:
            raise _api_error(err) from err


def _page(request: Request) -> PageRequest:
    try:
        return PageRequest.parse(
            request.query_params.get("first"), request.query_params.get("after")
        )
    except DomainError as err:
        raise _api_error(err) from err


def _theme(request: Request) -> str | None:
    raw = request.query_params.get("theme")
    return raw.strip().lstrip("#").lower() or None if raw else None


def _now() -> Any:
    return handlers.utcnow()


# --- commands ------------------------------------------------------------------------


async def create_ask(request: Request) -> Response:
    cmd = await read_json(request, CreateAsk)
    _acting_as(request, cmd.asker, "asker")
    p = _policies(request)
    ask = await _command(request, lambda uow: handlers.create_ask(uow, cmd, policies=p))
    return _json(views.ask_json(ask), status_code=201)


async def withdraw_ask(request: Request) -> Response:
    body = await read_json(request, PersonBody)
    _acting_as(request, body.person, "person")
    cmd = WithdrawAsk(ask_id=request.path_params["id"], person=body.person)
    p = _policies(request)
    ask = await _command(request, lambda uow: handlers.withdraw_ask(uow, cmd, policies=p))
    return _json(views.ask_json(ask))


async def resolve_ask(request: Request) -> Response:
    body = await read_json(request, PersonBody)
    _acting_as(request, body.person, "person")
    cmd = ResolveAsk(ask_id=request.path_params["id"], person=body.person)
    p = _policies(request)
    ask = await _command(request, lambda uow: handlers.resolve_ask(uow, cmd, policies=p))
    return _json(views.ask_json(ask))


async def accept_offer(request: Request) -> Response:
    body = await read_json(request, AcceptBody)
    _acting_as(request, body.person, "person")
    cmd = AcceptOffer(ask_id=request.path_params["id"], person=body.person, offer_id=body.offer_id)
    p = _policies(request)
    ask = await _command(request, lambda uow: handlers.accept_offer(uow, cmd, policies=p))
    return _json(views.ask_json(ask))


async def make_offer(request: Request) -> Response:
    cmd = await read_json(request, MakeOffer)
    _acting_as(request, cmd.helper, "helper")
    p = _policies(request)
    offer = await _command(request, lambda uow: handlers.make_offer(uow, cmd, policies=p))
    return _json(views.offer_json(offer), status_code=201)


async def give_thanks(request: Request) -> Response:
    cmd = await read_json(request, GiveThanks)
    _acting_as(request, cmd.giver, "giver")
    p = _policies(request)
    thanks = await _command(request, lambda uow: handlers.give_thanks(uow, cmd, policies=p))
    return _json(views.thanks_json(thanks), status_code=201)


# --- queries -------------------------------------------------------------------------


async def person(request: Request) -> Response:
    pid = request.path_params["id"]
    return _json(await _query(request, lambda r: views.profile(r, pid, now=_now())))


async def people_batch(request: Request) -> Response:
    body = await read_json(request, IdsBody)
    items = await _query(request, lambda r: views.people_batch(r, body.ids, now=_now()))
    return _json({"items": items})


async def asks_batch(request: Request) -> Response:
    body = await read_json(request, IdsBody)
    return _json({"items": await _query(request, lambda r: views.asks_batch(r, body.ids))})


async def thanks_batch(request: Request) -> Response:
    body = await read_json(request, IdsBody)
    actor, admin = _actor(request)
    items = await _query(
        request, lambda r: views.thanks_batch(r, body.ids, viewer=actor, admin=admin)
    )
    return _json({"items": items})


async def recent_thanks(request: Request) -> Response:
    page, theme = _page(request), _theme(request)
    team = request.query_params.get("team") or None
    return _json(
        await _query(request, lambda r: views.recent_thanks(r, team=team, theme=theme, page=page))
    )


async def person_thanks(request: Request) -> Response:
    direction = request.query_params.get("direction", "received")
    if direction not in ("received", "given"):
        raise ApiError(
            422, "validation", "direction must be 'received' or 'given'.", field="direction"
        )
    page = _page(request)
    actor, admin = _actor(request)
    pid = request.path_params["id"]
    return _json(
        await _query(
            request,
            lambda r: views.person_thanks(
                r,
                person=pid,
                direction="received" if direction == "received" else "given",
                viewer=actor,
                admin=admin,
                page=page,
            ),
        )
    )


async def open_asks(request: Request) -> Response:
    page, theme = _page(request), _theme(request)
    raw_size = request.query_params.get("size") or None
    try:
        size = AskSize(raw_size) if raw_size else None
    except ValueError as exc:
        raise ApiError(
            422, "validation", "size must be one of quick, chat, session.", field="size"
        ) from exc
    return _json(
        await _query(request, lambda r: views.open_asks(r, theme=theme, size=size, page=page))
    )


async def get_ask(request: Request) -> Response:
    ask_id = request.path_params["id"]
    [item] = await _query(request, lambda r: views.asks_batch(r, [ask_id]))
    if item is None:
        raise ApiError(404, "not_found", f"There is no ask {ask_id!r}.", field="id")
    return _json(item)


async def milestones(request: Request) -> Response:
    page, theme = _page(request), _theme(request)
    team = request.query_params.get("team") or None
    return _json(
        await _query(
            request, lambda r: views.recent_milestones(r, team=team, theme=theme, page=page)
        )
    )


async def themes(request: Request) -> Response:
    # An aggregate over all thanks: cached briefly, it changes slowly and is read on every page.
    state = runtime_of(request).state
    cached = state.get("themes_cache")
    if cached is None or time.monotonic() - cached[0] > THEMES_TTL_S:
        cached = (time.monotonic(), await _query(request, views.themes))
        state["themes_cache"] = cached
    return _json(cached[1])


ROUTES = [
    Route(f"{PREFIX}/asks/batch", asks_batch, methods=["POST"]),
    Route(f"{PREFIX}/asks", create_ask, methods=["POST"]),
    Route(f"{PREFIX}/asks", open_asks, methods=["GET"]),
    Route(f"{PREFIX}/asks/{{id}}", get_ask, methods=["GET"]),
    Route(f"{PREFIX}/asks/{{id}}/withdraw", withdraw_ask, methods=["POST"]),
    Route(f"{PREFIX}/asks/{{id}}/resolve", resolve_ask, methods=["POST"]),
    Route(f"{PREFIX}/asks/{{id}}/accept", accept_offer, methods=["POST"]),
    Route(f"{PREFIX}/offers", make_offer, methods=["POST"]),
    Route(f"{PREFIX}/thanks/batch", thanks_batch, methods=["POST"]),
    Route(f"{PREFIX}/thanks", give_thanks, methods=["POST"]),
    Route(f"{PREFIX}/thanks", recent_thanks, methods=["GET"]),
    Route(f"{PREFIX}/people/batch", people_batch, methods=["POST"]),
    Route(f"{PREFIX}/people/{{id}}", person, methods=["GET"]),
    Route(f"{PREFIX}/people/{{id}}/thanks", person_thanks, methods=["GET"]),
    Route(f"{PREFIX}/milestones", milestones, methods=["GET"]),
    Route(f"{PREFIX}/themes", themes, methods=["GET"]),
]
