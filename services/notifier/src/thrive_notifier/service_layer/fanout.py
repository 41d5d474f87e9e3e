"""Fan a celebration out: audience, mutes, attention budget, then the ledger, inbox and digest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from thrive_shared.contracts import CelebrationDelivered, Envelope

from thrive_notifier.domain.attention import (
    DeferReason,
    Mode,
    Plan,
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
    Recipient,
    RecipientKind,
)
from thrive_notifier.service_layer.ports import Deferral, NewDelivery, Repository

SOURCE = "thrive/notifier"


@dataclass(slots=True)
class FanOutResult:
    """What one fan-out did, for metrics and tests."""

    delivered: Counter[str] = field(default_factory=Counter)  # in-app, by channel
    reserved: Counter[str] = field(default_factory=Counter)  # email/webhook pending, by channel
    deferred: Counter[str] = field(default_factory=Counter)  # by reason
    skipped: int = 0  # erased or inactive recipients

    def merge(self, other: FanOutResult) -> None:
        self.delivered.update(other.delivered)
        self.reserved.update(other.reserved)
        self.deferred.update(other.deferred)
        self.skipped += other.skipped


_DELIVERED_ENVELOPE = Envelope[CelebrationDelivered]


def delivered_envelope(d: NewDelivery, *, at: datetime) -> Envelope[CelebrationDelivered] | None:
    """The CelebrationDelivered event for an in-app delivery the gateway should push.

    Built without re-validation: one per delivery is the hot path of a fan-out, and every
    field comes from values already validated (tests parse the result back as a contract).
    """
    if d.key.channel is not Channel.IN_APP or d.quiet:
        return None
    key = d.key.idempotency_key
    fact = CelebrationDelivered.model_construct(
        delivery_id=key,
        recipient=d.key.recipient.id,
        team=d.team,
        channel=d.key.channel,
        about=d.key.event_id,
        kind=d.message.kind.value,
        title=d.message.title[:300],
        themes=list(d.message.themes),
        delivered_at=at,
    )
    return _DELIVERED_ENVELOPE.model_construct(
        specversion="1.0",
        id=f"delivered:{key}",
        source=SOURCE,
        type=CelebrationDelivered.TYPE,
        time=at,
        subject=d.key.recipient.id,
        datacontenttype="application/json",
        schemaversion=CelebrationDelivered.SCHEMA_VERSION,
        data=fact,
    )


async def write_deliveries(
    repo: Repository, deliveries: list[NewDelivery], *, now: datetime
) -> list[tuple[NewDelivery, int]]:
    """Reserve ledger rows and announce new in-app deliveries through the outbox."""
    if not deliveries:
        return []
    created = await repo.reserve(deliveries, now=now)
    await announce(repo, created, now=now)
    return created


async def announce(
    repo: Repository, created: list[tuple[NewDelivery, int]], *, now: datetime
) -> None:
    """Publish CelebrationDelivered for new, non-quiet in-app deliveries (via the outbox)."""
    envelopes = [e for d, _id in created if (e := delivered_envelope(d, at=now)) is not None]
    if envelopes:
        await repo.publish(envelopes)


async def celebrate(repo: Repository, c: Celebration, *, now: datetime) -> FanOutResult:
    """Deliver one celebration to its audience, live where attention allows, else to digests."""
    result = FanOutResult()
    query = audience_query(c)
    facts = AudienceFacts() if query.is_empty else await repo.audience_facts(query)
    cands = candidates(c, facts)
    wanted = {r.id for r in cands if r.kind is RecipientKind.PERSON} | c.involved
    data = await repo.audience_data(wanted, c, now=now)
    profiles = data.profiles
    audience = resolve_audience(c, facts, data.mutes)
    people = [r for r in audience if r.kind is RecipientKind.PERSON]
    teams = [r for r in audience if r.kind is RecipientKind.TEAM]
    names = {p: prof.name for p, prof in profiles.items() if prof.name}

    plans: dict[str, Plan] = {}
    for r in people:
        prof = profiles.get(r.id)
        if prof is None or not prof.active:
            result.skipped += 1
            continue
        plans[r.id] = plan_for(c.kind, prof, now)

    # Budget: what this person already had today (their local day), read above with the
    # profiles. Exact within one consumer; consumers on other partitions may each grant the
    # last slot at the same moment (a ping over), the price of never locking budget rows
    # across whole batches (no waits, no deadlocks).
    spend: list[tuple[str, date]] = []
    for p, plan in plans.items():
        if plan.mode is not Mode.LIVE:
            continue
        prefs = profiles[p].preferences
        day = local_day(now, profiles[p].effective_timezone)
        if data.used.get((p, day), 0) < prefs.daily_budget:
            spend.append((p, day))
        else:
            plans[p] = deferred(prefs, DeferReason.BUDGET)

    deliveries: list[NewDelivery] = []
    deferrals: list[Deferral] = []
    others: Message | None = None
    for r in people:
        maybe = plans.get(r.id)
        if maybe is None:
            continue
        plan, prof = maybe, profiles[r.id]
        if r.id == c.subject:
            msg = compose(c, r, names)
        else:  # everyone else is told the same thing: word it once
            others = others or compose(c, r, names)
            msg = others
        if plan.mode is Mode.DEFERRED:
            assert plan.reason is not None
            deferrals.append(Deferral(r.id, c.event_id, plan.reason, msg))
            result.deferred[plan.reason.value] += 1
            continue
        if plan.reason is not None:
            result.deferred[plan.reason.value] += 1
        channels = live_channels(prof) if plan.mode is Mode.LIVE else [Channel.IN_APP]
        deliveries += _deliveries(
            c, r, msg, channels, quiet=plan.mode is Mode.QUIET, team=prof.team
        )

    if teams:
        urls = await repo.team_channels(t.id for t in teams)
        for t in teams:
            if t.id in urls:
                deliveries += _deliveries(
                    c, t, compose(c, t, names), [Channel.WEBHOOK], quiet=False, team=t.id
                )

    created = await repo.commit_fanout(
        event_id=c.event_id, spend=spend, deliveries=deliveries, deferrals=deferrals, now=now
    )
    await announce(repo, created, now=now)
    for d, _id in created:
        bucket = result.delivered if d.state is DeliveryState.DELIVERED else result.reserved
        bucket[d.key.channel.value] += 1
    return result


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
        )
        for ch in channels
    ]
