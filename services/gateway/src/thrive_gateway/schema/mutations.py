# strawberry's field decorators are untyped under mypy; the resolvers themselves are typed.
# _call returns each mutation's own union, checked at run time against `allowed`.
# mypy: disable-error-code="untyped-decorator,no-any-return"
"""Mutation root: commands go to the owning service; refusals come back as typed results."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import strawberry

from thrive_gateway.clients.errors import ServiceError, ServiceUnavailable
from thrive_gateway.clients.models import PreferencesDTO, QuietHoursDTO
from thrive_gateway.schema.context import Info
from thrive_gateway.schema.errors import (
    AllowanceExceeded,
    NotAllowed,
    NotFound,
    PairCapExceeded,
    RateLimited,
    ValidationFailed,
    user_error,
)
from thrive_gateway.schema.permissions import IsAuthenticated
from thrive_gateway.schema.types import (
    Ask,
    AskSize,
    AttentionFilter,
    DigestFrequency,
    FollowKind,
    MuteKind,
    Offer,
    Preferences,
    Thanks,
    Visibility,
    unavailable,
)

R = TypeVar("R")
_THEME = re.compile(r"^#?[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,100}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_CHANNELS = {"in_app", "email", "webhook"}


# --- results --------------------------------------------------------------------------------


@strawberry.type
class ThanksGiven:
    thanks: Thanks


@strawberry.type
class AskPosted:
    ask: Ask


@strawberry.type
class OfferMade:
    offer: Offer


@strawberry.type
class FiltersChanged:
    """The person's follows or mutes after the change."""

    filters: list[AttentionFilter]


@strawberry.type
class PreferencesSaved:
    preferences: Preferences


@strawberry.type
class MarkedRead:
    count: int


@strawberry.type
class LeaderboardOptOut:
    opted_out: bool


GiveThanksResult = Annotated[
    ThanksGiven
    | AllowanceExceeded
    | PairCapExceeded
    | NotFound
    | NotAllowed
    | ValidationFailed
    | RateLimited,
    strawberry.union("GiveThanksResult"),
]
AskResult = Annotated[
    AskPosted | NotFound | NotAllowed | ValidationFailed | RateLimited,
    strawberry.union("AskResult"),
]
OfferResult = Annotated[
    OfferMade | NotFound | NotAllowed | ValidationFailed | RateLimited,
    strawberry.union("OfferResult"),
]
FilterResult = Annotated[
    FiltersChanged | ValidationFailed | RateLimited, strawberry.union("FilterResult")
]
PreferencesResult = Annotated[
    PreferencesSaved | ValidationFailed | RateLimited, strawberry.union("PreferencesResult")
]
MarkReadResult = Annotated[
    MarkedRead | ValidationFailed | RateLimited, strawberry.union("MarkReadResult")
]
OptOutResult = Annotated[
    LeaderboardOptOut | ValidationFailed | RateLimited, strawberry.union("OptOutResult")
]


# --- inputs ---------------------------------------------------------------------------------


@strawberry.input
class GiveThanksInput:
    helper: strawberry.ID
    message: str
    themes: list[str] = strawberry.field(default_factory=list)
    ask_id: strawberry.ID | None = None
    offer_id: strawberry.ID | None = None
    visibility: Visibility = Visibility.PUBLIC


@strawberry.input
class AskForHelpInput:
    title: str
    details: str = ""
    themes: list[str] = strawberry.field(default_factory=list)
    size: AskSize = AskSize.QUICK
    expires_in_days: int | None = None


@strawberry.input
class OfferHelpInput:
    ask_id: strawberry.ID | None = None
    themes: list[str] = strawberry.field(default_factory=list)
    message: str = ""


@strawberry.input
class PreferencesInput:
    channels: list[str]
    daily_budget: int = 10
    quiet_hours_start: str | None = None
    quiet_hours_end: str | None = None
    timezone: str | None = None
    digest_frequency: DigestFrequency = DigestFrequency.DAILY
    digest_hour: int = 8
    webhook_url: str | None = None


# --- helpers --------------------------------------------------------------------------------


def _throttled(info: Info) -> RateLimited | None:
    ctx = info.context
    wait = ctx.rate_limiter.try_acquire(ctx.principal.person_id or "anonymous")
    if wait > 0:
        return RateLimited(
            message="You are doing that a lot; please wait a moment.",
            retry_after_seconds=round(wait, 1),
        )
    return None


def _themes_error(themes: list[str]) -> ValidationFailed | None:
    if len(themes) > 10:
        return ValidationFailed(message="Use at most 10 themes.", field="themes")
    for theme in themes:
        if not _THEME.match(theme):
            return ValidationFailed(
                message=f"{theme[:60]!r} is not a theme: letters, digits, - and _ only.",
                field="themes",
            )
    return None


def _text_error(value: str, *, field: str, max_len: int, required: bool) -> ValidationFailed | None:
    if required and not value.strip():
        return ValidationFailed(message=f"Please write a {field}.", field=field)
    if len(value) > max_len:
        return ValidationFailed(
            message=f"Keep the {field} under {max_len} characters.", field=field
        )
    return None


def _id_error(value: str | None, *, field: str) -> NotFound | None:
    if value is not None and not _ID.match(value):
        return NotFound(message=f"There is no such {field}.", field=field)
    return None


async def _call(
    action: Callable[[], Awaitable[R]],
    ok: Callable[[R], Any],
    *,
    allowed: tuple[type, ...] = (NotFound, NotAllowed, ValidationFailed),
) -> Any:
    """Run a service command: success -> `ok(result)`, refusal -> a typed error in `allowed`.

    A refusal of a kind this mutation's union cannot express becomes ValidationFailed
    (every union has it), so the user still reads the service's sentence.
    """
    try:
        result = await action()
    except ServiceError as exc:
        error = user_error(exc)
        if isinstance(error, allowed):
            return error
        return ValidationFailed(message=exc.message, field=exc.field)
    except ServiceUnavailable as exc:
        raise unavailable(exc) from exc
    return ok(result)


def _normalise(themes: list[str]) -> list[str]:
    return [t.strip().lstrip("#").lower() for t in themes]


# --- root -----------------------------------------------------------------------------------


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Thank someone who helped you."
    )
    async def give_thanks(self, info: Info, input: GiveThanksInput) -> GiveThanksResult:
        if limited := _throttled(info):
            return limited
        helper = str(input.helper)
        problem = (
            _id_error(helper, field="helper")
            or _id_error(input.ask_id and str(input.ask_id), field="askId")
            or _id_error(input.offer_id and str(input.offer_id), field="offerId")
            or _text_error(input.message, field="message", max_len=2000, required=True)
            or _themes_error(input.themes)
        )
        if problem:
            return problem
        if info.context.principal.is_person(helper):
            return ValidationFailed(message="You cannot thank yourself.", field="helper")
        ctx = info.context
        return await _call(
            lambda: ctx.services.recognition.give_thanks(
                ctx.principal,
                helper=helper,
                message=input.message.strip(),
                themes=_normalise(input.themes),
                ask_id=str(input.ask_id) if input.ask_id else None,
                offer_id=str(input.offer_id) if input.offer_id else None,
                visibility=input.visibility.value,
            ),
            lambda dto: ThanksGiven(thanks=Thanks.from_dto(dto)),
            allowed=(AllowanceExceeded, PairCapExceeded, NotFound, NotAllowed, ValidationFailed),
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Ask for a little help.")
    async def ask_for_help(self, info: Info, input: AskForHelpInput) -> AskResult:
        if limited := _throttled(info):
            return limited
        problem = (
            _text_error(input.title, field="title", max_len=200, required=True)
            or _text_error(input.details, field="details", max_len=4000, required=False)
            or _themes_error(input.themes)
        )
        if problem:
            return problem
        days = input.expires_in_days
        if days is not None and not 1 <= days <= 30:
            return ValidationFailed(
                message="Asks expire within 1 to 30 days.", field="expiresInDays"
            )
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        ctx = info.context
        return await _call(
            lambda: ctx.services.recognition.create_ask(
                ctx.principal,
                title=input.title.strip(),
                details=input.details.strip(),
                themes=_normalise(input.themes),
                size=input.size.value,
                expires_at=expires,
            ),
            lambda dto: AskPosted(ask=Ask.from_dto(dto)),
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Offer help on an ask or on themes."
    )
    async def offer_help(self, info: Info, input: OfferHelpInput) -> OfferResult:
        if limited := _throttled(info):
            return limited
        ask_id = str(input.ask_id) if input.ask_id else None
        problem = (
            _id_error(ask_id, field="askId")
            or _text_error(input.message, field="message", max_len=2000, required=False)
            or _themes_error(input.themes)
        )
        if problem:
            return problem
        if ask_id is None and not input.themes:
            return ValidationFailed(
                message="Offer help on an ask or on some themes.", field="themes"
            )
        ctx = info.context
        return await _call(
            lambda: ctx.services.recognition.create_offer(
                ctx.principal, ask_id=ask_id, themes=_normalise(input.themes), message=input.message
            ),
            lambda dto: OfferMade(offer=Offer.from_dto(dto)),
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def accept_offer(
        self, info: Info, ask_id: strawberry.ID, offer_id: strawberry.ID
    ) -> AskResult:
        if limited := _throttled(info):
            return limited
        if problem := _id_error(str(ask_id), field="askId") or _id_error(
            str(offer_id), field="offerId"
        ):
            return problem
        ctx = info.context
        return await _call(
            lambda: ctx.services.recognition.accept_offer(
                ctx.principal, ask_id=str(ask_id), offer_id=str(offer_id)
            ),
            lambda dto: AskPosted(ask=Ask.from_dto(dto)),
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Withdraw my ask, quietly."
    )
    async def withdraw_ask(self, info: Info, ask_id: strawberry.ID) -> AskResult:
        if limited := _throttled(info):
            return limited
        if problem := _id_error(str(ask_id), field="askId"):
            return problem
        ctx = info.context
        return await _call(
            lambda: ctx.services.recognition.change_ask(
                ctx.principal, ask_id=str(ask_id), action="withdraw"
            ),
            lambda dto: AskPosted(ask=Ask.from_dto(dto)),
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def follow(self, info: Info, kind: FollowKind, target: str) -> FilterResult:
        return await _change_filter(info, "follows", kind.value, target, add=True)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def unfollow(self, info: Info, kind: FollowKind, target: str) -> FilterResult:
        return await _change_filter(info, "follows", kind.value, target, add=False)

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Nobody is ever told.")
    async def mute(self, info: Info, kind: MuteKind, target: str) -> FilterResult:
        return await _change_filter(info, "mutes", kind.value, target, add=True)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def unmute(self, info: Info, kind: MuteKind, target: str) -> FilterResult:
        return await _change_filter(info, "mutes", kind.value, target, add=False)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def set_preferences(self, info: Info, input: PreferencesInput) -> PreferencesResult:
        if limited := _throttled(info):
            return limited
        unknown = set(input.channels) - _CHANNELS
        if unknown:
            return ValidationFailed(
                message=f"Unknown channels: {', '.join(sorted(unknown))[:100]}.", field="channels"
            )
        for field, value in (
            ("quietHoursStart", input.quiet_hours_start),
            ("quietHoursEnd", input.quiet_hours_end),
        ):
            if value is not None and not _HHMM.match(value):
                return ValidationFailed(message="Use HH:MM, e.g. 18:30.", field=field)
        if (input.quiet_hours_start is None) != (input.quiet_hours_end is None):
            return ValidationFailed(
                message="Give both ends of quiet hours, or neither.", field="quietHoursEnd"
            )
        if not 0 <= input.daily_budget <= 1000:
            return ValidationFailed(message="The daily budget is 0 to 1000.", field="dailyBudget")
        if not 0 <= input.digest_hour <= 23:
            return ValidationFailed(message="The digest hour is 0 to 23.", field="digestHour")
        if input.timezone is not None and len(input.timezone) > 64:
            return ValidationFailed(message="That is not a time zone.", field="timezone")
        if input.webhook_url is not None and (
            len(input.webhook_url) > 2000 or not input.webhook_url.startswith("https://")
        ):
            return ValidationFailed(message="Webhooks must be https:// URLs.", field="webhookUrl")
        ctx = info.context
        quiet = (
            QuietHoursDTO(start=input.quiet_hours_start, end=input.quiet_hours_end)
            if input.quiet_hours_start and input.quiet_hours_end
            else None
        )
        prefs = PreferencesDTO(
            channels=list(dict.fromkeys(input.channels)),
            daily_budget=input.daily_budget,
            quiet_hours=quiet,
            timezone=input.timezone,
            digest_frequency=input.digest_frequency.value,
            digest_hour=input.digest_hour,
            webhook_url=input.webhook_url,
        )
        return await _call(
            lambda: ctx.services.notifier.set_preferences(
                ctx.principal, person_id=ctx.principal.person_id or "", preferences=prefs
            ),
            lambda dto: PreferencesSaved(preferences=Preferences.from_dto(dto)),
            allowed=(ValidationFailed,),
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def mark_read(self, info: Info, ids: list[strawberry.ID]) -> MarkReadResult:
        if limited := _throttled(info):
            return limited
        if not 1 <= len(ids) <= 100:
            return ValidationFailed(message="Mark 1 to 100 items at a time.", field="ids")
        if any(not str(i).isdigit() for i in ids):
            return ValidationFailed(message="Some ids are not inbox items.", field="ids")
        ctx = info.context
        return await _call(
            lambda: ctx.services.notifier.mark_read(
                ctx.principal, person_id=ctx.principal.person_id or "", ids=[str(i) for i in ids]
            ),
            lambda count: MarkedRead(count=count),
            allowed=(ValidationFailed,),
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Leave (or rejoin) all leaderboards."
    )
    async def opt_out_of_leaderboards(self, info: Info, opted_out: bool = True) -> OptOutResult:
        if limited := _throttled(info):
            return limited
        ctx = info.context
        result = await _call(
            lambda: ctx.services.leaderboard.set_opt_out(
                ctx.principal, person_id=ctx.principal.person_id or "", opted_out=opted_out
            ),
            lambda value: LeaderboardOptOut(opted_out=value),
            allowed=(ValidationFailed,),
        )
        if isinstance(result, LeaderboardOptOut):
            # Boards shown from cache must drop (or show again) this person now.
            ctx.live.forget_boards()
        return result


async def _change_filter(info: Info, filter_kind: str, kind: str, target: str, *, add: bool) -> Any:
    if limited := _throttled(info):
        return limited
    target = target.strip()
    if not target or len(target) > 100 or not re.match(r"^#?[A-Za-z0-9._@:-]+$", target):
        return ValidationFailed(message="Name a person id, team or theme.", field="target")
    ctx = info.context
    me = ctx.principal.person_id or ""
    notifier = ctx.services.notifier

    async def change() -> list[Any]:
        if add:
            await notifier.add_filter(
                ctx.principal, person_id=me, filter_kind=filter_kind, kind=kind, target=target
            )
        else:
            await notifier.remove_filter(
                ctx.principal, person_id=me, filter_kind=filter_kind, kind=kind, target=target
            )
        return await notifier.list_filters(ctx.principal, person_id=me, filter_kind=filter_kind)

    return await _call(
        change,
        lambda items: FiltersChanged(filters=[AttentionFilter.from_dto(f) for f in items]),
        allowed=(ValidationFailed,),
    )
