# strawberry's field decorators are untyped under mypy; the resolvers themselves are typed.
# mypy: disable-error-code="untyped-decorator"
"""Query root."""

from __future__ import annotations

from typing import Any

import strawberry

from thrive_gateway.clients.api import BoardQuery
from thrive_gateway.clients.errors import ServiceError, ServiceUnavailable
from thrive_gateway.clients.models import BoardDTO, Page, PersonDTO
from thrive_gateway.live.responses import BOARDS_TAG, FEED_TAG, board_tag, person_tag
from thrive_gateway.schema.context import Info
from thrive_gateway.schema.permissions import IsAdmin, IsAuthenticated
from thrive_gateway.schema.resolvers import check_first, check_id, map_slice, page_of, rank_of
from thrive_gateway.schema.types import (
    Ask,
    AskSize,
    BoardMetric,
    BoardScope,
    Connection,
    FeedItem,
    InboxItem,
    Leaderboard,
    Milestone,
    MyRank,
    Person,
    Preferences,
    PublicError,
    Standing,
    Thanks,
    ThemeCount,
    TimeWindow,
    connection,
    load_person,
    unavailable,
    visible_thanks,
)


def _feed_node(item: Any) -> Thanks | Milestone:
    from thrive_gateway.clients.models import ThanksDTO

    return Thanks.from_dto(item) if isinstance(item, ThanksDTO) else Milestone.from_dto(item)


def _newest(item: Any) -> Any:
    return getattr(item, "given_at", None) or item.reached_at


def board_query(
    board: BoardMetric, window: TimeWindow, scope: BoardScope, scope_id: str | None
) -> BoardQuery:
    """The leaderboard service's board for GraphQL arguments."""
    if scope != BoardScope.COMPANY and not scope_id:
        raise PublicError(
            "`scopeId` is required for team and theme boards.",
            extensions={"code": "BAD_USER_INPUT", "field": "scopeId"},
        )
    return BoardQuery(
        metric=board.value,
        window=window.value,
        scope=scope.value,
        scope_id=scope_id if scope != BoardScope.COMPANY else None,
    )


@strawberry.type
class GatewayStatus:
    subscribers: int
    events_applied: int
    feed_cache_entries: int
    board_cache_entries: int
    people_cache_entries: int


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsAuthenticated], description="The signed-in person.")
    async def me(self, info: Info) -> Person | None:
        ctx = info.context
        me = ctx.principal.person_id or ""

        async def load() -> PersonDTO | None:
            try:
                return await ctx.services.recognition.get_person(ctx.principal, me)
            except ServiceUnavailable as exc:
                raise unavailable(exc) from exc

        # Invalidated by the events that change counts and milestones (see LiveState).
        ctx.tag(person_tag(me))
        dto = await ctx.live.profile_cache.get_or_load(me, load)
        return Person.from_dto(dto) if dto is not None else None

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def person(self, info: Info, id: strawberry.ID) -> Person | None:
        return await load_person(info, check_id(str(id), field="id"))

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Recent public thanks and milestones, newest first.",
    )
    async def feed(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        team: str | None = None,
        theme: str | None = None,
    ) -> Connection[FeedItem]:
        ctx = info.context
        check_first(info, first)
        actor = ctx.principal
        recognition = ctx.services.recognition

        async def thanks(size: int, cursor: str | None) -> Page[Any]:
            page = await recognition.recent_thanks(
                actor, team=team, theme=theme, first=size, after=cursor
            )
            # The company feed is public thanks only, whoever asks.
            public = [t for t in page.items if t.visibility == "public"]
            return Page[Any](items=public, next_cursor=page.next_cursor)

        async def milestones(size: int, cursor: str | None) -> Page[Any]:
            page = await recognition.recent_milestones(
                actor, team=team, theme=theme, first=size, after=cursor
            )
            return Page[Any](items=list(page.items), next_cursor=page.next_cursor)

        async def load() -> Any:
            sliced = await page_of(
                info, {"m": milestones, "t": thanks}, first=first, after=after, newest=_newest
            )
            return connection(map_slice(sliced, _feed_node))

        ctx.tag(FEED_TAG)
        # The same for every employee: one shared, event-invalidated entry per argument set.
        # The GraphQL objects themselves are cached; resolvers only read them.
        result: Connection[FeedItem] = await ctx.live.feed_cache.get_or_load(
            ("feed", team, theme, first, after), load
        )
        return result

    @strawberry.field(permission_classes=[IsAuthenticated], description="Open asks, newest first.")
    async def asks(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        theme: str | None = None,
        size: AskSize | None = None,
    ) -> Connection[Ask]:
        ctx = info.context

        async def fetch(count: int, cursor: str | None) -> Page[Any]:
            page = await ctx.services.recognition.open_asks(
                ctx.principal,
                theme=theme,
                size=size.value if size else None,
                first=count,
                after=cursor,
            )
            return Page[Any](items=list(page.items), next_cursor=page.next_cursor)

        sliced = await page_of(info, {"a": fetch}, first=first, after=after)
        return connection(map_slice(sliced, Ask.from_dto))

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def leaderboard(
        self,
        info: Info,
        board: BoardMetric = BoardMetric.SERVICE,
        window: TimeWindow = TimeWindow.MONTH,
        scope: BoardScope = BoardScope.COMPANY,
        scope_id: str | None = None,
        first: int = 10,
    ) -> Leaderboard:
        ctx = info.context
        check_first(info, first)
        query = board_query(board, window, scope, scope_id)
        ctx.tag(board_tag(query.key()))
        ctx.tag(BOARDS_TAG)

        async def load() -> BoardDTO:
            try:
                return await ctx.services.leaderboard.top(ctx.principal, board=query, first=first)
            except ServiceUnavailable as exc:
                raise unavailable(exc) from exc
            except ServiceError as exc:
                raise PublicError(exc.message, extensions={"code": "BAD_USER_INPUT"}) from exc

        dto = await ctx.live.board_cache.get_or_load((query.key(), query.period, first), load)
        return Leaderboard(
            metric=board,
            window=window,
            scope=scope,
            scope_id=query.scope_id,
            period=dto.period,
            standings=[Standing(rank=s.rank, score=s.score, person_id=s.person) for s in dto.items],
        )

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def my_rank(
        self,
        info: Info,
        board: BoardMetric = BoardMetric.SERVICE,
        window: TimeWindow = TimeWindow.MONTH,
        scope: BoardScope = BoardScope.COMPANY,
        scope_id: str | None = None,
    ) -> MyRank:
        query = board_query(board, window, scope, scope_id)
        return await rank_of(info, person_id=info.context.principal.person_id or "", board=query)

    @strawberry.field(permission_classes=[IsAuthenticated], description="My in-app inbox.")
    async def inbox(
        self, info: Info, first: int = 20, after: str | None = None, unread: bool | None = None
    ) -> Connection[InboxItem]:
        ctx = info.context
        me = ctx.principal.person_id or ""

        async def fetch(count: int, cursor: str | None) -> Page[Any]:
            page = await ctx.services.notifier.inbox(
                ctx.principal, person_id=me, unread=unread, first=count, after=cursor
            )
            return Page[Any](items=list(page.items), next_cursor=page.next_cursor)

        sliced = await page_of(info, {"i": fetch}, first=first, after=after)
        return connection(map_slice(sliced, InboxItem.from_dto))

    @strawberry.field(permission_classes=[IsAuthenticated], description="My notification settings.")
    async def preferences(self, info: Info) -> Preferences:
        ctx = info.context
        try:
            dto = await ctx.services.notifier.get_preferences(
                ctx.principal, person_id=ctx.principal.person_id or ""
            )
        except ServiceUnavailable as exc:
            raise unavailable(exc) from exc
        return Preferences.from_dto(dto)

    @strawberry.field(permission_classes=[IsAuthenticated], description="Themes in use, by count.")
    async def themes(self, info: Info) -> list[ThemeCount]:
        ctx = info.context
        try:
            items = await ctx.services.recognition.themes(ctx.principal)
        except ServiceUnavailable as exc:
            raise unavailable(exc) from exc
        return [ThemeCount(theme=t.theme, count=t.count) for t in items]

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def thanks(self, info: Info, id: strawberry.ID) -> Thanks | None:
        ctx = info.context
        try:
            dto = await ctx.loaders.thanks.load(check_id(str(id), field="id"))
        except ServiceUnavailable as exc:
            raise unavailable(exc) from exc
        if dto is None or not visible_thanks(info, [dto]):
            return None
        return Thanks.from_dto(dto)

    @strawberry.field(permission_classes=[IsAdmin], description="Operators only.")
    def gateway_status(self, info: Info) -> GatewayStatus:
        live = info.context.live
        return GatewayStatus(
            subscribers=live.hub.subscriber_count(),
            events_applied=live.applied,
            feed_cache_entries=len(live.feed_cache),
            board_cache_entries=len(live.board_cache),
            people_cache_entries=len(live.people_cache),
        )
