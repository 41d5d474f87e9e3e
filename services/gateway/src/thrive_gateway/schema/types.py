# strawberry's field decorators are untyped under mypy; the resolvers themselves are typed.
# mypy: disable-error-code="untyped-decorator"
"""GraphQL object types, built from the services' DTOs."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from strawberry.exceptions import StrawberryGraphQLError

from thrive_gateway.clients.api import BoardQuery
from thrive_gateway.clients.errors import ServiceUnavailable
from thrive_gateway.clients.models import (
    AskDTO,
    FilterDTO,
    InboxItemDTO,
    MilestoneDTO,
    OfferDTO,
    PersonDTO,
    PreferencesDTO,
    ThanksDTO,
)
from thrive_gateway.live.responses import person_tag
from thrive_gateway.paging import Slice
from thrive_gateway.schema.context import Info
from thrive_gateway.schema.permissions import CanReadThanks, IsThisPerson, may_read_thanks

T = TypeVar("T")


class PublicError(StrawberryGraphQLError):
    """An error whose message is meant for the caller (never masked)."""


def unavailable(exc: ServiceUnavailable) -> PublicError:
    """The user-facing error for a service outage."""
    return PublicError(
        f"{exc.service.capitalize()} is unavailable right now; please try again shortly.",
        extensions={"code": "SERVICE_UNAVAILABLE", "service": exc.service},
    )


# --- enums ----------------------------------------------------------------------------------


@strawberry.enum
class Visibility(Enum):
    PUBLIC = "public"
    PRIVATE = "private"


@strawberry.enum
class AskSize(Enum):
    QUICK = "quick"
    CHAT = "chat"
    SESSION = "session"


@strawberry.enum
class CelebrationSize(Enum):
    SMALL = "small"
    LARGE = "large"


@strawberry.enum
class BoardMetric(Enum):
    SERVICE = "service"
    THANKS_RECEIVED = "thanks_received"
    HELP_GIVEN = "help_given"
    PEOPLE_HELPED = "people_helped"
    CROSS_TEAM = "cross_team"
    MILESTONES = "milestones"


@strawberry.enum
class TimeWindow(Enum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    ALL_TIME = "all_time"


@strawberry.enum
class BoardScope(Enum):
    COMPANY = "company"
    TEAM = "team"
    THEME = "theme"


@strawberry.enum
class FollowKind(Enum):
    PERSON = "person"
    TEAM = "team"
    THEME = "theme"


@strawberry.enum
class MuteKind(Enum):
    PERSON = "person"
    THEME = "theme"
    KIND = "kind"


def _enum(enum_type: type[Enum], value: str, default: Enum) -> Enum:
    try:
        return enum_type(value)
    except ValueError:
        return default


# --- connections ----------------------------------------------------------------------------


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    """A Relay-style page: edges with cursors, and whether more follow."""

    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field(description="The nodes of `edges`, for clients that need no cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


def connection(page: Slice[T]) -> Connection[T]:
    """A Connection from paged (cursor, node) pairs."""
    edges = [Edge(cursor=c, node=n) for c, n in page.edges]
    end = edges[-1].cursor if edges else None
    return Connection(
        edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=end)
    )


# --- people ---------------------------------------------------------------------------------


@strawberry.type
class PersonCounts:
    thanks_received: int
    thanks_given: int
    asks: int
    offers: int
    people_helped: int
    teams_helped: int
    streak_weeks: int = strawberry.field(description="Consecutive weeks with help given.")


@strawberry.type
class AttentionFilter:
    """A follow or a mute: what kind of thing, and which."""

    kind: str
    target: str

    @classmethod
    def from_dto(cls, dto: FilterDTO) -> AttentionFilter:
        return cls(kind=dto.kind, target=dto.target)


@strawberry.type
class Standing:
    rank: int
    score: float
    person_id: strawberry.Private[str]

    @strawberry.field
    def person(self, info: Info) -> Person | None:
        return person_now_or_later(info, self.person_id)  # type: ignore[no-any-return]


@strawberry.type
class MyRank:
    """Where someone stands on a board; null rank when unranked, or hidden when opted out."""

    rank: int | None
    score: float | None
    opted_out: bool


@strawberry.type
class Person:
    id: strawberry.ID
    name: str
    team: str | None
    timezone: str
    counts_raw: strawberry.Private[dict[str, int]]
    milestones_raw: strawberry.Private[list[MilestoneDTO]]

    @classmethod
    def from_dto(cls, dto: PersonDTO) -> Person:
        return cls(
            id=strawberry.ID(dto.id),
            name=dto.name or dto.id,
            team=dto.team,
            timezone=dto.timezone,
            counts_raw=dict(dto.counts),
            milestones_raw=list(dto.milestones),
        )

    @strawberry.field
    def counts(self) -> PersonCounts:
        c = self.counts_raw
        return PersonCounts(
            thanks_received=c.get("thanks_received", 0),
            thanks_given=c.get("thanks_given", 0),
            asks=c.get("asks", 0),
            offers=c.get("offers", 0),
            people_helped=c.get("people_helped", 0),
            teams_helped=c.get("teams_helped", 0),
            streak_weeks=c.get("streak_weeks", 0),
        )

    @strawberry.field
    def milestones(self) -> list[Milestone]:
        return [Milestone.from_dto(m) for m in self.milestones_raw]

    @strawberry.field(description="Thanks this person received, newest first.")
    async def thanks_received(
        self, info: Info, first: int = 10, after: str | None = None
    ) -> Connection[Thanks]:
        from thrive_gateway.schema.resolvers import person_thanks

        return await person_thanks(
            info, person_id=str(self.id), direction="received", first=first, after=after
        )

    @strawberry.field(description="Thanks this person gave, newest first.")
    async def thanks_given(
        self, info: Info, first: int = 10, after: str | None = None
    ) -> Connection[Thanks]:
        from thrive_gateway.schema.resolvers import person_thanks

        return await person_thanks(
            info, person_id=str(self.id), direction="given", first=first, after=after
        )

    @strawberry.field(permission_classes=[IsThisPerson], description="Only visible to themselves.")
    async def follows(self, info: Info) -> list[AttentionFilter]:
        from thrive_gateway.schema.resolvers import list_filters

        return await list_filters(info, person_id=str(self.id), filter_kind="follows")

    @strawberry.field(permission_classes=[IsThisPerson], description="Only visible to themselves.")
    async def mutes(self, info: Info) -> list[AttentionFilter]:
        from thrive_gateway.schema.resolvers import list_filters

        return await list_filters(info, person_id=str(self.id), filter_kind="mutes")

    @strawberry.field(description="Rank on a board; null when the person opted out.")
    async def rank(
        self,
        info: Info,
        board: BoardMetric = BoardMetric.SERVICE,
        window: TimeWindow = TimeWindow.MONTH,
    ) -> MyRank | None:
        from thrive_gateway.schema.resolvers import rank_of

        result = await rank_of(
            info, person_id=str(self.id), board=BoardQuery(metric=board.value, window=window.value)
        )
        if result.opted_out and not info.context.principal.is_person(str(self.id)):
            return None
        return result


async def load_person(info: Info, person_id: str | None) -> Person | None:
    """A person through the request's DataLoader (one batched call per request)."""
    if person_id is None:
        return None
    info.context.tag(person_tag(person_id))
    try:
        dto = await info.context.loaders.people.load(person_id)
    except ServiceUnavailable as exc:
        raise unavailable(exc) from exc
    return Person.from_dto(dto) if dto is not None else None


def person_now_or_later(info: Info, person_id: str | None) -> Any:
    """The person straight from the shared people cache when it is there, else an awaitable.

    graphql-core awaits what a resolver returns only when it is awaitable: a hit costs no
    coroutine, no task and no DataLoader round, which is most of a cached feed's people.
    """
    if person_id is None:
        return None
    ctx = info.context
    if ctx.cache_tags is not None:
        ctx.cache_tags.add(person_tag(person_id))
    hit, dto = ctx.live.people_cache.peek(person_id)
    if hit:
        return Person.from_dto(dto) if dto is not None else None
    return load_person(info, person_id)


# --- recognition ----------------------------------------------------------------------------


@strawberry.type
class Milestone:
    id: strawberry.ID
    rule_id: str
    level: int
    size: CelebrationSize
    title: str
    themes: list[str]
    reached_at: datetime
    person_id: strawberry.Private[str | None]

    @classmethod
    def from_dto(cls, dto: MilestoneDTO) -> Milestone:
        return cls(
            id=strawberry.ID(dto.id),
            rule_id=dto.rule_id,
            level=dto.level,
            size=_enum(CelebrationSize, dto.size, CelebrationSize.SMALL),  # type: ignore[arg-type]
            title=dto.title,
            themes=list(dto.themes),
            reached_at=dto.reached_at,
            person_id=dto.person,
        )

    @strawberry.field
    def person(self, info: Info) -> Person | None:
        return person_now_or_later(info, self.person_id)  # type: ignore[no-any-return]


@strawberry.type
class Thanks:
    """A thanks B: the core recognition act."""

    id: strawberry.ID
    themes: list[str]
    visibility: Visibility
    given_at: datetime
    giver_id: strawberry.Private[str | None]
    helper_id: strawberry.Private[str | None]
    ask_id: strawberry.Private[str | None]
    visibility_value: strawberry.Private[str]
    message_raw: strawberry.Private[str]

    @classmethod
    def from_dto(cls, dto: ThanksDTO) -> Thanks:
        visibility = _enum(Visibility, dto.visibility, Visibility.PRIVATE)
        return cls(
            id=strawberry.ID(dto.id),
            themes=list(dto.themes),
            visibility=visibility,  # type: ignore[arg-type]
            given_at=dto.given_at,
            giver_id=dto.giver,
            helper_id=dto.helper,
            ask_id=dto.ask_id,
            visibility_value=visibility.value,
            message_raw=dto.message,
        )

    @strawberry.field(permission_classes=[CanReadThanks])
    def message(self) -> str:
        return self.message_raw

    @strawberry.field(description="Who was helped and says thanks.")
    def giver(self, info: Info) -> Person | None:
        return person_now_or_later(info, self.giver_id)  # type: ignore[no-any-return]

    @strawberry.field(description="Who helped and is thanked.")
    def helper(self, info: Info) -> Person | None:
        return person_now_or_later(info, self.helper_id)  # type: ignore[no-any-return]

    @strawberry.field
    async def ask(self, info: Info) -> Ask | None:
        if self.ask_id is None:
            return None
        try:
            dto = await info.context.loaders.asks.load(self.ask_id)
        except ServiceUnavailable as exc:
            raise unavailable(exc) from exc
        return Ask.from_dto(dto) if dto is not None else None


def visible_thanks(info: Info, items: list[ThanksDTO]) -> list[ThanksDTO]:
    """Defence in depth: drop private thanks the caller may not see, whatever a service sent."""
    principal = info.context.principal
    return [
        t
        for t in items
        if may_read_thanks(principal, visibility=t.visibility, giver=t.giver, helper=t.helper)
    ]


@strawberry.type
class Ask:
    """A request for help: small, themed, expiring."""

    id: strawberry.ID
    title: str
    details: str
    themes: list[str]
    size: AskSize
    status: str
    expires_at: datetime | None
    created_at: datetime | None
    asker_id: strawberry.Private[str | None]

    @classmethod
    def from_dto(cls, dto: AskDTO) -> Ask:
        return cls(
            id=strawberry.ID(dto.id),
            title=dto.title,
            details=dto.details,
            themes=list(dto.themes),
            size=_enum(AskSize, dto.size, AskSize.QUICK),  # type: ignore[arg-type]
            status=dto.status,
            expires_at=dto.expires_at,
            created_at=dto.created_at,
            asker_id=dto.asker,
        )

    @strawberry.field
    async def asker(self, info: Info) -> Person | None:
        return await load_person(info, self.asker_id)


@strawberry.type
class Offer:
    id: strawberry.ID
    message: str
    themes: list[str]
    created_at: datetime | None
    helper_id: strawberry.Private[str | None]
    ask_id: strawberry.Private[str | None]

    @classmethod
    def from_dto(cls, dto: OfferDTO) -> Offer:
        return cls(
            id=strawberry.ID(dto.id),
            message=dto.message,
            themes=list(dto.themes),
            created_at=dto.created_at,
            helper_id=dto.helper,
            ask_id=dto.ask_id,
        )

    @strawberry.field
    async def helper(self, info: Info) -> Person | None:
        return await load_person(info, self.helper_id)


FeedItem = Annotated[Thanks | Milestone, strawberry.union("FeedItem")]


@strawberry.type
class ThemeCount:
    theme: str
    count: int


# --- leaderboards ---------------------------------------------------------------------------


@strawberry.type
class Leaderboard:
    metric: BoardMetric
    window: TimeWindow
    scope: BoardScope
    scope_id: str | None
    period: str | None
    standings: list[Standing]


# --- notifier -------------------------------------------------------------------------------


@strawberry.type
class InboxItem:
    id: strawberry.ID
    kind: str
    title: str
    about: str | None
    created_at: datetime
    read: bool

    @classmethod
    def from_dto(cls, dto: InboxItemDTO) -> InboxItem:
        return cls(
            id=strawberry.ID(dto.id),
            kind=dto.kind,
            title=dto.title,
            about=dto.about,
            created_at=dto.created_at,
            read=dto.read,
        )


@strawberry.enum
class DigestFrequency(Enum):
    DAILY = "daily"
    WEEKLY = "weekly"
    OFF = "off"


@strawberry.type
class Preferences:
    """How and when someone wants to hear about celebrations."""

    channels: list[str]
    daily_budget: int = strawberry.field(description="Pings a day; the rest go to the digest.")
    quiet_hours_start: str | None
    quiet_hours_end: str | None
    timezone: str | None
    digest_frequency: DigestFrequency
    digest_hour: int
    webhook_url: str | None

    @classmethod
    def from_dto(cls, dto: PreferencesDTO) -> Preferences:
        quiet = dto.quiet_hours
        return cls(
            channels=list(dto.channels),
            daily_budget=dto.daily_budget,
            quiet_hours_start=quiet.start[:5] if quiet else None,
            quiet_hours_end=quiet.end[:5] if quiet else None,
            timezone=dto.timezone,
            digest_frequency=_enum(DigestFrequency, dto.digest_frequency, DigestFrequency.DAILY),  # type: ignore[arg-type]
            digest_hour=dto.digest_hour,
            webhook_url=dto.webhook_url,
        )


# --- live -----------------------------------------------------------------------------------


@strawberry.type
class Celebration:
    """A celebration delivered to someone: a thanks received, a milestone reached, ..."""

    id: strawberry.ID
    kind: str
    title: str
    about: str
    themes: list[str]
    team: str | None
    delivered_at: datetime
    recipient_id: strawberry.Private[str]

    @strawberry.field
    async def recipient(self, info: Info) -> Person | None:
        return await load_person(info, self.recipient_id)
