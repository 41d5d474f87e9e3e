"""Background loops run by the service: the delivery worker and the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from thrive_notifier import metrics
from thrive_notifier.domain.model import Channel
from thrive_notifier.domain.retry import RetryPolicy
from thrive_notifier.entrypoints.kafka import observe
from thrive_notifier.service_layer.delivery import BatchReport, deliver_batch
from thrive_notifier.service_layer.ports import Sender, UnitOfWork
from thrive_notifier.service_layer.schedule import fan_out_pending, send_digests, send_reminders
from thrive_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def observe_batch(report: BatchReport) -> None:
    """Count a worker batch's outcomes."""
    for channel, states in report.outcomes.items():
        for state, n in states.items():
            metrics.DELIVERIES.labels(channel, state).inc(n)
    for channel, n in report.retries.items():
        metrics.DELIVERY_RETRIES.labels(channel).inc(n)


async def delivery_loop(
    uow: UnitOfWork,
    senders: Mapping[Channel, Sender],
    *,
    policy: RetryPolicy,
    batch_size: int,
    concurrency: int,
    lease_seconds: float,
    poll_seconds: float,
    clock: Callable[[], datetime] = utcnow,
    wake: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    observe: Callable[[BatchReport], None] = observe_batch,
) -> None:
    """Send due deliveries until `stop` is set (forever without one); when idle, wait to be
    woken (a commit reserved sends) or for `poll_seconds` (retries come due by the clock).
    A batch in hand is always finished: its sends are recorded before the loop returns."""
    wake = wake or asyncio.Event()
    while stop is None or not stop.is_set():
        wake.clear()
        report = await deliver_batch(
            uow,
            senders,
            policy=policy,
            limit=batch_size,
            lease_seconds=lease_seconds,
            concurrency=concurrency,
            clock=clock,
        )
        observe(report)
        if report.claimed < batch_size and (stop is None or not stop.is_set()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_seconds)


async def configured_delivery_loop(
    uow: UnitOfWork,
    senders: Mapping[Channel, Sender],
    settings: NotifierSettings,
    *,
    wake: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    observe: Callable[[BatchReport], None] = observe_batch,
) -> None:
    """`delivery_loop` with the batch, concurrency, lease and retry settings of `settings`
    (the serving process and the delivery processes run the same loop)."""
    await delivery_loop(
        uow,
        senders,
        policy=settings.retry_policy(),
        batch_size=settings.delivery_batch_size,
        concurrency=settings.delivery_concurrency,
        lease_seconds=settings.delivery_lease_seconds,
        poll_seconds=settings.delivery_poll_seconds,
        wake=wake,
        stop=stop,
        observe=observe,
    )


async def fanout_loop(
    uow: UnitOfWork,
    *,
    wake: asyncio.Event,
    batch_size: int,
    idle_seconds: float,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Fan out queued celebrations in batches; between batches wait to be woken by the consumer."""
    while True:
        wake.clear()
        taken, result = await fan_out_pending(uow, clock=clock, limit=batch_size)
        observe(result)
        if taken < batch_size:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), idle_seconds)


async def scheduler_loop(
    uow: UnitOfWork,
    *,
    interval_seconds: float,
    reminder_after: timedelta,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Every interval: due digests, unthanked-help reminders, parked gauge, budget pruning."""
    while True:
        await run_schedule_once(uow, reminder_after=reminder_after, clock=clock)
        await asyncio.sleep(interval_seconds)


async def run_schedule_once(
    uow: UnitOfWork, *, reminder_after: timedelta, clock: Callable[[], datetime] = utcnow
) -> None:
    """One round of scheduled work (also used by the CLI)."""
    digests = await send_digests(uow, clock=clock)
    for size in digests.sizes:
        metrics.DIGEST_SIZE.observe(size)
    metrics.DELIVERIES.labels("in_app", "delivered").inc(digests.sent)
    observe(await send_reminders(uow, clock=clock, after=reminder_after))
    async with uow() as repo:
        parked = await repo.parked_count()
        await repo.prune_budget((clock() - timedelta(days=3)).date())
    for channel in Channel:
        metrics.DELIVERIES_PARKED.labels(channel.value).set(parked.get(channel.value, 0))
