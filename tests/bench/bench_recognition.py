"""Recognition ingest, end to end: external help-received events in, canonical events out.

consume -> validate -> dedupe (inbox) -> persist -> evaluate milestones -> outbox -> published,
with the real service: `thrive-recognition serve` as its own process (uvloop under uvicorn,
as deployed) on the real stack, on this run's suffixed copies of the canonical topics
(THRIVE_TOPIC_SUFFIX), so nothing reaches other people's consumers.

- Sustained throughput: BENCH_RECOGNITION_EVENTS (default 100000) events are produced as fast
  as possible to a fresh ingest topic; the figure is events / (first produce -> every
  resulting event published to Kafka by the outbox relay).
- Latency: events produced at BENCH_RECOGNITION_RATE (default 1000/s) for
  BENCH_RECOGNITION_LATENCY_S seconds (default 20); per event, produce time -> the Kafka
  timestamp of the HelpReceived the relay published for it; p50/p90/p99/max.

- CPU: the service's processes (`serve` and the outbox relay process it starts) per event
  of the throughput phase, user + system time from /proc.
- Batch core: the set-based ingest handler called in this process on batches of the
  service's largest size (THRIVE_RECOGNITION_INGEST_MAX_RECORDS, default 2000)
  (no Kafka consume); the service process relays what it writes.

Both also as ratios of the raw ceiling measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from thrive_recognition.bootstrap import tune_gc
from thrive_recognition.entrypoints.kafka import RecognitionConsumers
from thrive_recognition.settings import RecognitionSettings
from thrive_shared.contracts import (
    ExternalHelp,
    IngestKind,
    PersonUpserted,
    make_event,
    parse_for_topic,
    topics,
)
from thrive_shared.db import create_pool, migrate
from thrive_shared.devstack import probes
from thrive_shared.devstack.stack import CANONICAL_TOPICS
from thrive_shared.kafka import OutgoingRecord, Publisher, RecordMeta

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _service_process(ctx: BenchContext, url: str, suffix: str, port: int) -> Iterator[Any]:
    """`thrive-recognition serve` on this run's database and topic copies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THRIVE_RECOGNITION_")}
    env.update(
        {
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": ctx.kafka_bootstrap,
            topics.SUFFIX_ENV: suffix,
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
            "THRIVE_RECOGNITION_PORT": str(port),
            "THRIVE_RECOGNITION_EXPIRY_SWEEP_SECONDS": "3600",
        }
    )
    ctx.results_dir.mkdir(parents=True, exist_ok=True)  # a fresh checkout has none yet
    log = open(ctx.results_dir / "recognition-bench.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "thrive_recognition", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


async def _ready(proc: Any, port: int, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("thrive-recognition serve exited; see recognition-bench.log")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("recognition not ready in time")
            await asyncio.sleep(0.2)


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return total


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
    """A migrated database, this run's topic copies and a running recognition process."""
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(ctx.fresh_database("bench_recognition"))
        suffix = ctx.unique("rb")
        copies = {f"{name}-{suffix}": spec for name, spec in CANONICAL_TOPICS.items()}
        await probes.ensure_topics(ctx.kafka_bootstrap, copies, deadline=time.monotonic() + 60)
        stack.push_async_callback(probes.delete_topics, ctx.kafka_bootstrap, list(copies))
        settings = RecognitionSettings(
            database_url=url,
            kafka_bootstrap_servers=ctx.kafka_bootstrap,
            log_json=False,
            log_level="WARNING",
        )
        await asyncio.to_thread(
            migrate, url, schema=settings.db_schema, migrations_dir=settings.migrations_dir
        )
        port = _free_port()
        proc = stack.enter_context(_service_process(ctx, url, suffix, port))
        await _ready(proc, port)
        producer = Publisher(ctx.kafka_bootstrap, client_id=ctx.unique("bench-recognition"))
        await producer.start()
        stack.push_async_callback(producer.stop)
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=2, server_settings={"search_path": "recognition"}
        )
        stack.push_async_callback(pool.close)
        yield {
            "pid": proc.pid,
            "settings": settings,
            "pool": pool,
            "producer": producer,
            "ingest": f"{topics.INGEST_HELP}-{suffix}",
            "directory": f"{topics.DIRECTORY_PERSON}-{suffix}",
            "help_received": f"{topics.HELP_RECEIVED}-{suffix}",
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


async def _outputs(pool: asyncpg.Pool) -> int:
    """Events the service has published so far: a HelpReceived per thanks, one per milestone."""
    return int(
        await pool.fetchval(
            "SELECT (SELECT count(*) FROM thanks) + (SELECT count(*) FROM milestones)"
        )
    )


async def measure_throughput(
    svc: dict[str, Any], rng: random.Random, people: Any
) -> dict[str, Any]:
    """N events produced flat out; time until every effect is published."""
    applied = await svc["pool"].fetchval("SELECT count(*) FROM thanks")
    events = _help_events(rng, people, EVENTS, tag="tp")
    published_before = await _outputs(svc["pool"])
    cpu_before = _tree_cpu_seconds(svc["pid"])
    with Stopwatch() as sw:
        for i in range(0, len(events), 10_000):
            await _send(svc, events[i : i + 10_000])
        produced_s = sw.seconds
        await _drained(svc, applied + EVENTS, timeout=DRAIN_TIMEOUT_S)
    cpu = _tree_cpu_seconds(svc["pid"]) - cpu_before
    return {
        "cpu_seconds": cpu,
        "events": EVENTS,
        "seconds": sw.seconds,
        "produce_seconds": produced_s,
        "published": await _outputs(svc["pool"]) - published_before,
    }


async def measure_latency(svc: dict[str, Any], rng: random.Random, people: Any) -> dict[str, Any]:
    """Events at a fixed rate; produce -> published HelpReceived, per event."""
    n = int(RATE * LATENCY_S)
    events = _help_events(rng, people, n, tag="lat")
    sent_ms: dict[int, float] = {}
    topic = svc["help_received"]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=svc["settings"].kafka_bootstrap_servers, enable_auto_commit=False
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


async def measure_batch_core(
    svc: dict[str, Any], rng: random.Random, people: Any
) -> dict[str, Any]:
    """The set-based ingest handler fed 500-event batches directly (no Kafka consume)."""
    settings = svc["settings"]
    consumers = RecognitionConsumers(settings.policies())
    n = BATCH_CORE_EVENTS
    raw = _help_events(rng, people, n, tag="core")
    envs = [parse_for_topic(topics.INGEST_HELP, v) for _, v in raw]
    meta = RecordMeta(topic=svc["ingest"], partition=0, offset=0, key=None, timestamp_ms=0)
    applied = await svc["pool"].fetchval("SELECT count(*) FROM thanks")
    pool = await create_pool(
        settings.database_url, schema=settings.db_schema, min_size=1, max_size=2
    )
    tune_gc(settings.gc_threshold)  # as the service does at start
    step = settings.ingest_max_records  # the service's largest batch
    with Stopwatch() as sw:
        for i in range(0, n, step):
            async with pool.acquire() as conn, conn.transaction():
                await consumers.ingest_batch(conn, [(e, meta) for e in envs[i : i + step]])
        applied_s = sw.seconds
        await _drained(svc, applied + n, timeout=DRAIN_TIMEOUT_S)
    await pool.close()
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
        result.add(
            "service_cpu_us_per_event",
            tp["cpu_seconds"] / tp["events"] * 1e6,
            "us",
            "thrive-recognition serve and the relay process it starts, user + system CPU "
            "during the throughput phase",
        )
        result.add("published_events_per_s", tp["published"] / tp["seconds"], "events/s")

        core = await measure_batch_core(svc, rng, people)
        result.add(
            "batch_core_events_per_s",
            core["events"] / core["seconds"],
            "events/s",
            f"ingest_batch in {svc['settings'].ingest_max_records}-event transactions, "
            "parsed events in, published out; "
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
