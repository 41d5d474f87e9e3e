"""Fan a celebration out: audience, mutes, attention budget, then the ledger, inbox and digest."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import orjson
from thrive_shared.contracts import CelebrationDelivered

from thrive_notifier.domain.attention import (
    DeferReason,
    Mode,
    deferred,
    live_channels,
    local_day,
    plan_for,
)
from thrive_notifier.domain.audience import (
    AudienceFacts,
    audience_query,
    candidates,
    resolve_audience,
)
from thrive_notifier.domain.messages import Message, compose
from thrive_notifier.domain.model import (
    Celebration,
    Channel,
    DeliveryKey,
    DeliveryState,
    Kind,
    Profile,
    Recipient,
    RecipientKind,
    TraceContext,
)
from thrive_notifier.service_layer.ports import (
    Announcement,
    AudienceData,
    Deferral,
    LargeFanOut,
    LargeFanOutResult,
    NewDelivery,
    Repository,
)

SOURCE = "thrive/notifier"


@dataclass(slots=True)
class FanOutResult:
    """What one fan-out did, for metrics and tests."""

    delivered: Counter[str] = field(default_factory=Counter)  # in-app, by channel
    reserved: Counter[str] = field(default_factory=Counter)  # email/webhook pending, by channel
    deferred: Counter[str] = field(default_factory=Counter)  # by reason
    skipped: int = 0  # erased or inactive recipients
    queued: int = 0  # large milestones left to the fan-out lane (fanout_queue)

    def merge(self, other: FanOutResult) -> None:
        self.delivered.update(other.delivered)
        self.reserved.update(other.reserved)
        self.deferred.update(other.deferred)
        self.skipped += other.skipped
        self.queued += other.queued


def announcements(deliveries: Iterable[NewDelivery], *, at: datetime) -> list[Announcement]:
    """The CelebrationDelivered events for new, non-quiet in-app deliveries.

    One event per celebration (and message) naming all its recipients, split every
    `CelebrationDelivered.MAX_RECIPIENTS`: a large milestone reaching ~1,500 people is two
    outbox rows and Kafka records, not 1,500. Rendered straight to the contract's JSON (byte
    for byte what `Envelope.to_json` writes; tested) from values already validated.
    """
    groups: dict[tuple[str, Kind, str, tuple[str, ...]], list[NewDelivery]] = {}
    for d in deliveries:
        if d.key.channel is not Channel.IN_APP or d.quiet:
            continue
        m = d.message
        groups.setdefault((d.key.event_id, m.kind, m.title, m.themes), []).append(d)
    out: list[Announcement] = []
    cap = CelebrationDelivered.MAX_RECIPIENTS
    for group in groups.values():
        for start in range(0, len(group), cap):
            part = group[start : start + cap]
            first = part[0]
            out.append(
                _announcement(
                    first.key.event_id,
                    first.message,
                    [d.key.recipient.id for d in part],
                    [d.team for d in part],
                    [d.key.idempotency_key for d in part],
                    at=at,
                    trace=first.trace,
                )
            )
    return out


def large_announcements(
    c: Celebration, r: LargeFanOutResult, *, mine: Message, others: Message, at: datetime
) -> list[Announcement]:
    """`announcements` for a set-based fan-out: the same events from its columns."""
    groups: dict[bool, list[int]] = {}
    for n, is_mine in enumerate(r.mine):
        groups.setdefault(is_mine, []).append(n)
    out: list[Announcement] = []
    cap = CelebrationDelivered.MAX_RECIPIENTS
    for is_mine, idx in groups.items():
        for start in range(0, len(idx), cap):
            part = idx[start : start + cap]
            out.append(
                _announcement(
                    c.event_id,
                    mine if is_mine else others,
                    [r.recipients[n] for n in part],
                    [r.teams[n] for n in part],
                    [r.keys[n] for n in part],
                    at=at,
                    trace=c.trace,
                )
            )
    return out


def _announcement(
    about: str,
    m: Message,
    recipients: list[str],
    teams: list[str | None],
    keys: Sequence[str],
    *,
    at: datetime,
    trace: TraceContext | None,
) -> Announcement:
    # Deterministic, so a retried transaction renders the same id; distinct per recipient set.
    digest = hashlib.sha256(about.encode())
    for k in keys:
        digest.update(b"\x1f" + k.encode())
    delivery_id = f"delivered:{digest.hexdigest()[:40]}"
    body = {
        "specversion": "1.0",
        "id": delivery_id,
        "source": SOURCE,
        "type": CelebrationDelivered.TYPE,
        "time": at,
        "subject": about,
        "datacontenttype": "application/json",
        "schemaversion": CelebrationDelivered.SCHEMA_VERSION,
        "data": {
            "delivery_id": delivery_id,
            "about": about,
            "channel": Channel.IN_APP.value,
            "kind": m.kind.value,
            "title": m.title[:300],
            "themes": list(m.themes),
            "recipients": recipients,
            "teams": teams,
            "delivered_at": at,
        },
    }
    return Announcement(
        event_id=delivery_id,
        key=about,
        payload=orjson.dumps(body, option=orjson.OPT_UTC_Z),
        trace=trace,
    )


async def write_deliveries(
    repo: Repository, deliveries: list[NewDelivery], *, now: datetime
) -> list[tuple[NewDelivery, int]]:
    """Reserve ledger rows and announce new in-app deliveries through the outbox."""
    if not deliveries:
        return []
    created = await repo.reserve(deliveries, now=now)
    await announce(repo, [d for d, _id in created], now=now)
    return created


async def announce(repo: Repository, created: Sequence[NewDelivery], *, now: datetime) -> None:
    """Publish CelebrationDelivered for new, non-quiet in-app deliveries (via the outbox)."""
    items = announcements(created, at=now)
    if items:
        await repo.announce(items)


async def celebrate(repo: Repository, c: Celebration, *, now: datetime) -> FanOutResult:
    """Deliver one celebration to its audience, live where attention allows, else to digests."""
    return await celebrate_many(repo, [c], now=now)


def is_large(c: Celebration) -> bool:
    """A celebration whose audience is its followers (~1,500 people for a popular person)."""
    return c.kind is Kind.MILESTONE and c.large and not c.private


async def celebrate_many(
    repo: Repository, cs: Sequence[Celebration], *, now: datetime, bulk: bool = True
) -> FanOutResult:
    """Fan out a batch of celebrations with one read and one write for all of them.

    Large milestones go set-based when the repository can (`LargeFanOut`): one statement
    each, after the others' write (so their budget use counts), with the same rules and
    ledger keys. `bulk=False` plans every recipient here (what the fake always does).
    """
    result = FanOutResult()
    # The same event twice (a redelivery queued twice) is one celebration: every delivery
    # key derives from the event, so this keeps one per ledger key without hashing them all.
    first: dict[str, Celebration] = {}
    for c in cs:
        first.setdefault(c.event_id, c)
    cs = list(first.values())
    if not cs:
        return result
    large: list[Celebration] = []
    if bulk and isinstance(repo, LargeFanOut):
        large = [c for c in cs if is_large(c)]
        cs = [c for c in cs if not is_large(c)]
    facts: dict[str, AudienceFacts] = {}
    for c in cs:  # follower lookups: only large milestones and asks need one
        query = audience_query(c)
        facts[c.event_id] = AudienceFacts() if query.is_empty else await repo.audience_facts(query)
    cands = {c.event_id: candidates(c, facts[c.event_id]) for c in cs}
    wanted: set[str] = set()
    teams: set[str] = set()
    for c in (*cs, *large):  # large ones: only their subject's name
        wanted |= c.involved
    for c in cs:
        for r in cands[c.event_id]:
            (wanted if r.kind is RecipientKind.PERSON else teams).add(r.id)
    data = await repo.audience_data(wanted, now=now)
    if cs:
        urls = await repo.team_channels(teams) if teams else {}
        batch = _Batch(data=data, urls=urls, now=now, used=dict(data.used), result=result)
        for c in cs:
            batch.plan(c, facts[c.event_id])
            # A large milestone plans thousands of deliveries: let the Kafka heartbeats and
            # the relay run between celebrations rather than stall them for seconds.
            await asyncio.sleep(0)
        created = await repo.commit_fanout(
            spend=batch.spend,
            deliveries=batch.deliveries,
            deferrals=batch.deferrals,
            now=now,
        )
        await announce(repo, created, now=now)
        for d in created:
            bucket = result.delivered if d.state is DeliveryState.DELIVERED else result.reserved
            bucket[d.key.channel.value] += 1
    for c in large:
        assert isinstance(repo, LargeFanOut)
        result.merge(await _celebrate_large(repo, repo, c, data, now=now))
    return result


def _large_messages(c: Celebration, profiles: Mapping[str, Profile]) -> tuple[Message, Message]:
    """A large milestone's two messages: the subject's own, and everyone else's (followers
    and the team channel are told the same thing)."""
    names = {p: profiles[p].name or p for p in c.involved if p in profiles}
    mine = compose(c, Recipient(RecipientKind.PERSON, c.subject), names)
    others = compose(c, Recipient(RecipientKind.TEAM, c.team or ""), names)
    return mine, others


async def reserve_large_sends(
    repo: Repository, cs: Sequence[Celebration], *, now: datetime
) -> tuple[list[Celebration], FanOutResult]:
    """Reserve large milestones' email and webhook sends now, ahead of their in-app fan-out.

    Returns the celebrations to queue for the lane, marked as planned at `now` (the lane
    keeps to the budget, quiet-hours and digest decisions taken here), and what was
    reserved. Without a set-based repository, or when the defaults may send, they are
    queued unplanned and the lane does everything.
    """
    result = FanOutResult()
    if not cs or not isinstance(repo, LargeFanOut):
        return list(cs), result
    profiles = await repo.profiles({p for c in cs for p in c.involved})
    planned = []
    for c in cs:
        c = replace(c, planned_at=now)
        mine, others = _large_messages(c, profiles)
        reserved = await repo.reserve_large_sends(c, mine=mine, others=others, now=now)
        if reserved is None:
            return list(cs), result
        result.reserved.update(reserved)
        planned.append(c)
    return planned, result


async def _celebrate_large(
    repo: Repository, bulk: LargeFanOut, c: Celebration, data: AudienceData, *, now: datetime
) -> FanOutResult:
    mine, others = _large_messages(c, data.profiles)
    r = await bulk.fan_out_large(c, mine=mine, others=others, now=now)
    items = large_announcements(c, r, mine=mine, others=others, at=now)
    if items:
        await repo.announce(items)
    return FanOutResult(
        delivered=Counter(r.delivered),
        reserved=Counter(r.reserved),
        deferred=Counter(r.deferred),
        skipped=r.skipped,
    )


@dataclass
class _Batch:
    """What a batch of celebrations will write, decided one celebration at a time."""

    data: AudienceData
    urls: dict[str, str]
    now: datetime
    used: dict[tuple[str, date], int]  # budget use, including what this batch granted
    result: FanOutResult
    spend: list[tuple[str, date, str]] = field(default_factory=list)
    deliveries: list[NewDelivery] = field(default_factory=list)
    deferrals: list[Deferral] = field(default_factory=list)
    days: dict[str, date] = field(default_factory=dict)  # local day by timezone, at `now`

    def plan(self, c: Celebration, facts: AudienceFacts) -> None:
        profiles, now, result = self.data.profiles, self.now, self.result
        audience = resolve_audience(c, facts, self.data.mutes)
        names = {p: profiles[p].name or p for p in c.involved if p in profiles}
        others: Message | None = None
        for r in audience:
            if r.kind is RecipientKind.TEAM:
                if r.id in self.urls:
                    msg = compose(c, r, names)
                    self.deliveries += _deliveries(
                        c, r, msg, [Channel.WEBHOOK], quiet=False, team=r.id
                    )
                continue
            prof = profiles.get(r.id)
            if prof is None or not prof.active:
                result.skipped += 1
                continue
            plan = plan_for(c.kind, prof, now)
            if plan.mode is Mode.LIVE:
                # Budget: today's use (the person's local day) read with the profiles, plus
                # what this batch granted. Exact within one worker; two workers may each
                # grant the last slot at the same moment (a ping over), the price of never
                # locking budget rows across batches (no waits, no deadlocks).
                tz = prof.effective_timezone
                day = self.days.get(tz) or self.days.setdefault(tz, local_day(now, tz))
                if self.used.get((r.id, day), 0) < prof.preferences.daily_budget:
                    self.used[(r.id, day)] = self.used.get((r.id, day), 0) + 1
                    self.spend.append((r.id, day, c.event_id))
                else:
                    plan = deferred(prof.preferences, DeferReason.BUDGET)
            if r.id == c.subject:
                msg = compose(c, r, names)
            else:  # everyone else is told the same thing: word it once
                others = others or compose(c, r, names)
                msg = others
            if plan.reason is not None:
                result.deferred[plan.reason.value] += 1
            if plan.mode is Mode.DEFERRED:
                assert plan.reason is not None
                self.deferrals.append(Deferral(r.id, c.event_id, plan.reason, msg))
                continue
            channels = live_channels(prof) if plan.mode is Mode.LIVE else [Channel.IN_APP]
            self.deliveries += _deliveries(
                c, r, msg, channels, quiet=plan.mode is Mode.QUIET, team=prof.team
            )


def _deliveries(
    c: Celebration,
    r: Recipient,
    msg: Message,
    channels: list[Channel],
    *,
    quiet: bool,
    team: str | None,
) -> list[NewDelivery]:
    return [
        NewDelivery(
            key=DeliveryKey(c.event_id, r, ch),
            message=msg,
            # In-app delivery is a row in our own database: written now, in this transaction.
            state=DeliveryState.DELIVERED if ch is Channel.IN_APP else DeliveryState.PENDING,
            quiet=quiet,
            team=team,
            trace=c.trace,
        )
        for ch in channels
    ]
