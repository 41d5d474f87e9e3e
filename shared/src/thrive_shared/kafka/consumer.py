"""Consuming events with effects exactly once in Postgres.

A batch is applied in one database transaction; each event first claims its
(consumer, source, id) row in the inbox, so a redelivered event has no second effect.
Offsets are committed only after that transaction commits (faststream's NACK_ON_ERROR:
ack after the handler returns, rewind the batch if it raises). Records that cannot be
applied — undecodable, invalid, rejected, or failing every attempt — go to the DLQ with
the reason, and the rest of the partition goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import asyncpg
from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from opentelemetry import trace

from thrive_shared.contracts import Envelope, InvalidEvent, parse_for_topic
from thrive_shared.contracts.envelope import Tombstone
from thrive_shared.kafka.dlq import DeadLetters, Failure
from thrive_shared.observability import context_from_headers, inject_headers, metrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer("thrive.kafka")

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


class Reject(Exception):
    """Raised by a handler: this event can never be applied; dead-letter it with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Errors meaning "the database or network is away", not "this event is bad": the whole
# batch is rewound and retried later, nothing is dead-lettered.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


class _Transient(Exception):
    """Marks an error as "the connection went away" so the batch is retried, not dead-lettered."""


_RETRY_BATCH: tuple[type[BaseException], ...] = (_Transient, *TRANSIENT_ERRORS)


def _raise_if_transient(exc: BaseException) -> None:
    # asyncpg raises InterfaceError both for a closed connection and for programming bugs
    # (wrong argument count...): only the former is worth retrying forever.
    if isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc).lower():
        raise _Transient(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class RecordMeta:
    """Where an event came from on Kafka."""

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int
    headers: dict[str, str] = field(default_factory=dict)
    # W3C headers (traceparent, tracestate) of this event's CONSUMER span, so work a handler
    # defers (a queued send, a retry) can continue the event's trace later. Empty when there
    # is no trace. In a batch handler the current span links several events: use this.
    trace_headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[asyncpg.Connection, Envelope[Any], RecordMeta], Awaitable[None]]
BatchHandler = Callable[
    [asyncpg.Connection, Sequence[tuple[Envelope[Any], RecordMeta]]], Awaitable[None]
]
AfterCommit = Callable[[Sequence[tuple[Envelope[Any], RecordMeta]]], Awaitable[None]]

_CLAIM = """
INSERT INTO inbox (consumer, source, event_id, topic)
SELECT $1, s, i, t FROM unnest($2::text[], $3::text[], $4::text[]) AS u(s, i, t)
ON CONFLICT DO NOTHING
RETURNING source, event_id
"""
_CLAIM_ONE = """
INSERT INTO inbox (consumer, source, event_id, topic) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING RETURNING 1
"""


async def claim_inbox(
    conn: asyncpg.Connection, consumer: str, events: Sequence[tuple[str, Envelope[Any]]]
) -> set[tuple[str, str]]:
    """Claim (consumer, source, id) for each (topic, event); return the keys not seen before.

    Call inside the transaction that applies the events: the claim commits with the effect.
    """
    rows = await conn.fetch(
        _CLAIM,
        consumer,
        [e.source for _, e in events],
        [e.id for _, e in events],
        [topic for topic, _ in events],
    )
    return {(row["source"], row["event_id"]) for row in rows}


class _SlowPath(Exception):
    """The fast path met a failing event: redo the batch one savepoint per event."""


def _meta(rec: Record, span: trace.Span | None = None) -> RecordMeta:
    return RecordMeta(
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        key=rec.key.decode("utf-8", "replace") if rec.key else None,
        timestamp_ms=rec.timestamp,
        headers={k: (v or b"").decode("utf-8", "replace") for k, v in (rec.headers or ())},
        trace_headers=_span_headers(span) if span is not None else {},
    )


def _span_headers(span: trace.Span) -> dict[str, str]:
    """The span's context as W3C headers (nothing to inject when there is no trace)."""
    if not span.get_span_context().is_valid:
        return {}
    return inject_headers(context=trace.set_span_in_context(span))


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit what was applied on partitions being taken away, before another member gets them.

    A rebalance can fail the ack's commit mid-batch (CommitFailedError, aiokafka#929);
    committing per partition here narrows redelivery, and the inbox absorbs the rest.
    """

    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        done = self.owner._applied_offsets
        offsets = {tp: done[tp] for tp in revoked if tp in done}
        consumer = getattr(self.owner._subscriber, "consumer", None)
        if consumer is not None and offsets:
            try:
                await consumer.commit(offsets)
            except Exception as exc:  # the group may already have moved on
                log.info(
                    "commit on revoke failed; inbox absorbs redelivery", extra={"err": str(exc)}
                )
        for tp in revoked:
            done.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class EventConsumer:
    """Applies batches of events to Postgres through `handler`, once each."""

    def __init__(
        self,
        *,
        service: str,
        name: str,
        topics: Sequence[str],
        handler: Handler,
        pool: asyncpg.Pool,
        dead_letters: DeadLetters,
        group_id: str | None = None,
        max_records: int = 500,
        max_attempts: int = 3,
        auto_offset_reset: Literal["latest", "earliest", "none"] = "earliest",
        after_commit: AfterCommit | None = None,
        retry_backoff: float = 1.0,
        batch_handler: BatchHandler | None = None,
        batch_timeout_ms: int = 20,
    ) -> None:
        self.service = service
        self.name = name
        self.group_id = group_id or f"thrive-{service}.{name}"
        self.topics = list(topics)
        self.handler = handler
        self.pool = pool
        self.dead_letters = dead_letters
        self.max_records = max_records
        self.max_attempts = max_attempts
        self.auto_offset_reset = auto_offset_reset
        self.after_commit = after_commit
        self.retry_backoff = retry_backoff
        self.batch_handler = batch_handler
        # How long a poll waits for records; faststream also sleeps this long after an empty
        # poll, so it bounds the latency an idle consumer adds.
        self.batch_timeout_ms = batch_timeout_ms
        self.batches = 0
        self._subscriber: Any = None
        self._applied_offsets: dict[TopicPartition, int] = {}

    def register(self, broker: KafkaBroker) -> Any:
        """Attach a batch subscriber for this consumer to `broker`."""

        async def raw(msg: Any) -> Any:
            # Keep the ConsumerRecords: decoding is ours, so a bad record never reaches
            # faststream's JSON decoder (which would fail the whole batch, forever).
            return msg.raw_message

        subscriber = broker.subscriber(
            *self.topics,
            batch=True,
            group_id=self.group_id,
            auto_offset_reset=self.auto_offset_reset,
            max_records=self.max_records,
            batch_timeout_ms=self.batch_timeout_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=raw,
            listener=_CommitOnRevoke(self),
            title=f"{self.service}.{self.name}",
        )
        self._subscriber = subscriber

        async def on_batch(records: Any, message: KafkaMessage) -> None:
            recs: tuple[Record, ...] = message.raw_message
            await self.process_batch(recs)
            self._record_lag(message, recs)

        # faststream reads the handler's signature; `message` is its Context name.
        from faststream import Context

        async def handler(records: Any, message: KafkaMessage = Context("message")) -> None:  # noqa: B008
            await on_batch(records, message)

        subscriber(handler)
        return subscriber

    def _record_lag(self, message: KafkaMessage, recs: Sequence[Record]) -> None:
        consumer = getattr(message, "consumer", None)
        if consumer is None or not hasattr(consumer, "highwater"):
            return
        last: dict[tuple[str, int], int] = {}
        for r in recs:
            last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)
        for (topic, partition), offset in last.items():
            try:
                high = consumer.highwater(TopicPartition(topic, partition))
            except Exception:  # assignment may have just changed
                log.debug("no highwater for %s[%s]", topic, partition)
                continue
            if high is not None:
                metrics.CONSUMER_LAG.labels(self.service, topic, str(partition)).set(
                    max(0, high - offset - 1)
                )

    async def process_batch(self, records: Sequence[Record]) -> None:
        """Apply a batch; return only once its effects are committed and its failures dead-lettered.

        Raises on transient trouble (database away): the caller rewinds and retries the batch.
        """
        if not records:
            return
        started = time.perf_counter()
        failures: list[Failure] = []
        events: list[tuple[Record, Envelope[Any]]] = []
        for rec in records:
            try:
                events.append((rec, parse_for_topic(rec.topic, rec.value)))
            except Tombstone:
                # Compaction markers on directory.person.v1: nothing to apply, nothing wrong.
                metrics.EVENTS_CONSUMED.labels(
                    self.service, rec.topic, "tombstone", "skipped"
                ).inc()
            except InvalidEvent as exc:
                failures.append(Failure(rec, "InvalidEvent", exc.reason, 1))
                metrics.EVENTS_CONSUMED.labels(
                    self.service, rec.topic, "unknown", "dead_lettered"
                ).inc()
        applied: list[tuple[Envelope[Any], RecordMeta]] = []
        if events:
            try:
                applied = await self._fast_path(events)
            except _SlowPath:
                applied, slow_failures = await self._slow_path(events)
                failures.extend(slow_failures)
            except _RETRY_BATCH:
                log.warning("database unavailable; batch will be retried", exc_info=True)
                await asyncio.sleep(self.retry_backoff)
                raise
        # After the DB commit and before the offset commit: a crash here redelivers the batch,
        # the inbox absorbs the applied events, and failures are dead-lettered again.
        await self.dead_letters.send(failures, consumer=self.group_id)
        self.batches += 1
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            self._applied_offsets[tp] = max(self._applied_offsets.get(tp, 0), rec.offset + 1)
        elapsed = time.perf_counter() - started
        for topic in {r.topic for r in records}:
            metrics.HANDLER_DURATION.labels(self.service, topic).observe(elapsed)
        if applied and self.after_commit is not None:
            try:
                await self.after_commit(applied)
            except Exception:  # after-commit hooks refresh caches; never lose the batch for them
                log.exception("after-commit hook failed")

    async def _claim(
        self, conn: asyncpg.Connection, events: Sequence[tuple[Record, Envelope[Any]]]
    ) -> set[tuple[str, str]]:
        return await claim_inbox(conn, self.name, [(r.topic, e) for r, e in events])

    async def _fast_path(
        self, events: Sequence[tuple[Record, Envelope[Any]]]
    ) -> list[tuple[Envelope[Any], RecordMeta]]:
        applied: list[tuple[Envelope[Any], RecordMeta]] = []
        outcomes: list[tuple[str, str, str]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await self._claim(conn, events)
            if self.batch_handler is not None:
                return await self._apply_batch(conn, events, fresh)
            for rec, env in events:
                key = (env.source, env.id)
                if key not in fresh:
                    outcomes.append((rec.topic, env.type, "duplicate"))
                    continue
                fresh.discard(key)  # a second copy in the same batch is a duplicate too
                with tracer.start_as_current_span(
                    f"{rec.topic} process",
                    context=context_from_headers(rec.headers),
                    kind=trace.SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": rec.topic,
                        "messaging.kafka.partition": rec.partition,
                        "messaging.kafka.offset": rec.offset,
                        "messaging.message.id": env.id,
                        "thrive.consumer": self.name,
                    },
                ) as span:
                    meta = _meta(rec, span)
                    try:
                        await self.handler(conn, env, meta)
                    except TRANSIENT_ERRORS:
                        raise
                    except Exception as exc:
                        _raise_if_transient(exc)
                        raise _SlowPath from exc
                applied.append((env, meta))
                outcomes.append((rec.topic, env.type, "ok"))
        for topic, etype, outcome in outcomes:
            metrics.EVENTS_CONSUMED.labels(self.service, topic, etype, outcome).inc()
        return applied

    async def _apply_batch(
        self,
        conn: asyncpg.Connection,
        events: Sequence[tuple[Record, Envelope[Any]]],
        fresh: set[tuple[str, str]],
    ) -> list[tuple[Envelope[Any], RecordMeta]]:
        """Hand every new event to the batch handler at once (set-based SQL in one go)."""
        assert self.batch_handler is not None
        todo: list[tuple[Envelope[Any], RecordMeta]] = []
        outcomes: list[tuple[str, str, str]] = []
        spans: list[trace.Span] = []
        for rec, env in events:
            key = (env.source, env.id)
            if key not in fresh:
                outcomes.append((rec.topic, env.type, "duplicate"))
                continue
            fresh.discard(key)
            outcomes.append((rec.topic, env.type, "ok"))
            # Each event keeps its own trace: a CONSUMER span under the producer's context,
            # spanning the batch that applied it.
            span = tracer.start_span(
                f"{rec.topic} process",
                context=context_from_headers(rec.headers),
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": rec.topic,
                    "messaging.message.id": env.id,
                    "messaging.batch.message_count": len(events),
                    "thrive.consumer": self.name,
                },
            )
            spans.append(span)
            todo.append((env, _meta(rec, span)))
        if todo:
            # With one event, its span is current (its SQL joins its trace); with several,
            # a batch span links them all.
            current = (
                spans[0]
                if len(spans) == 1
                else tracer.start_span(
                    f"{self.name} process batch",
                    kind=trace.SpanKind.INTERNAL,
                    links=[trace.Link(sp.get_span_context()) for sp in spans[:128]],
                    attributes={"messaging.batch.message_count": len(todo)},
                )
            )
            try:
                with trace.use_span(current, end_on_exit=False):
                    await self.batch_handler(conn, todo)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                _raise_if_transient(exc)
                raise _SlowPath from exc
            finally:
                if current not in spans:
                    current.end()
                for sp in spans:
                    sp.end()
        for topic, etype, outcome in outcomes:
            metrics.EVENTS_CONSUMED.labels(self.service, topic, etype, outcome).inc()
        return todo

    async def _slow_path(
        self, events: Sequence[tuple[Record, Envelope[Any]]]
    ) -> tuple[list[tuple[Envelope[Any], RecordMeta]], list[Failure]]:
        applied: list[tuple[Envelope[Any], RecordMeta]] = []
        failures: list[Failure] = []
        outcomes: list[tuple[str, str, str]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for rec, env in events:
                meta = _meta(rec)  # with this attempt's span below, once the event is claimed
                attempts = 0
                while True:
                    attempts += 1
                    try:
                        async with conn.transaction():  # a savepoint per attempt
                            claimed = await conn.fetchval(
                                _CLAIM_ONE, self.name, env.source, env.id, rec.topic
                            )
                            if not claimed:
                                outcomes.append((rec.topic, env.type, "duplicate"))
                                break
                            with tracer.start_as_current_span(
                                f"{rec.topic} process",
                                context=context_from_headers(rec.headers),
                                kind=trace.SpanKind.CONSUMER,
                                attributes={
                                    "messaging.message.id": env.id,
                                    "thrive.retry": attempts,
                                },
                            ) as span:
                                meta = _meta(rec, span)
                                await self.handler(conn, env, meta)
                        applied.append((env, meta))
                        outcomes.append((rec.topic, env.type, "ok"))
                        break
                    except TRANSIENT_ERRORS:
                        raise
                    except Reject as exc:
                        failures.append(Failure(rec, "Reject", exc.reason, attempts))
                        outcomes.append((rec.topic, env.type, "dead_lettered"))
                        break
                    except Exception as exc:
                        _raise_if_transient(exc)
                        if attempts >= self.max_attempts:
                            log.exception(
                                "handler failed; dead-lettering",
                                extra={"topic": rec.topic, "event_id": env.id},
                            )
                            failures.append(
                                Failure(rec, type(exc).__name__, str(exc) or repr(exc), attempts)
                            )
                            outcomes.append((rec.topic, env.type, "dead_lettered"))
                            break
        for topic, etype, outcome in outcomes:
            metrics.EVENTS_CONSUMED.labels(self.service, topic, etype, outcome).inc()
        return applied, failures
