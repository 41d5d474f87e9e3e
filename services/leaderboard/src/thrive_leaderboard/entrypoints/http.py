"""Internal JSON API under /internal/v1/: thin routes over the Leaderboards queries."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from thrive_shared.http import ApiError, JSONResponse, decode_cursor, encode_cursor, read_json
from thrive_shared.service import runtime_of

from thrive_leaderboard import metrics
from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.ranking import Ranked
from thrive_leaderboard.domain.scoring import DEFAULT_METRIC, Metric, display
from thrive_leaderboard.service_layer.boards import BoardError, BoardQuery, Page, RankAnswer, Scope

if TYPE_CHECKING:
    from thrive_leaderboard.bootstrap import LeaderboardApp

DEFAULT_WINDOW = Window.MONTH
MAX_FIRST = 100


class OptOut(BaseModel):
    """Body of PUT /people/{id}/opt-out."""

    model_config = ConfigDict(extra="forbid")

    opted_out: bool


def _app(request: Request) -> LeaderboardApp:
    app: LeaderboardApp = runtime_of(request).state["leaderboard"]
    return app


def _enum(params: Mapping[str, str], name: str, enum: Any, default: Any) -> Any:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return enum(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ApiError(400, "validation", f"{name} must be one of {allowed}", field=name) from None


def board_query(p: Mapping[str, str]) -> BoardQuery:
    """The board a query string names; ApiError 400 naming the field if it names none."""
    try:
        return BoardQuery(
            metric=_enum(p, "metric", Metric, DEFAULT_METRIC),
            window=_enum(p, "window", Window, DEFAULT_WINDOW),
            scope=p.get("scope") or Scope.COMPANY,
            scope_id=p.get("scope_id") or None,
            period=p.get("period") or None,
        )
    except BoardError as exc:
        raise ApiError(400, exc.code, exc.message, field=exc.field) from None


def int_param(params: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    """A bounded whole-number parameter; ApiError 400 naming it otherwise."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "validation", f"{name} must be a whole number", field=name) from None
    if not low <= value <= high:
        raise ApiError(400, "validation", f"{name} must be {low}..{high}", field=name)
    return value


def person_param(params: Mapping[str, str]) -> str:
    """The required `person` parameter."""
    person = params.get("person")
    if not person:
        raise ApiError(400, "validation", "person is required", field="person")
    return person


def _line(q: BoardQuery, r: Ranked) -> dict[str, Any]:
    who = "team" if q.scope == Scope.TEAMS else "person"
    return {who: r.person, "rank": r.rank, "score": display(r.score)}


def rank_json(q: BoardQuery, a: RankAnswer) -> dict[str, Any]:
    """Body of GET boards/rank."""
    if a.opted_out:
        return {"person": a.person, "opted_out": True}
    return {
        "person": a.person,
        "opted_out": False,
        "rank": a.rank,
        "score": display(a.score),
        "of": a.total,
        "board": q.board_json(),
        "period": a.period,
    }


def top_json(q: BoardQuery, page: Page) -> dict[str, Any]:
    """Body of GET boards/top (shared with the fast path, so both answer alike)."""
    return {
        "board": q.board_json(),
        "period": page.period,
        "items": [_line(q, r) for r in page.items],
        "total": page.total,
        "next_cursor": encode_cursor(*page.next_after) if page.next_after else None,
    }


def neighbourhood_json(q: BoardQuery, answer: RankAnswer, lines: list[Ranked]) -> dict[str, Any]:
    """Body of GET boards/neighbourhood."""
    body = rank_json(q, answer)
    if not answer.opted_out:
        body["items"] = [_line(q, r) for r in lines]
    return body


def cursor_after(raw: str | None) -> tuple[int, str] | None:
    """The (score, person) a `after` cursor points at; ApiError 400 if it is not one."""
    cursor = decode_cursor(raw)
    if cursor is None:
        return None
    if len(cursor) != 2 or not isinstance(cursor[0], int) or not isinstance(cursor[1], str):
        raise ApiError(400, "invalid_cursor", "The pagination cursor is not valid.", field="after")
    return (cursor[0], cursor[1])


async def top(request: Request) -> Response:
    """GET /internal/v1/boards/top: the first lines of a board, cursor-paginated."""
    started = time.perf_counter()
    q = board_query(request.query_params)
    first = int_param(request.query_params, "first", 10, low=1, high=MAX_FIRST)
    after = cursor_after(request.query_params.get("after"))
    try:
        page = await _app(request).boards.top(q, first=first, after=after)
    except BoardError as exc:
        raise ApiError(400, exc.code, exc.message, field=exc.field) from None
    body = top_json(q, page)
    metrics.QUERY_DURATION.labels("top").observe(time.perf_counter() - started)
    return JSONResponse(body)


async def rank(request: Request) -> Response:
    """GET /internal/v1/boards/rank: a person's rank and score, or that they opted out."""
    started = time.perf_counter()
    q = board_query(request.query_params)
    person = person_param(request.query_params)
    try:
        answer = await _app(request).boards.rank(q, person)
    except BoardError as exc:
        raise ApiError(400, exc.code, exc.message, field=exc.field) from None
    metrics.QUERY_DURATION.labels("rank").observe(time.perf_counter() - started)
    return JSONResponse(rank_json(q, answer))


async def neighbourhood(request: Request) -> Response:
    """GET /internal/v1/boards/neighbourhood: two lines above a person, theirs, two below."""
    started = time.perf_counter()
    q = board_query(request.query_params)
    person = person_param(request.query_params)
    above = int_param(request.query_params, "above", 2, low=0, high=20)
    below = int_param(request.query_params, "below", 2, low=0, high=20)
    try:
        answer, lines = await _app(request).boards.neighbourhood(
            q, person, above=above, below=below
        )
    except BoardError as exc:
        raise ApiError(400, exc.code, exc.message, field=exc.field) from None
    body = neighbourhood_json(q, answer, lines)
    metrics.QUERY_DURATION.labels("neighbourhood").observe(time.perf_counter() - started)
    return JSONResponse(body)


async def rising(request: Request) -> Response:
    """GET /internal/v1/boards/rising: biggest gains against the previous period."""
    started = time.perf_counter()
    q = board_query(request.query_params)
    first = int_param(request.query_params, "first", 10, low=1, high=MAX_FIRST)
    try:
        period, risers = await _app(request).boards.rising(q, first=first)
    except BoardError as exc:
        raise ApiError(400, exc.code, exc.message, field=exc.field) from None
    who = "team" if q.scope == Scope.TEAMS else "person"
    body = {
        "board": q.board_json(),
        "period": period,
        "items": [
            {
                who: r.person,
                "score": display(r.score),
                "previous_score": display(r.previous),
                "gain": display(r.gain),
            }
            for r in risers
        ],
        "next_cursor": None,
    }
    metrics.QUERY_DURATION.labels("rising").observe(time.perf_counter() - started)
    return JSONResponse(body)


async def get_opt_out(request: Request) -> Response:
    """GET /internal/v1/people/{id}/opt-out."""
    person = request.path_params["id"]
    return JSONResponse(await _app(request).opt_out_of(person))


async def put_opt_out(request: Request) -> Response:
    """PUT /internal/v1/people/{id}/opt-out {opted_out}."""
    person = request.path_params["id"]
    body = await read_json(request, OptOut)
    return JSONResponse(await _app(request).set_opt_out(person, body.opted_out))


ROUTES = [
    Route("/internal/v1/boards/top", top, methods=["GET"]),
    Route("/internal/v1/boards/rank", rank, methods=["GET"]),
    Route("/internal/v1/boards/neighbourhood", neighbourhood, methods=["GET"]),
    Route("/internal/v1/boards/rising", rising, methods=["GET"]),
    Route("/internal/v1/people/{id}/opt-out", get_opt_out, methods=["GET"]),
    Route("/internal/v1/people/{id}/opt-out", put_opt_out, methods=["PUT"]),
]
