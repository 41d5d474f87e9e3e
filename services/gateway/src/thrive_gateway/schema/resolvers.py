"""Resolver bodies shared by queries and nested fields: paging, caching, error mapping."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from thrive_gateway.clients.api import BoardQuery
from thrive_gateway.clients.errors import ServiceError, ServiceUnavailable
from thrive_gateway.clients.models import Page
from thrive_gateway.paging import BadCursor, Fetch, Slice, paginate
from thrive_gateway.schema.context import Info
from thrive_gateway.schema.types import (
    AttentionFilter,
    Connection,
    MyRank,
    PublicError,
    Thanks,
    connection,
    unavailable,
    visible_thanks,
)

_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,100}$")


def check_id(value: str, *, field: str) -> str:
    """Ids are plain tokens: refuse anything that could smuggle a path or query."""
    if not _ID.match(value):
        raise PublicError(
            f"`{field}` is not a valid id.", extensions={"code": "BAD_USER_INPUT", "field": field}
        )
    return value


def check_first(info: Info, first: int) -> int:
    """Page sizes are 1..max_page_size."""
    limit = info.context.settings.max_page_size
    if not 1 <= first <= limit:
        raise PublicError(
            f"`first` must be between 1 and {limit}.",
            extensions={"code": "BAD_USER_INPUT", "field": "first"},
        )
    return first


async def page_of(
    info: Info, sources: dict[str, Fetch], *, first: int, after: str | None, newest: Any = None
) -> Any:
    """Run `paginate` mapping bad cursors and outages to public errors."""
    check_first(info, first)
    try:
        return await paginate(sources, first=first, after=after, newest=newest)
    except BadCursor as exc:
        raise PublicError(
            f"`after` is not a cursor of this list ({exc}).",
            extensions={"code": "BAD_USER_INPUT", "field": "after"},
        ) from exc
    except ServiceUnavailable as exc:
        raise unavailable(exc) from exc
    except ServiceError as exc:
        raise PublicError(exc.message, extensions={"code": "BAD_USER_INPUT"}) from exc


async def person_thanks(
    info: Info, *, person_id: str, direction: str, first: int, after: str | None
) -> Connection[Thanks]:
    """Someone's thanks, filtered to what the caller may see."""
    ctx = info.context

    async def fetch(size: int, cursor: str | None) -> Page[Any]:
        page = await ctx.services.recognition.person_thanks(
            ctx.principal, person_id=person_id, direction=direction, first=size, after=cursor
        )
        return Page[Any](items=visible_thanks(info, page.items), next_cursor=page.next_cursor)

    sliced = await page_of(info, {"t": fetch}, first=first, after=after)
    return connection(map_slice(sliced, Thanks.from_dto))


async def list_filters(info: Info, *, person_id: str, filter_kind: str) -> list[AttentionFilter]:
    """Someone's follows or mutes (permission-checked by the field)."""
    ctx = info.context
    try:
        items = await ctx.services.notifier.list_filters(
            ctx.principal, person_id=person_id, filter_kind=filter_kind
        )
    except ServiceUnavailable as exc:
        raise unavailable(exc) from exc
    return [AttentionFilter.from_dto(f) for f in items]


async def rank_of(info: Info, *, person_id: str, board: BoardQuery) -> MyRank:
    """Rank of one person on a board."""
    ctx = info.context
    try:
        dto = await ctx.services.leaderboard.rank(ctx.principal, person_id=person_id, board=board)
    except ServiceUnavailable as exc:
        raise unavailable(exc) from exc
    except ServiceError as exc:
        raise PublicError(exc.message, extensions={"code": "BAD_USER_INPUT"}) from exc
    if dto.opted_out:
        return MyRank(rank=None, score=None, opted_out=True)
    return MyRank(rank=dto.rank, score=dto.score, opted_out=False)


def map_slice(sliced: Slice[Any], convert: Callable[[Any], Any]) -> Slice[Any]:
    """The same page with each node converted (DTO -> GraphQL type)."""
    return Slice(
        edges=[(cursor, convert(item)) for cursor, item in sliced.edges],
        has_next_page=sliced.has_next_page,
    )
