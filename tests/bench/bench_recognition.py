"""Recognition ingest, end to end: external help-received events in, canonical events out.

consume -> validate -> dedupe (inbox) -> persist -> evaluate milestones -> outbox -> published,
with the real service code (thrive_recognition's runtime, in this process) on the real stack.

- Sustained throughput: BENCH_RECOGNITION_EVENTS (default 100000) events are produced as fast
  as possible to a fresh ingest topic; the figure is events / (first produce -> every
  resulting event published to Kafka by the outbox relay).
- Latency: events produced at BENCH_RECOGNITION_RATE (default 1000/s) for
  BENCH_RECOGNITION_LATENCY_S seconds (default 20); per event, produce time -> the Kafka
  timestamp of the HelpReceived the relay published for it; p50/p90/p99/max.

Both also as ratios of the raw ceiling measured in the same run. The service publishes to
uniquely named copies of its canonical topics, so nothing reaches other people's consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from thrive_recognition.bootstrap import build_spec
from thrive_recognition.settings import RecognitionSettings
from thrive_shared.contracts import (
    ExternalHelp,
    IngestKind,
    PersonUpserted,
    make_event,
    parse_for_topic,
    topics,
)
from thrive_shared.db import migrate
from thrive_shared.kafka import OutgoingRecord, Publisher, RecordMeta
from thrive_shared.service import Runtime

from .harness import BenchContext, Result, Stopwatch, ceiling, now_ns, percentiles

EVENTS = int(os.environ.get("BENCH_RECOGNITION_EVENTS", "100000"))
RATE = float(os.environ.get("BENCH_RECOGNITION_RATE", "1000"))
LATENCY_S = float(os.environ.get("BENCH_RECOGNITION_LATENCY_S", "20"))
BATCH_CORE_EVENTS = int(os.environ.get("BENCH_RECOGNITION_BATCH_CORE_EVENTS", "50000"))
PEOPLE = int(os.environ.get("BENCH_RECOGNITION_PEOPLE", "5000"))
PARTITIONS = 3
SEED = 20260311
DRAIN_TIMEOUT_S = 600.0

_TEAMS = [
    "payments",
    "platform",
    "mobile",
    "data-eng",
    "support",
    "sales-emea",
    "design",
    "security",
    "finance",
    "growth",
    "search",
    "infra",
]
_ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "America/Los_Angeles",
    "Australia/Sydney",
]
_THEMES = [
    "python",
    "kafka",
    "postgres",
    "kubernetes",
    "testing",
    "incident",
    "on-call",
    "customer-first",
    "mentoring",
    "docs",
    "security",
    "performance",
]
_SOURCES = ["helpdesk", "codereview", "learning"]


class _RenamingPublisher:
    """Sends the relay's records to this run's copies of the canonical topics."""

    def __init__(self, inner: Publisher, mapping: dict[str, str]) -> None:
        self.inner = inner
        self.mapping = mapping

    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        await self.inner.send_all(
            [dataclasses.replace(r, topic=self.mapping.get(r.topic, r.topic)) for r in records]
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _people(rng: random.Random, prefix: str) -> list[tuple[str, str, str]]:
    return [(f"{prefix}-p{i}", rng.choice(_TEAMS), rng.choice(_ZONES)) for i in range(PEOPLE)]


def _help_events(
    rng: random.Random, people: list[tuple[str, str, str]], n: int, *, tag: str
) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC)
    out = []
    for seq in range(n):
        helper, helped = rng.sample(people, 2)
        env = make_event(
            ExternalHelp(
                kind=IngestKind.HELP_RECEIVED,
                helper=helper[0],
                helped=helped[0],
                message=f"{tag}:{seq}",
                themes=rng.sample(_THEMES, rng.randint(0, 2)),
                occurred_at=now - timedelta(minutes=rng.randint(0, 60 * 24 * 60)),
            ),
            source=rng.choice(_SOURCES),
        )
        out.append((helper[0], env.to_json()))
    return out


@contextlib.asynccontextmanager
async def _service(ctx: BenchContext) -> AsyncIterator[dict[str, Any]]:
    """A migrated database, fresh topics and a running recognition runtime."""
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(ctx.fresh_database("bench_recognition"))
        ingest = await stack.enter_async_context(ctx.fresh_topic(topics.INGEST_HELP))
        directory = await stack.enter_async_context(ctx.fresh_topic(topics.DIRECTORY_PERSON))
        out = {}
        for canonical in (topics.HELP_RECEIVED, topics.MILESTONE_REACHED, topics.HELP_OFFERED):
            out[canonical] = await stack.enter_async_context(ctx.fresh_topic(canonical))
        settings = RecognitionSettings(
            database_url=url,
            kafka_bootstrap_servers=ctx.kafka_bootstrap,
            log_json=False,
            log_level="WARNING",
        )
        await asyncio.to_thread(
            migrate, url, schema=settings.db_schema, migrations_dir=settings.migrations_dir
        )
        spec = build_spec(
            settings,
            directory_topic=directory,
            ingest_topic=ingest,
            group_suffix=ctx.unique("bench"),
            sweep=False,
        )
        rt = Runtime(spec)
        await rt.start()
        stack.push_async_callback(rt.stop)
        assert rt.relay is not None
        rt.relay.publisher = _RenamingPublisher(rt.publisher, out)  # type: ignore[assignment]
        producer = Publisher(ctx.kafka_bootstrap, client_id=ctx.unique("bench-recognition"))
        await producer.start()
        stack.push_async_callback(producer.stop)
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=2, server_settings={"search_path": "recognition"}
        )
        stack.push_async_callback(pool.close)
        yield {
            "rt": rt,
            "pool": pool,
            "producer": producer,
            "ingest": ingest,
            "directory": directory,
            "help_received": out[topics.HELP_RECEIVED],
        }


async def _wait(pool: asyncpg.Pool, sql: str, want: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = await pool.fetchval(sql)
        if got >= want:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sql!r}: {got} of {want} after {timeout:.0f}s")
        await asyncio.sleep(0.05)


async def _drained(svc: dict[str, Any], thanks: int, *, timeout: float) -> None:
    """Every event applied, and everything it caused published by the relay."""
    await _wait(svc["pool"], "SELECT count(*) FROM thanks", thanks, timeout=timeout)
    await _wait(svc["pool"], "SELECT (NOT EXISTS (SELECT 1 FROM outbox))::int", 1, timeout=timeout)


async def _setup_people(svc: dict[str, Any], people: list[tuple[str, str, str]]) -> None:
    records = []
    for pid, team, tz in people:
        env = make_event(
            PersonUpserted(
                person=pid, name=f"Person {pid}", email=f"{pid}@example.com", team=team, timezone=tz
            ),
            source="hr/bench",
        )
        records.append(OutgoingRecord(topic=svc["directory"], key=pid, value=env.to_json()))
    await svc["producer"].send_all(records)
    await _wait(svc["pool"], "SELECT count(*) FROM people", len(people), timeout=120)


async def _send(svc: dict[str, Any], items: Sequence[tuple[str, bytes]]) -> None:
    await svc["producer"].send_all(
        [OutgoingRecord(topic=svc["ingest"], key=k, value=v) for k, v in items]
    )


async def measure_throughput(svc: dict[str, Any], rng: random.Random, people: Any) -> dict:
    """N events produced flat out; time until every effect is published."""
    applied = await svc["pool"].fetchval("SELECT count(*) FROM thanks")
    events = _help_events(rng, people, EVENTS, tag="tp")
    published_before = svc["rt"].relay.published
    with Stopwatch() as sw:
        for i in range(0, len(events), 10_000):
            await _send(svc, events[i : i + 10_000])
        produced_s = sw.seconds
        await _drained(svc, applied + EVENTS, timeout=DRAIN_TIMEOUT_S)
    return {
        "events": EVENTS,
        "seconds": sw.seconds,
        "produce_seconds": produced_s,
        "published": svc["rt"].relay.published - published_before,
    }


async def measure_latency(svc: dict[str, Any], rng: random.Random, people: Any) -> dict:
    """Events at a fixed rate; produce -> published HelpReceived, per event."""
    n = int(RATE * LATENCY_S)
    events = _help_events(rng, people, n, tag="lat")
    sent_ms: dict[int, float] = {}
    topic = svc["help_received"]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=svc["rt"].settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer._client.add_topic(topic)  # we assign partitions ourselves: fetch their metadata
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        latencies_ns: list[int] = []

        async def collect() -> None:
            while len(latencies_ns) < n:
                got = await consumer.getmany(timeout_ms=200, max_records=2000)
                for recs in got.values():
                    for r in recs:
                        tag, _, seq = orjson.loads(r.value)["data"]["message"].partition(":")
                        if tag == "lat":
                            latencies_ns.append(int((r.timestamp - sent_ms[int(seq)]) * 1e6))

        collector = asyncio.create_task(collect())
        interval = 1.0 / RATE
        start = now_ns()
        # Send in 10 ms slices (10 events at 1000/s), each stamped when it is handed over.
        slice_n = max(1, int(RATE / 100))
        for i in range(0, n, slice_n):
            due = start + int(i * interval * 1e9)
            delay = (due - now_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = events[i : i + slice_n]
            stamp = time.time() * 1000
            for j in range(len(chunk)):
                sent_ms[i + j] = stamp
            await _send(svc, chunk)
        achieved = n / ((now_ns() - start) / 1e9)
        await asyncio.wait_for(collector, timeout=DRAIN_TIMEOUT_S)
    finally:
        await consumer.stop()
    return {"events": n, "achieved_rate": achieved, "latencies_ns": latencies_ns}


async def measure_batch_core(svc: dict[str, Any], rng: random.Random, people: Any) -> dict:
    """The set-based ingest handler fed 500-event batches directly (no Kafka consume)."""
    consumers = svc["rt"].state["consumers"]
    n = BATCH_CORE_EVENTS
    raw = _help_events(rng, people, n, tag="core")
    envs = [parse_for_topic(topics.INGEST_HELP, v) for _, v in raw]
    meta = RecordMeta(topic=svc["ingest"], partition=0, offset=0, key=None, timestamp_ms=0)
    applied = await svc["pool"].fetchval("SELECT count(*) FROM thanks")
    pool = svc["rt"].pool
    with Stopwatch() as sw:
        for i in range(0, n, 500):
            async with pool.acquire() as conn, conn.transaction():
                await consumers.ingest_batch(conn, [(e, meta) for e in envs[i : i + 500]])
        applied_s = sw.seconds
        await _drained(svc, applied + n, timeout=DRAIN_TIMEOUT_S)
    return {"events": n, "seconds": sw.seconds, "applied_seconds": applied_s}


async def main(ctx: BenchContext) -> Result:
    result = Result(
        name="recognition",
        parameters={
            "events": EVENTS,
            "latency_rate_per_s": RATE,
            "latency_seconds": LATENCY_S,
            "people": PEOPLE,
            "partitions": PARTITIONS,
            "kind": "external help_received (thrive.ingest.help.v1)",
        },
    )
    result.set_baseline(await ceiling(ctx))
    rng = random.Random(SEED)
    async with _service(ctx) as svc:
        people = _people(rng, ctx.unique("b"))
        await _setup_people(svc, people)
        # Warm-up: consumer group joined, statements prepared, caches hot.
        await _send(svc, _help_events(rng, people, 2000, tag="warm"))
        await _drained(svc, 2000, timeout=120)

        tp = await measure_throughput(svc, rng, people)
        result.add(
            "ingest_events_per_s",
            tp["events"] / tp["seconds"],
            "events/s",
            f"{tp['events']} events, {tp['published']} published (thanks + milestones)",
        )
        result.add("ingest_seconds", tp["seconds"], "s")
        result.add("published_events_per_s", tp["published"] / tp["seconds"], "events/s")

        core = await measure_batch_core(svc, rng, people)
        result.add(
            "batch_core_events_per_s",
            core["events"] / core["seconds"],
            "events/s",
            "ingest_batch in 500-event transactions, parsed events in, published out; "
            "no Kafka consume: what the set-based path does once the consumer hands it batches",
        )
        result.add("batch_core_apply_seconds", core["applied_seconds"], "s", "before relay drain")
        result.add("batch_core_seconds", core["seconds"], "s", "until all published")

        lat = await measure_latency(svc, rng, people)
        result.add("latency_rate_achieved", lat["achieved_rate"], "events/s")
        for key, value in percentiles(lat["latencies_ns"]).items():
            result.add(f"latency_{key}_ms", value, "ms", f"at {RATE:.0f} events/s")

    result.add_ratio(
        "batch_core_vs_decode_validate",
        figure="batch_core_events_per_s",
        of="decode_validate_events_per_s",
    )
    result.add_ratio(
        "ingest_vs_consume_ceiling", figure="ingest_events_per_s", of="kafka_consume_events_per_s"
    )
    result.add_ratio(
        "ingest_vs_pg_copy_ceiling", figure="ingest_events_per_s", of="pg_copy_rows_per_s"
    )
    result.add_ratio(
        "ingest_vs_decode_validate",
        figure="ingest_events_per_s",
        of="decode_validate_events_per_s",
    )
    result.add_target("ingest_events_per_s", ">=", 5000, "issue #3: sustained over 100k events")
    result.add_target("latency_p99_ms", "<=", 200, "issue #3: p99 at 1,000 events/s")
    return result
