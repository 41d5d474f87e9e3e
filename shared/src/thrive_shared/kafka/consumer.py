"""Consuming events with effects exactly once in Postgres.

A batch is applied in one database transaction; each event first claims its
(consumer, source, id) row in the inbox, so a redelivered event has no second effect.
Offsets are committed only after that transaction commits (faststream's NACK_ON_ERROR:
ack after the handler returns, rewind the batch if it raises). Records that cannot be
applied — undecodable, invalid, rejected, or failing every attempt — go to the DLQ with
the reason, and the rest of the partition goes on.

Under load the consumer works on two batches at once: while one batch's transaction runs in
Postgres, the records already fetched are decoded and validated (the next batch), and a
batch's offsets are committed while the next one is applied. Batches are still applied one
after the other, each committed to Postgres before its offsets are committed to Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from itertools import chain
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from opentelemetry import trace

from thrive_shared.contracts import Envelope, InvalidEvent, parse_for_topic
from thrive_shared.contracts.envelope import Tombstone
from thrive_shared.kafka.dlq import DeadLetters, Failure
from thrive_shared.observability import context_from_headers, inject_headers, metrics
from thrive_shared.observability.tracing import exporting

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
    headers: Mapping[str, str] = field(default_factory=dict)
    # W3C headers (traceparent, tracestate) of this event's CONSUMER span, so work a handler
    # defers (a queued send, a retry) can continue the event's trace later. Empty when there
    # is no trace. In a batch handler the current span links several events: use this.
    trace_headers: Mapping[str, str] = field(default_factory=dict)


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


# Shared by every record without headers (most of them): read-only, so sharing is safe,
# and each event saves two dicts (less to allocate, and less for the cycle collector).
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

# A frozen dataclass's __init__ sets each field through object.__setattr__, a microsecond
# per event in all; _meta fills the slots directly instead (every field, checked here).
_META_FIELDS = ("topic", "partition", "offset", "key", "timestamp_ms", "headers", "trace_headers")
assert tuple(f.name for f in fields(RecordMeta)) == _META_FIELDS
(
    _set_topic,
    _set_partition,
    _set_offset,
    _set_key,
    _set_timestamp,
    _set_headers,
    _set_trace_headers,
) = (getattr(RecordMeta, name).__set__ for name in _META_FIELDS)


def _meta(rec: Record, span: trace.Span | None = None) -> RecordMeta:
    meta: RecordMeta = object.__new__(RecordMeta)
    _set_topic(meta, rec.topic)
    _set_partition(meta, rec.partition)
    _set_offset(meta, rec.offset)
    key = rec.key
    _set_key(meta, key.decode("utf-8", "replace") if key else None)
    _set_timestamp(meta, rec.timestamp)
    headers = rec.headers
    _set_headers(
        meta,
        {k: (v or b"").decode("utf-8", "replace") for k, v in headers} if headers else _NO_HEADERS,
    )
    _set_trace_headers(meta, _span_headers(span) if span is not None else _NO_HEADERS)
    return meta


def _span_headers(span: trace.Span) -> dict[str, str]:
    """The span's context as W3C headers (nothing to inject when there is no trace)."""
    if not span.get_span_context().is_valid:
        return {}
    return inject_headers(context=trace.set_span_in_context(span))


def _traced(meta: RecordMeta) -> bool:
    """Whether an event gets a span of its own.

    Yes when spans are exported, or when its producer sent a trace context (even a
    non-recording span passes that on in `trace_headers`). Otherwise its span would be the
    invalid one, carrying nothing: the event goes without, saving a span and a header
    extraction per event.
    """
    return "traceparent" in meta.headers or exporting()


# Records decoded between two looks at the batch being applied (see EventConsumer._read).
_READ_SLICE = 200


@dataclass(slots=True)
class _Batch:
    """Records fetched together, decoded and validated, ready to apply."""

    records: Sequence[Record]
    events: list[tuple[Record, Envelope[Any], RecordMeta]]
    failures: list[Failure]
    # Per partition: the first offset of the batch, and the offset after its last record.
    first: dict[TopicPartition, int]
    after: dict[TopicPartition, int]
    read_seconds: float


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit what was applied on partitions being taken away, before another member gets them.

    A rebalance can fail a batch's offset commit (CommitFailedError, aiokafka#929);
    committing per partition here narrows redelivery, and the inbox absorbs the rest.
    """

    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        applying = self.owner._applying
        if applying is not None and not applying.done():
            # Let the batch being applied commit, so its offsets go with the partitions.
            await asyncio.wait({applying}, timeout=_REVOKE_WAIT_S)
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


_REVOKE_WAIT_S = 10.0


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
        # The batch whose transaction is under way (the rebalance listener waits for it).
        self._applying: asyncio.Future[None] | None = None

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
            # Offsets are ours to commit (see _consume): each batch's, once its transaction
            # committed; on failure the partitions are rewound to the first record not applied.
            ack_policy=AckPolicy.MANUAL,
            decoder=raw,
            listener=_CommitOnRevoke(self),
            title=f"{self.service}.{self.name}",
        )
        self._subscriber = subscriber

        # faststream reads the handler's signature; `message` is its Context name.
        from faststream import Context

        async def handler(records: Any, message: KafkaMessage = Context("message")) -> None:  # noqa: B008
            consumer = getattr(message, "consumer", None)
            kafka = consumer if isinstance(consumer, AIOKafkaConsumer) else None
            await self._consume(message.raw_message, kafka)

        subscriber(handler)
        return subscriber

    def _record_lag(self, kafka: AIOKafkaConsumer, batch: _Batch) -> None:
        for tp, after in batch.after.items():
            try:
                high = kafka.highwater(tp)
            except Exception:  # assignment may have just changed
                log.debug("no highwater for %s[%s]", tp.topic, tp.partition)
                continue
            if high is not None:
                metrics.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(
                    max(0, high - after)
                )

    async def process_batch(self, records: Sequence[Record]) -> None:
        """Apply a batch; return only once its effects are committed and its failures dead-lettered.

        Raises on transient trouble (database away): the caller rewinds and retries the batch.
        """
        if records:
            await self._apply(await self._read(records))

    async def _consume(self, records: Sequence[Record], kafka: AIOKafkaConsumer | None) -> None:
        """Apply a polled batch, then whatever was fetched while it was being applied.

        Two batches at a time: while one batch's transaction runs (Postgres on the other
        core), the records fetched meanwhile are decoded and validated; a batch's offsets
        are committed while the next batch is applied. Batches are applied in order, and a
        batch's offsets are committed only after its transaction (and in order). Returns
        once nothing more was fetched and every applied batch's offsets are committed.
        """
        if not records:
            return
        batch = await self._read(records)
        committing: asyncio.Task[None] | None = None
        try:
            while True:
                applying = asyncio.ensure_future(self._apply(batch))
                self._applying = applying
                ahead: _Batch | None = None
                try:
                    if kafka is not None:
                        ahead = await self._read_ahead(kafka)
                    await applying
                except BaseException:
                    applying.cancel()  # still running only if we are being cancelled
                    if kafka is not None:
                        self._rewind(kafka, batch, ahead)
                    raise
                finally:
                    self._applying = None
                if kafka is not None:
                    self._record_lag(kafka, batch)
                    if committing is not None:
                        await committing  # offsets are committed in order
                    committing = asyncio.create_task(self._commit(kafka, batch))
                if ahead is None:
                    return
                batch = ahead
        finally:
            if committing is not None:
                await committing

    async def _read_ahead(self, kafka: AIOKafkaConsumer) -> _Batch | None:
        """The records already fetched (no waiting), decoded: the next batch, or None."""
        if not getattr(self._subscriber, "running", True):
            return None  # stopping: finish the batch under way, read nothing more
        await asyncio.sleep(0)  # the applying batch's first statement goes out first
        try:
            fetched = await kafka.getmany(timeout_ms=0, max_records=self.max_records)
        except Exception:  # the consume loop's next poll meets (and reports) it again
            log.debug("read-ahead poll failed", exc_info=True)
            return None
        records = tuple(chain.from_iterable(fetched.values()))
        if not records:
            return None
        return await self._read(records, slice_size=_READ_SLICE)

    def _rewind(self, kafka: AIOKafkaConsumer, *batches: _Batch | None) -> None:
        """Seek every partition of `batches` back to its first record not applied."""
        first: dict[TopicPartition, int] = {}
        for batch in batches:
            if batch is not None:
                for tp, offset in batch.first.items():
                    first[tp] = min(offset, first.get(tp, offset))
        assigned = kafka.assignment()
        for tp, offset in first.items():
            if tp in assigned:  # a partition taken away is the new owner's to redeliver
                kafka.seek(tp, offset)

    async def _commit(self, kafka: AIOKafkaConsumer, batch: _Batch) -> None:
        """Commit the offsets of an applied batch (on the partitions still ours)."""
        assigned = kafka.assignment()
        offsets = {tp: after for tp, after in batch.after.items() if tp in assigned}
        if not offsets:
            return
        try:
            await kafka.commit(offsets)
        except Exception as exc:  # e.g. a rebalance under way; the inbox absorbs redelivery
            log.warning(
                "offset commit failed; these events may be redelivered and deduplicated",
                extra={"err": str(exc), "group": self.group_id},
            )

    async def _read(self, records: Sequence[Record], *, slice_size: int = 0) -> _Batch:
        """Decode and validate a batch's records (`slice_size` at a time, letting others run).

        Undecodable or invalid records become failures (for the DLQ), tombstones are skipped.
        """
        started = time.perf_counter()
        events: list[tuple[Record, Envelope[Any], RecordMeta]] = []
        append = events.append
        failures: list[Failure] = []
        first: dict[TopicPartition, int] = {}
        after: dict[TopicPartition, int] = {}
        last_topic, last_partition = "", -1
        tp = TopicPartition("", -1)
        high = 0  # the offset after the last record seen on `tp`
        for i, rec in enumerate(records):
            if slice_size and i and not i % slice_size:
                # The batch being applied continues when its statement returns.
                started -= time.perf_counter()
                await asyncio.sleep(0)
                started += time.perf_counter()
            topic, offset = rec.topic, rec.offset
            if rec.partition != last_partition or topic != last_topic:
                if high:
                    after[tp] = high
                last_topic, last_partition = topic, rec.partition
                tp = TopicPartition(topic, last_partition)
                first.setdefault(tp, offset)
                high = after.get(tp, 0)
            if offset >= high:
                high = offset + 1
            try:
                append((rec, parse_for_topic(topic, rec.value), _meta(rec)))
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
        if high:
            after[tp] = high
        return _Batch(records, events, failures, first, after, time.perf_counter() - started)

    async def _apply(self, batch: _Batch) -> None:
        """Apply a decoded batch; return once its effects are committed and failures sent.

        Raises on transient trouble (database away), after a pause: the batch is retried.
        """
        started = time.perf_counter()
        failures = list(batch.failures)
        applied: list[tuple[Envelope[Any], RecordMeta]] = []
        if batch.events:
            try:
                applied = await self._fast_path(batch.events)
            except _SlowPath:
                applied, slow_failures = await self._slow_path(batch.events)
                failures.extend(slow_failures)
            except _RETRY_BATCH:
                log.warning("database unavailable; batch will be retried", exc_info=True)
                await asyncio.sleep(self.retry_backoff)
                raise
        # After the DB commit and before the offset commit: a crash here redelivers the batch,
        # the inbox absorbs the applied events, and failures are dead-lettered again.
        await self.dead_letters.send(failures, consumer=self.group_id)
        self.batches += 1
        done = self._applied_offsets
        for tp, after in batch.after.items():
            if after > done.get(tp, 0):
                done[tp] = after
        elapsed = time.perf_counter() - started + batch.read_seconds
        for topic in {tp.topic for tp in batch.after}:
            metrics.HANDLER_DURATION.labels(self.service, topic).observe(elapsed)
        if applied and self.after_commit is not None:
            try:
                await self.after_commit(applied)
            except Exception:  # after-commit hooks refresh caches; never lose the batch for them
                log.exception("after-commit hook failed")

    async def _claim(
        self, conn: asyncpg.Connection, events: Sequence[tuple[Record, Envelope[Any], RecordMeta]]
    ) -> set[tuple[str, str]]:
        return await claim_inbox(conn, self.name, [(r.topic, e) for r, e, _ in events])

    def _span_attributes(
        self, rec: Record, env: Envelope[Any], extra: dict[str, Any]
    ) -> dict[str, Any]:
        """Attributes of an event's CONSUMER span (messaging semantic conventions)."""
        return {
            "messaging.system": "kafka",
            "messaging.destination.name": rec.topic,
            "messaging.message.id": env.id,
            "thrive.consumer": self.name,
            **extra,
        }

    def _count(self, outcomes: Counter[tuple[str, str, str]]) -> None:
        for (topic, etype, outcome), n in outcomes.items():
            metrics.EVENTS_CONSUMED.labels(self.service, topic, etype, outcome).inc(n)

    async def _fast_path(
        self, events: Sequence[tuple[Record, Envelope[Any], RecordMeta]]
    ) -> list[tuple[Envelope[Any], RecordMeta]]:
        applied: list[tuple[Envelope[Any], RecordMeta]] = []
        outcomes: Counter[tuple[str, str, str]] = Counter()
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await self._claim(conn, events)
            if self.batch_handler is not None:
                return await self._apply_batch(conn, events, fresh)
            for rec, env, meta in events:
                key = (env.source, env.id)
                if key not in fresh:
                    outcomes[(rec.topic, env.type, "duplicate")] += 1
                    continue
                fresh.discard(key)  # a second copy in the same batch is a duplicate too
                span_scope = (
                    tracer.start_as_current_span(
                        f"{rec.topic} process",
                        context=context_from_headers(meta.headers),
                        kind=trace.SpanKind.CONSUMER,
                        attributes=self._span_attributes(
                            rec,
                            env,
                            {
                                "messaging.kafka.partition": rec.partition,
                                "messaging.kafka.offset": rec.offset,
                            },
                        ),
                    )
                    if _traced(meta)
                    else contextlib.nullcontext(None)
                )
                with span_scope as span:
                    if span is not None:
                        meta = replace(meta, trace_headers=_span_headers(span))
                    try:
                        await self.handler(conn, env, meta)
                    except TRANSIENT_ERRORS:
                        raise
                    except Exception as exc:
                        _raise_if_transient(exc)
                        raise _SlowPath from exc
                applied.append((env, meta))
                outcomes[(rec.topic, env.type, "ok")] += 1
        self._count(outcomes)
        return applied

    async def _apply_batch(
        self,
        conn: asyncpg.Connection,
        events: Sequence[tuple[Record, Envelope[Any], RecordMeta]],
        fresh: set[tuple[str, str]],
    ) -> list[tuple[Envelope[Any], RecordMeta]]:
        """Hand every new event to the batch handler at once (set-based SQL in one go)."""
        assert self.batch_handler is not None
        todo: list[tuple[Envelope[Any], RecordMeta]] = []
        outcomes: Counter[tuple[str, str, str]] = Counter()
        spans: list[trace.Span] = []
        for rec, env, meta in events:
            key = (env.source, env.id)
            if key not in fresh:
                outcomes[(rec.topic, env.type, "duplicate")] += 1
                continue
            fresh.discard(key)
            outcomes[(rec.topic, env.type, "ok")] += 1
            if _traced(meta):
                # Each event keeps its own trace: a CONSUMER span under the producer's
                # context, spanning the batch that applied it.
                span = tracer.start_span(
                    f"{rec.topic} process",
                    context=context_from_headers(meta.headers),
                    kind=trace.SpanKind.CONSUMER,
                    attributes=self._span_attributes(
                        rec, env, {"messaging.batch.message_count": len(events)}
                    ),
                )
                spans.append(span)
                meta = replace(meta, trace_headers=_span_headers(span))
            todo.append((env, meta))
        if todo:
            # With one event, its span is current (its SQL joins its trace); with several,
            # a batch span links them all.
            current = (
                spans[0]
                if len(spans) == 1 and len(todo) == 1
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
        self._count(outcomes)
        return todo

    async def _slow_path(
        self, events: Sequence[tuple[Record, Envelope[Any], RecordMeta]]
    ) -> tuple[list[tuple[Envelope[Any], RecordMeta]], list[Failure]]:
        applied: list[tuple[Envelope[Any], RecordMeta]] = []
        failures: list[Failure] = []
        outcomes: Counter[tuple[str, str, str]] = Counter()
        async with self.pool.acquire() as conn, conn.transaction():
            for rec, env, read in events:
                meta = read  # with this attempt's span below, once the event is claimed
                attempts = 0
                while True:
                    attempts += 1
                    try:
                        async with conn.transaction():  # a savepoint per attempt
                            claimed = await conn.fetchval(
                                _CLAIM_ONE, self.name, env.source, env.id, rec.topic
                            )
                            if not claimed:
                                outcomes[(rec.topic, env.type, "duplicate")] += 1
                                break
                            with tracer.start_as_current_span(
                                f"{rec.topic} process",
                                context=context_from_headers(read.headers),
                                kind=trace.SpanKind.CONSUMER,
                                attributes={
                                    "messaging.message.id": env.id,
                                    "thrive.retry": attempts,
                                },
                            ) as span:
                                meta = replace(read, trace_headers=_span_headers(span))
                                await self.handler(conn, env, meta)
                        applied.append((env, meta))
                        outcomes[(rec.topic, env.type, "ok")] += 1
                        break
                    except TRANSIENT_ERRORS:
                        raise
                    except Reject as exc:
                        failures.append(Failure(rec, "Reject", exc.reason, attempts))
                        outcomes[(rec.topic, env.type, "dead_lettered")] += 1
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
                            outcomes[(rec.topic, env.type, "dead_lettered")] += 1
                            break
        self._count(outcomes)
        return applied, failures
