"""One plain function per consumed event type, the routing table that picks it, and the use
case that applies a batch of consumed events and fans their celebrations out together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from thrive_shared.contracts import (
    AskStatus,
    AskStatusChanged,
    CelebrationSize,
    Envelope,
    EventData,
    HelpOffered,
    HelpReceived,
    HelpRequested,
    MilestoneReached,
    PersonErased,
    PersonUpserted,
    Visibility,
)

from thrive_notifier.domain.model import Celebration, Kind, TraceContext
from thrive_notifier.service_layer.fanout import (
    FanOutResult,
    celebrate_many,
    is_large,
    reserve_large_sends,
)
from thrive_notifier.service_layer.ports import PersonRecord, Repository


async def on_help_received(
    repo: Repository,
    data: HelpReceived,
    *,
    event_id: str,
    now: datetime,
    trace: TraceContext | None = None,
) -> Celebration | None:
    """A thanks: a small celebration that reaches the thanked helper."""
    if data.ask_id:
        await repo.ask_thanked(data.ask_id, data.given_at)
    if not data.helper:  # erased before we saw it
        return None
    c = Celebration(
        event_id=event_id,
        kind=Kind.THANKS,
        subject=data.helper,
        actor=data.giver,
        team=data.helper_team,
        title="thanks",
        message=data.message,
        themes=tuple(data.themes),
        private=data.visibility is Visibility.PRIVATE,
        occurred_at=data.given_at,
        trace=trace,
    )
    return c


async def on_milestone_reached(
    repo: Repository,
    data: MilestoneReached,
    *,
    event_id: str,
    now: datetime,
    trace: TraceContext | None = None,
) -> Celebration | None:
    """A milestone: large ones reach the team channel and followers too."""
    team = data.team
    if team is None:
        prof = (await repo.profiles([data.person])).get(data.person)
        team = prof.team if prof else None
    c = Celebration(
        event_id=event_id,
        kind=Kind.MILESTONE,
        subject=data.person,
        team=team,
        title=data.title,
        themes=tuple(data.themes),
        large=data.size is CelebrationSize.LARGE,
        occurred_at=data.reached_at,
        trace=trace,
    )
    return c


async def on_help_requested(
    repo: Repository,
    data: HelpRequested,
    *,
    event_id: str,
    now: datetime,
    trace: TraceContext | None = None,
) -> Celebration | None:
    """An ask: a gentle nudge to followers of its themes who have helped on them before."""
    await repo.ask_requested(ask_id=data.ask_id, asker=data.asker, title=data.title)
    c = Celebration(
        event_id=event_id,
        kind=Kind.ASK,
        subject=data.asker,
        title=data.title,
        message=f"A {data.size.value} ask.",
        themes=tuple(data.themes),
        occurred_at=now,
        trace=trace,
    )
    return c


async def on_help_offered(
    repo: Repository,
    data: HelpOffered,
    *,
    event_id: str,
    now: datetime,
    trace: TraceContext | None = None,
) -> Celebration | None:
    """Remember who offers help on which themes (asks nudge past helpers only)."""
    if data.themes:
        await repo.record_offer(data.helper, data.themes, now)
    return None


async def on_ask_status_changed(
    repo: Repository,
    data: AskStatusChanged,
    *,
    event_id: str,
    now: datetime,
    trace: TraceContext | None = None,
) -> Celebration | None:
    """A resolved ask starts the unthanked-reminder clock; withdrawn or expired ones end it."""
    if data.status is AskStatus.RESOLVED and data.helper and data.helper != data.asker:
        await repo.ask_resolved(ask_id=data.ask_id, asker=data.asker, helper=data.helper, at=now)
    elif data.status in (AskStatus.WITHDRAWN, AskStatus.EXPIRED):
        await repo.ask_closed(data.ask_id)
    return None


async def on_person_upserted(
    repo: Repository,
    data: PersonUpserted,
    *,
    event_id: str,
    now: datetime,
    trace: TraceContext | None = None,
) -> Celebration | None:
    """Mirror the directory: team, timezone and email are what delivery needs."""
    await repo.upsert_person(
        PersonRecord(
            person=data.person,
            name=data.name,
            email=data.email,
            team=data.team,
            timezone=data.timezone,
            locale=data.locale,
            active=data.active,
        )
    )
    return None


async def on_person_erased(
    repo: Repository,
    data: PersonErased,
    *,
    event_id: str,
    now: datetime,
    trace: TraceContext | None = None,
) -> Celebration | None:
    """Right to erasure: forget preferences, follows, mutes, inbox and ledger personal fields."""
    await repo.erase_person(data.person)
    return None


Handler = Callable[..., Awaitable[Celebration | None]]

HANDLERS: dict[type[EventData], Handler] = {
    HelpReceived: on_help_received,
    MilestoneReached: on_milestone_reached,
    HelpRequested: on_help_requested,
    HelpOffered: on_help_offered,
    AskStatusChanged: on_ask_status_changed,
    PersonUpserted: on_person_upserted,
    PersonErased: on_person_erased,
}


async def handle_event(
    repo: Repository, env: Envelope[Any], *, now: datetime, trace: TraceContext | None = None
) -> Celebration | None:
    """Apply one event; return the celebration it calls for (types we ignore return None).

    `trace` is the consumed event's trace context: its celebration's deliveries continue it.
    """
    handler = HANDLERS.get(type(env.data))
    if handler is None:
        return None
    c: Celebration | None = await handler(repo, env.data, event_id=env.id, now=now, trace=trace)
    return c


async def consume(
    repo: Repository,
    events: Sequence[tuple[Envelope[Any], TraceContext | None]],
    *,
    now: datetime,
    queue_large: bool = False,
    sends_first: bool = True,
) -> FanOutResult:
    """Apply a batch of consumed events, then fan all their celebrations out at once.

    Runs in the consumer's transaction, with the events' inbox rows: one read and one write
    for the whole batch, and the effects commit exactly once with the offsets' claim.
    Directory changes in the batch are applied before anyone is told anything.

    With `queue_large`, large milestones are queued (fanout_queue, in this transaction) for
    the fan-out lane instead: the poll's other events are not held up by their fan-out.
    With `sends_first` too, their email and webhook sends (a few dozen of ~1,500 people)
    are planned and reserved here, after the batch's other celebrations, so that they go
    out at this commit rather than after the lane's large statement; the lane keeps to
    the same decisions for everyone they concern.
    """
    cs = []
    for env, trace in events:
        if (c := await handle_event(repo, env, now=now, trace=trace)) is not None:
            cs.append(c)
    large = [c for c in cs if is_large(c)] if queue_large else []
    if large:
        cs = [c for c in cs if not is_large(c)]
    result = await celebrate_many(repo, cs, now=now)
    if large:
        if sends_first:
            large, early = await reserve_large_sends(repo, large, now=now)
            result.merge(early)
        await repo.enqueue_celebrations(large)
    result.queued = len(large)
    return result
