"""Kafka entry point: one thin handler that hands each consumed event to the service layer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from thrive_shared.contracts import Envelope, topics
from thrive_shared.kafka import RecordMeta
from thrive_shared.observability import inject_headers

from thrive_notifier import metrics
from thrive_notifier.adapters.postgres import PostgresRepository
from thrive_notifier.domain.model import Preferences, TraceContext
from thrive_notifier.service_layer.fanout import FanOutResult
from thrive_notifier.service_layer.handlers import handle_event

TOPICS = (
    topics.HELP_RECEIVED,
    topics.MILESTONE_REACHED,
    topics.HELP_REQUESTED,
    topics.HELP_OFFERED,
    topics.ASK_STATUS,
    topics.DIRECTORY_PERSON,
)


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
    """The active span's context (the event's CONSUMER span), for deliveries to continue.

    With no exporter the span is a no-op one carrying the producer's context: the trace id
    still travels on, and nothing is recorded.
    """
    return TraceContext.from_headers(inject_headers())


def make_handler(
    *,
    defaults: Preferences,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[asyncpg.Connection, Envelope[Any], RecordMeta], Any]:
    """The EventConsumer handler: runs inside the consumer's transaction (with its inbox row)."""

    async def handle(conn: asyncpg.Connection, env: Envelope[Any], meta: RecordMeta) -> None:
        repo = PostgresRepository(conn, defaults=defaults)
        observe(await handle_event(repo, env, now=clock(), trace=current_trace()))

    return handle
