"""Transactional outbox: events written with the business change, relayed to Kafka after commit.

`enqueue` inserts into the service's `outbox` table inside the caller's transaction and
NOTIFYs the relay (delivered only if that transaction commits). The relay takes rows in
id order under an advisory lock (one relay per schema at a time, so order per key holds
even with several replicas), produces them with acks=all + idempotence, waits for every
acknowledgement, then deletes them. A crash between produce and delete re-sends those rows;
consumers deduplicate on (source, id), so the effect stays exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections import Counter
from typing import Any

import asyncpg
from opentelemetry import trace

from thrive_shared.contracts import Envelope
from thrive_shared.contracts.topics import physical
from thrive_shared.kafka.producer import OutgoingRecord, Publisher
from thrive_shared.observability import context_from_headers, inject_headers, metrics
from thrive_shared.observability.tracing import exporting

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("thrive.outbox")

CHANNEL = "thrive_outbox"

# Insert and wake the relay in one round trip (the NOTIFY is delivered at commit).
_INSERT = """
WITH ins AS (
    INSERT INTO outbox (topic, key, event_id, event_type, payload, headers)
    VALUES ($1, $2, $3, $4, $5, $6)
)
SELECT pg_notify('thrive_outbox', '')
"""
# Every row of one call shares the caller's trace context: one jsonb value, parsed once.
_INSERT_MANY = """
WITH ins AS (
    INSERT INTO outbox (topic, key, event_id, event_type, payload, headers)
    SELECT t, k, i, e, p, $6::jsonb
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[]) AS u(t, k, i, e, p)
)
SELECT pg_notify('thrive_outbox', '')
"""
# Events a caller rendered itself (one topic and type), each with its own trace context.
_INSERT_RENDERED = """
WITH ins AS (
    INSERT INTO outbox (topic, key, event_id, event_type, payload, headers)
    SELECT $1, u.k, u.i, $2, u.p,
           jsonb_strip_nulls(jsonb_build_object('traceparent', u.tp, 'tracestate', u.ts))
    FROM unnest($3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[])
        AS u(k, i, p, tp, ts)
)
SELECT pg_notify('thrive_outbox', '')
"""
_TAKE = """
SELECT id, topic, key, event_id, event_type, payload, headers FROM outbox ORDER BY id LIMIT $1
"""
_DELETE_UPTO = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
_STATS = "SELECT count(*) AS n, min(created_at) AS oldest, now() AS now FROM outbox"


def _row(envelope: Envelope[Any], topic: str | None, key: str | None) -> tuple[Any, ...]:
    return (
        topic or physical(envelope.data.TOPIC),
        key or envelope.subject,
        envelope.id,
        envelope.type,
        envelope.to_json(),
    )


def record_headers(
    *, event_id: str, event_type: str, stored: dict[str, str] | None
) -> dict[str, str]:
    """A relayed record's headers: the event's id and type, then the stored trace context.

    The id and type come from their own columns (rows written before this version also
    carry them in `headers`, with the same values).
    """
    headers = {"ce-id": event_id, "ce-type": event_type}
    if stored:
        headers.update(stored)
    return headers


async def enqueue(
    conn: asyncpg.Connection,
    envelope: Envelope[Any],
    *,
    topic: str | None = None,
    key: str | None = None,
) -> None:
    """Add an event to the outbox in the caller's transaction (the trace context goes along)."""
    await conn.execute(_INSERT, *_row(envelope, topic, key), inject_headers())


async def enqueue_many(conn: asyncpg.Connection, envelopes: list[Envelope[Any]]) -> None:
    """Add several events in one round trip, in order (the trace context goes along)."""
    await enqueue_rows(conn, outbox_rows(envelopes))


def outbox_rows(envelopes: list[Envelope[Any]]) -> list[tuple[Any, ...]]:
    """Envelopes serialised as outbox rows (to render them ahead of `enqueue_rows`)."""
    return [_row(e, None, None) for e in envelopes]


async def enqueue_rows(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Add rows made by `outbox_rows` in one round trip, in order, with the trace context."""
    if not rows:
        return
    # One trace context for the whole call: it is the caller's, the same for every row.
    await conn.execute(
        _INSERT_MANY, *[list(col) for col in zip(*rows, strict=True)], inject_headers()
    )


async def enqueue_rendered(
    conn: asyncpg.Connection,
    *,
    topic: str,
    event_type: str,
    keys: list[str | None],
    event_ids: list[str],
    payloads: list[bytes],
    traceparents: list[str | None],
    tracestates: list[str | None],
) -> None:
    """Add events already rendered as contract JSON (one physical topic and type) in one
    round trip, in order, each with its own W3C trace context (None: no trace)."""
    if not event_ids:
        return
    await conn.execute(
        _INSERT_RENDERED, topic, event_type, keys, event_ids, payloads, traceparents, tracestates
    )


class OutboxRelay:
    """Moves outbox rows to Kafka, in order, as soon as they are committed."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        publisher: Publisher,
        service: str,
        schema: str,
        batch_size: int = 1000,
        idle_poll: float = 1.0,
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.service = service
        self.schema = schema
        self.batch_size = batch_size
        self.idle_poll = idle_poll
        self.published = 0
        self._stats_at = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        # One relay per schema cluster-wide; a stable 64-bit key from the schema name.
        self._lock_key = zlib.crc32(f"thrive-outbox:{schema}".encode())

    async def start(self) -> None:
        """Start relaying in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        """Stop relaying (rows not yet relayed stay in the table for next time)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_listener()

    def wake(self) -> None:
        """Relay now rather than at the next poll."""
        self._wake.set()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        if self._listener is not None:
            conn, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await conn.remove_listener(CHANNEL, self._on_notify)
            with contextlib.suppress(Exception):
                await self.pool.release(conn)

    async def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.is_closed():
            conn = await self.pool.acquire()
            await conn.add_listener(CHANNEL, self._on_notify)
            self._listener = conn

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self._ensure_listener()
                # Clear before relaying: a NOTIFY arriving while we relay must wake us again.
                self._wake.clear()
                moved = await self.relay_once()
                backoff = 0.2
                if moved < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.idle_poll)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay failed; retrying", exc_info=True)
                await self._close_listener()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def relay_once(self) -> int:
        """Relay one batch of rows; return how many were published."""
        async with self.pool.acquire() as conn, conn.transaction():
            got = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_key)
            if not got:
                return 0  # another replica is relaying this schema
            rows = await conn.fetch(_TAKE, self.batch_size)
            if rows:
                if exporting():
                    records, spans = self._traced_records(rows)
                else:
                    # No span would be recorded: the stored context travels on as it is
                    # (what a non-recording span under it would inject anyway).
                    spans = []
                    records = [
                        OutgoingRecord(
                            topic=r["topic"],
                            key=r["key"],
                            value=bytes(r["payload"]),
                            headers=record_headers(
                                event_id=r["event_id"],
                                event_type=r["event_type"],
                                stored=r["headers"],
                            ),
                        )
                        for r in rows
                    ]
                try:
                    await self.publisher.send_all(records)
                finally:
                    for span in spans:
                        span.end()
                await conn.execute(_DELETE_UPTO, [r["id"] for r in rows])
                produced = Counter((r["topic"], r["event_type"]) for r in rows)
                for (topic, event_type), n in produced.items():
                    metrics.EVENTS_PRODUCED.labels(self.service, topic, event_type).inc(n)
                self.published += len(rows)
            # The backlog gauges need a count(*): refresh them every couple of seconds.
            now = time.monotonic()
            if now - self._stats_at >= 2.0 or not rows:
                self._stats_at = now
                stats = await conn.fetchrow(_STATS)
                metrics.OUTBOX_BACKLOG.labels(self.service).set(stats["n"])
                age = (stats["now"] - stats["oldest"]).total_seconds() if stats["oldest"] else 0.0
                metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(max(0.0, age))
        return len(rows)

    def _traced_records(
        self, rows: list[asyncpg.Record]
    ) -> tuple[list[OutgoingRecord], list[trace.Span]]:
        records = []
        spans = []
        for r in rows:
            headers = record_headers(
                event_id=r["event_id"], event_type=r["event_type"], stored=r["headers"]
            )
            # The publish span is a child of the transaction that wrote the row; its
            # own context travels on, so consumers continue the same trace.
            span = _tracer.start_span(
                f"{r['topic']} publish",
                context=context_from_headers(headers),
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": r["topic"],
                    "messaging.message.id": r["event_id"],
                },
            )
            headers.update(inject_headers(context=trace.set_span_in_context(span)))
            spans.append(span)
            records.append(
                OutgoingRecord(
                    topic=r["topic"], key=r["key"], value=bytes(r["payload"]), headers=headers
                )
            )
        return records, spans


async def wait_until_empty(pool: asyncpg.Pool, *, deadline_s: float = 10.0) -> None:
    """Wait until every outbox row was relayed (for tests and graceful shutdown)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        async with pool.acquire() as conn:
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox)"):
                return
        await asyncio.sleep(0.02)
    raise TimeoutError("outbox not drained in time")
