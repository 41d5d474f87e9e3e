"""Kafka entry point: one thin handler that hands each consumed event to the service layer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from thrive_shared.contracts import CelebrationSize, Envelope, MilestoneReached, topics
from thrive_shared.kafka import BatchHandler, RecordMeta
from thrive_shared.kafka.consumer import Handler
from thrive_shared.observability import inject_headers

from thrive_notifier import metrics
from thrive_notifier.adapters.postgres import SQL, PostgresRepository
from thrive_notifier.domain.model import Preferences, TraceContext
from thrive_notifier.service_layer.fanout import FanOutResult
from thrive_notifier.service_layer.handlers import consume

# Wakes delivery workers in other processes (entrypoints.delivery_process listens on it).
NOTIFY_SENDS = SQL.NOTIFY_SENDS

TOPICS = (
    topics.HELP_RECEIVED,
    topics.MILESTONE_REACHED,
    topics.HELP_REQUESTED,
    topics.HELP_OFFERED,
    topics.ASK_STATUS,
    topics.DIRECTORY_PERSON,
)


def queues_large(env: Envelope[Any]) -> bool:
    """True for an event whose celebration goes to the fan-out lane: a large milestone."""
    d = env.data
    return isinstance(d, MilestoneReached) and d.size is CelebrationSize.LARGE


def observe(result: FanOutResult) -> None:
    """Count one fan-out's outcomes."""
    for channel, n in result.delivered.items():
        metrics.DELIVERIES.labels(channel, "delivered").inc(n)
    for reason, n in result.deferred.items():
        metrics.DELIVERIES.labels("in_app", "deferred").inc(n)
        metrics.BUDGET_DEFERRALS.labels(reason).inc(n)
    if result.skipped:
        metrics.DELIVERIES.labels("in_app", "skipped").inc(result.skipped)


def current_trace() -> TraceContext | None:
    """The active span's context, as W3C headers would carry it (None without a trace)."""
    return TraceContext.from_headers(inject_headers())


def trace_of(meta: RecordMeta) -> TraceContext | None:
    """The event's own CONSUMER span context (in a batch, each event keeps its trace).

    With no exporter the span is a no-op one carrying the producer's context: the trace id
    still travels on, and nothing is recorded.
    """
    return TraceContext.from_headers(meta.trace_headers)


def make_handlers(
    *,
    defaults: Preferences,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    queue_large: bool = False,
    sends_first: bool = True,
) -> tuple[Handler, BatchHandler]:
    """The EventConsumer's handlers; both run in the consumer's transaction (with the inbox).

    The batch handler takes every new event of a poll and fans their celebrations out
    together; the single-event one is what the consumer falls back to, event by event, when
    a batch fails (then the bad event is retried or dead-lettered alone). With
    `queue_large`, large milestones go to the fan-out lane (`fanout_loop`) through
    fanout_queue, in the same transaction; with `sends_first` too, their email and webhook
    sends are reserved in it (and go out at its commit).
    """

    async def handle_batch(
        conn: asyncpg.Connection, items: Sequence[tuple[Envelope[Any], RecordMeta]]
    ) -> None:
        repo = PostgresRepository(conn, defaults=defaults)
        result = await consume(
            repo,
            [(env, trace_of(meta)) for env, meta in items],
            now=clock(),
            queue_large=queue_large,
            sends_first=sends_first,
        )
        if result.reserved:
            # Delivered at commit: wakes delivery processes, which have no other way to know.
            await conn.execute(NOTIFY_SENDS)
        observe(result)

    async def handle(conn: asyncpg.Connection, env: Envelope[Any], meta: RecordMeta) -> None:
        await handle_batch(conn, [(env, meta)])

    return handle, handle_batch
