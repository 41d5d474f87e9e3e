# strawberry's field decorators are untyped under mypy; the resolvers themselves are typed.
# mypy: disable-error-code="untyped-decorator"
"""Subscription root: live celebrations, board changes and the feed (graphql-transport-ws)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from enum import Enum
from functools import partial
from typing import Any

import strawberry

from thrive_gateway.clients.models import MilestoneDTO, ThanksDTO
from thrive_gateway.live.events import (
    FEED,
    BoardNotice,
    CelebrationNotice,
    celebrations_for,
    leaderboard_channel,
)
from thrive_gateway.schema.context import Info
from thrive_gateway.schema.permissions import IsAuthenticated
from thrive_gateway.schema.queries import board_query
from thrive_gateway.schema.types import (
    BoardMetric,
    BoardScope,
    Celebration,
    FeedItem,
    Leaderboard,
    Milestone,
    PublicError,
    Standing,
    Thanks,
    TimeWindow,
)


@strawberry.enum
class Audience(Enum):
    ME = "me"
    TEAM = "team"
    THEME = "theme"


class _Seen:
    """Remembers recent ids: a team milestone is delivered once per member, shown once."""

    def __init__(self, size: int = 512) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first_time(self, key: str) -> bool:
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


_VIEWS: OrderedDict[tuple[str, int], tuple[Any, Any]] = OrderedDict()


def shared_view(kind: str, item: Any, build: Callable[[], Any]) -> Any:
    """One GraphQL object per live item and kind, shared by every socket that receives it.

    Sharing the object lets SharedEventExecutor execute the event once per document instead
    of once per socket. The item is kept with its view so its id cannot be reused meanwhile.
    """
    key = (kind, id(item))
    found = _VIEWS.get(key)
    if found is not None and found[0] is item:
        return found[1]
    view = build()
    _VIEWS[key] = (item, view)
    if len(_VIEWS) > 4_096:
        _VIEWS.popitem(last=False)
    return view


def _celebration(notice: CelebrationNotice) -> Celebration:
    return Celebration(
        id=strawberry.ID(notice.id),
        kind=notice.kind,
        title=notice.title,
        about=notice.about,
        themes=list(notice.themes),
        team=notice.team,
        delivered_at=notice.delivered_at,
        recipient_id=notice.recipient,
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="Celebrations delivered to me, to a team, or on a theme.",
    )
    async def celebrations(
        self,
        info: Info,
        audience: Audience = Audience.ME,
        team: str | None = None,
        theme: str | None = None,
    ) -> AsyncGenerator[Celebration, None]:
        ctx = info.context
        me = ctx.principal.person_id
        if audience == Audience.TEAM and not team:
            raise PublicError("Name the `team` to follow.", extensions={"code": "BAD_USER_INPUT"})
        if audience == Audience.THEME and not theme:
            raise PublicError("Name the `theme` to follow.", extensions={"code": "BAD_USER_INPUT"})
        wanted_theme = (theme or "").strip().lstrip("#").lower()
        if audience == Audience.ME:
            channel = celebrations_for("person", me or "")
        elif audience == Audience.TEAM:
            channel = celebrations_for("team", team or "")
        else:
            channel = celebrations_for("theme", wanted_theme)
        seen = _Seen()
        async with ctx.live.hub.subscribe(channel) as queue:
            while True:
                notice: CelebrationNotice = await queue.get()
                # A team or theme milestone is delivered once per member: show it once.
                if audience != Audience.ME and not seen.first_time(notice.about):
                    continue
                ctx.fresh_loaders()
                yield shared_view("celebration", notice, partial(_celebration, notice))

    @strawberry.subscription(permission_classes=[IsAuthenticated])
    async def leaderboard_changed(
        self,
        info: Info,
        board: BoardMetric = BoardMetric.SERVICE,
        window: TimeWindow = TimeWindow.MONTH,
        scope: BoardScope = BoardScope.COMPANY,
        scope_id: str | None = None,
    ) -> AsyncGenerator[Leaderboard, None]:
        ctx = info.context
        key = board_query(board, window, scope, scope_id).key()
        async with ctx.live.hub.subscribe(leaderboard_channel(key)) as queue:
            while True:
                notice: BoardNotice = await queue.get()
                ctx.fresh_loaders()

                # Everything here comes from the notice: the channel is this board's.
                def board_view(n: BoardNotice = notice) -> Leaderboard:
                    return Leaderboard(
                        metric=board,
                        window=window,
                        scope=scope,
                        scope_id=n.scope_id,
                        period=n.period,
                        standings=[
                            Standing(rank=rank, score=score, person_id=person)
                            for person, rank, score in n.top
                        ],
                    )

                yield shared_view("board", notice, board_view)

    @strawberry.subscription(
        permission_classes=[IsAuthenticated], description="New public thanks and milestones."
    )
    async def feed(
        self, info: Info, team: str | None = None, theme: str | None = None
    ) -> AsyncGenerator[FeedItem, None]:
        ctx = info.context
        wanted_theme = (theme or "").strip().lstrip("#").lower() or None
        async with ctx.live.hub.subscribe(FEED) as queue:
            while True:
                item: Any = await queue.get()
                if isinstance(item, ThanksDTO):
                    if item.visibility != "public":
                        continue
                    teams = (item.giver_team, item.helper_team)
                    node: Thanks | Milestone = shared_view(
                        "thanks", item, partial(Thanks.from_dto, item)
                    )
                elif isinstance(item, MilestoneDTO):
                    teams = (item.team, None)
                    node = shared_view("milestone", item, partial(Milestone.from_dto, item))
                else:
                    continue
                if team is not None and team not in teams:
                    continue
                if wanted_theme is not None and wanted_theme not in item.themes:
                    continue
                ctx.fresh_loaders()
                yield node
