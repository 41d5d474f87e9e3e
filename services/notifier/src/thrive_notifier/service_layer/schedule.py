"""Scheduled work: digests for what was deferred, and one quiet reminder for unthanked help."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from thrive_notifier.domain.attention import digest_due, live_channels, local_day
from thrive_notifier.domain.digest import assemble
from thrive_notifier.domain.model import (
    Celebration,
    Channel,
    DeliveryKey,
    DeliveryState,
    Kind,
    Recipient,
    RecipientKind,
)
from thrive_notifier.service_layer.fanout import FanOutResult, celebrate_many, write_deliveries
from thrive_notifier.service_layer.ports import NewDelivery, UnitOfWork


@dataclass(slots=True)
class DigestReport:
    sent: int = 0
    sizes: list[int] = field(default_factory=list)


async def send_digests(
    uow: UnitOfWork,
    *,
    clock: Callable[[], datetime],
    force: bool = False,
    batch: int = 200,
) -> DigestReport:
    """Assemble and deliver every due digest once; `force` ignores the person's schedule."""
    report = DigestReport()
    async with uow() as repo:
        people = await repo.digest_candidates(limit=batch)
    for person in people:
        async with uow() as repo:
            now = clock()
            prof = (await repo.profiles([person])).get(person)
            if prof is None:
                continue
            if not force and not digest_due(prof, now, await repo.last_digest_day(person)):
                continue
            entries = await repo.take_digest_entries(person)
            if not entries:
                continue
            digest = assemble(entries)
            day = local_day(now, prof.effective_timezone)
            digest_id = await repo.create_digest(
                person, local_day=day, item_ids=[e.item_id for e in entries]
            )
            about = f"digest:{digest_id}"
            msg = digest.message(about=about)
            channels = [c for c in live_channels(prof) if c in (Channel.IN_APP, Channel.EMAIL)]
            deliveries = [
                NewDelivery(
                    key=DeliveryKey(about, Recipient(RecipientKind.PERSON, person), ch),
                    message=msg,
                    state=DeliveryState.DELIVERED
                    if ch is Channel.IN_APP
                    else DeliveryState.PENDING,
                    team=prof.team,
                )
                for ch in channels
            ]
            await write_deliveries(repo, deliveries, now=now)
            report.sent += 1
            report.sizes.append(digest.size)
    return report


async def send_reminders(
    uow: UnitOfWork,
    *,
    clock: Callable[[], datetime],
    after: timedelta,
    batch: int = 200,
) -> FanOutResult:
    """One quiet reminder to each asker whose resolved ask is still unthanked after `after`."""
    total = FanOutResult()
    now = clock()
    async with uow() as repo:
        due = await repo.due_reminders(resolved_before=now - after, limit=batch)
        reminders = [
            Celebration(
                event_id=f"reminder:{r.ask_id}",
                kind=Kind.REMINDER,
                subject=r.asker,
                actor=r.helper,
                title=r.title,
                occurred_at=now,
            )
            for r in due
        ]
        total.merge(await celebrate_many(repo, reminders, now=now))
        for r in due:
            await repo.mark_reminded(r.ask_id, now)
    return total


async def fan_out_pending(
    uow: UnitOfWork, *, clock: Callable[[], datetime], limit: int = 500
) -> tuple[int, FanOutResult]:
    """Take up to `limit` queued celebrations and fan them out, in one transaction."""
    async with uow() as repo:
        cs = await repo.take_celebrations(limit=limit)
        result = await celebrate_many(repo, cs, now=clock())
        if result.reserved:
            await repo.wake_senders()
        return len(cs), result
