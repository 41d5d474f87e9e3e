"""Raw ceiling of this machine for Thrive's pipeline, the yardstick other benchmarks divide by.

With nothing of Thrive's own in the way, how fast can this machine
- produce realistic HelpReceived events to Kafka (aiokafka, acks=all, idempotent),
- batch-consume them back (getmany, fresh group, commit per batch),
- decode + validate them (`parse_for_topic`, the CPU cost every consumer pays),
- COPY the same rows into Postgres (asyncpg copy_records_to_table)?

Each step runs BENCH_CEILING_ROUNDS times (default 3) and the best round is the figure: on a
shared machine neighbours only ever slow a round down. BENCH_CEILING_EVENTS (default 100000)
shrinks the run for a quick try.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from thrive_shared.contracts import (
    Envelope,
    HelpReceived,
    Visibility,
    make_event,
    parse_for_topic,
    topics,
)
from thrive_shared.kafka.producer import PRODUCER_SETTINGS as SHARED_PRODUCER_SETTINGS

from .harness import (
    BenchContext,
    Figure,
    Measurement,
    Result,
    Stopwatch,
    ceiling_measurement,
    cpu_calibration,
    now_ns,
)

EVENTS = int(os.environ.get("BENCH_CEILING_EVENTS", "100000"))
WARMUP_EVENTS = min(EVENTS, 10_000)
ROUNDS = int(os.environ.get("BENCH_CEILING_ROUNDS", "3"))
PARTITIONS = 3
SEED = 20260101
SOURCE = "thrive/recognition"
CONSUME_TIMEOUT_S = 120.0

# The settings every Thrive producer uses (acks=all, idempotence, linger, big batches), with
# compression off so the figure is the broker's and client's, not the codec's.
PRODUCER_SETTINGS: dict[str, Any] = {**SHARED_PRODUCER_SETTINGS, "compression_type": None}
CONSUMER_MAX_RECORDS = 1000

# ---------------------------------------------------------------------------------------------
# Realistic events

# fmt: off
_FIRST = [
    "ana", "amir", "bea", "carlos", "chen", "dara", "emeka", "fatima", "gus", "hana", "ivan",
    "jo", "kai", "lena", "marta", "nils", "olu", "priya", "quinn", "rosa", "sam", "tariq",
    "uma", "vik", "wen", "yusuf", "zoe",
]
_LAST = [
    "silva", "okafor", "nguyen", "schmidt", "kowalski", "haddad", "tanaka", "moreau", "rossi",
    "jensen", "patel", "garcia", "obi", "larsen", "novak", "ferreira", "kim",
]
_TEAMS = [
    "payments", "platform", "mobile", "data-eng", "support", "sales-emea", "sales-amer",
    "design", "security", "finance", "people-ops", "growth", "search", "infra",
]
_THEMES = [
    "python", "kafka", "postgres", "kubernetes", "frontend", "testing", "onboarding", "incident",
    "customer-first", "ownership", "craft", "mentoring", "docs", "accessibility", "performance",
    "security", "data", "design", "hiring", "on-call",
]
# fmt: on
_OPENERS = ("Thanks for", "Huge thanks for", "Grateful for", "Shout-out for", "Thank you for", "")
_HELPS = (
    "pairing on the flaky consumer test",
    "the deploy walkthrough on my second day",
    "spotting the missing index in my migration",
    "joining the 7am incident call",
    "explaining leaderboard windows, twice",
    "unblocking the customer escalation",
    "sharing your accessibility audit notes",
    "taking my on-call shift",
    "the career chat",
    "fixing the onboarding doc",
    "the quick review",
)
_CLOSERS = (
    "You made the whole team faster.",
    "The customer noticed, and so did I.",
    "I owe you a coffee!",
    "Paying it forward.",
    *([""] * 8),  # most thanks are a single line
)


def make_events(count: int, *, seed: int = SEED) -> list[Envelope[HelpReceived]]:
    """`count` varied, valid HelpReceived envelopes (deterministic for a given seed)."""
    rng = random.Random(seed)
    people = [
        (f"{f}.{last}{n or ''}", rng.choice(_TEAMS))
        for n in range(5)
        for f in _FIRST
        for last in _LAST
    ]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for i in range(count):
        (giver, giver_team), (helper, helper_team) = rng.sample(people, 2)
        given_at = start + timedelta(seconds=i * 37 + rng.randrange(30))
        parts = (rng.choice(_OPENERS), rng.choice(_HELPS) + ".", rng.choice(_CLOSERS))
        message = " ".join(p for p in parts if p)
        roll = rng.random()
        data = HelpReceived(
            thanks_id=f"th_{rng.getrandbits(104):026x}",
            giver=giver,
            helper=helper,
            giver_team=giver_team,
            helper_team=helper_team,
            message=message,
            themes=rng.sample(_THEMES, rng.randint(1, 3)),
            ask_id=f"ask_{rng.getrandbits(64):016x}" if roll < 0.4 else None,
            offer_id=f"off_{rng.getrandbits(64):016x}" if 0.2 < roll < 0.5 else None,
            visibility=Visibility.PRIVATE if rng.random() < 0.1 else Visibility.PUBLIC,
            discounted=rng.random() < 0.03,
            given_at=given_at,
        )
        events.append(
            make_event(
                data,
                source=SOURCE,
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                time=given_at + timedelta(milliseconds=rng.randrange(5, 500)),
            )
        )
    return events


def to_row(env: Envelope[HelpReceived]) -> tuple[Any, ...]:
    """The row a service would store for one thanks."""
    d = env.data
    return (
        uuid.UUID(env.id),
        env.source,
        env.subject,
        env.time,
        d.thanks_id,
        d.giver,
        d.helper,
        d.giver_team,
        d.helper_team,
        d.message,
        list(d.themes),
        d.ask_id,
        d.offer_id,
        d.visibility.value,
        d.discounted,
        d.origin,
        d.given_at,
    )


TABLE = "help_received"  # one per round: help_received_0, _1, ...
# fmt: off
COLUMNS = [
    "event_id", "source", "subject", "event_time", "thanks_id", "giver", "helper", "giver_team",
    "helper_team", "message", "themes", "ask_id", "offer_id", "visibility", "discounted",
    "origin", "given_at",
]
# fmt: on
DDL = """
CREATE TABLE {table} (
    event_id    uuid PRIMARY KEY,
    source      text NOT NULL,
    subject     text NOT NULL,
    event_time  timestamptz NOT NULL,
    thanks_id   text NOT NULL,
    giver       text,
    helper      text,
    giver_team  text,
    helper_team text,
    message     text NOT NULL,
    themes      text[] NOT NULL,
    ask_id      text,
    offer_id    text,
    visibility  text NOT NULL,
    discounted  boolean NOT NULL,
    origin      text NOT NULL,
    given_at    timestamptz NOT NULL
)
"""

# ---------------------------------------------------------------------------------------------
# Measurements


async def _produce(ctx: BenchContext, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    """Send every record and await every ack; returns the seconds that took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.kafka_bootstrap, client_id="thrive-bench-ceiling", **PRODUCER_SETTINGS
    )
    await producer.start()
    try:
        await producer.partitions_for(topic)  # metadata outside the timed part
        with Stopwatch() as sw:
            futures = [await producer.send(topic, value=v, key=k) for k, v in records]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sw.seconds


async def _consume(ctx: BenchContext, topic: str, expected: int) -> dict[str, float]:
    """Batch-consume the topic in a fresh group until `expected` records were seen."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=ctx.kafka_bootstrap,
        group_id=ctx.unique("thrive-bench-ceiling"),
        client_id="thrive-bench-ceiling",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    join_start = now_ns()
    await consumer.start()
    try:
        deadline = now_ns() + int(CONSUME_TIMEOUT_S * 1e9)
        while not consumer.assignment():
            if now_ns() > deadline:
                raise TimeoutError("consumer got no partitions assigned")
            await asyncio.sleep(0.001)
        join_s = (now_ns() - join_start) / 1e9
        seen = 0
        size = 0
        batches = 0
        with Stopwatch() as sw:
            while seen < expected:
                if now_ns() > deadline:
                    raise TimeoutError(f"saw only {seen} of {expected} records")
                got = await consumer.getmany(timeout_ms=1000, max_records=CONSUMER_MAX_RECORDS)
                if not got:
                    continue
                for records in got.values():
                    seen += len(records)
                    size += sum(len(r.value or b"") for r in records)
                batches += 1
                await consumer.commit()  # as the pipeline does: commit after each batch
    finally:
        await consumer.stop()
    if seen != expected:
        raise RuntimeError(f"expected {expected} records, saw {seen}: duplicates in a fresh group")
    return {"seconds": sw.seconds, "bytes": size, "batches": batches, "join_s": join_s}


def _decode(values: list[bytes]) -> tuple[float, float]:
    """(orjson-only seconds, parse_for_topic seconds) over the same bytes."""
    with Stopwatch() as raw:
        for v in values:
            orjson.loads(v)
    with Stopwatch() as validated:
        for v in values:
            parse_for_topic(topics.HELP_RECEIVED, v)
    return raw.seconds, validated.seconds


async def _copy(conn: asyncpg.Connection, table: str, rows: list[tuple[Any, ...]]) -> float:
    """COPY rows into a new table in one transaction; returns the seconds the COPY took."""
    await conn.execute(DDL.format(table=table))
    with Stopwatch() as sw:
        async with conn.transaction():
            await conn.copy_records_to_table(table, records=rows, columns=COLUMNS)
    stored = await conn.fetchval(f"SELECT count(*) FROM {table}")
    if stored != len(rows):
        raise RuntimeError(f"COPY stored {stored} rows, expected {len(rows)}")
    await conn.execute(f"DROP TABLE {table}")
    return sw.seconds


def _best(name: str, unit: str, rates: list[float]) -> tuple[str, Figure]:
    """A ceiling is the best the machine managed: neighbours only ever slow a round down."""
    rounds = ", ".join(f"{r:,.0f}" if r >= 100 else f"{r:.3g}" for r in rates)
    return name, Figure(max(rates), unit, f"best of {len(rates)}: {rounds}")


async def measure(ctx: BenchContext) -> Measurement:
    """Take the ceiling figures (called once per process through harness.ceiling)."""
    calibration_start = cpu_calibration()
    with Stopwatch() as gen:
        events = make_events(EVENTS)
        records = [(e.subject.encode(), e.to_json()) for e in events]
        rows = [to_row(e) for e in events]
    values = [v for _, v in records]
    sizes = sorted(len(v) for v in values)
    total_mb = sum(sizes) / 1e6

    # A fresh broker JVM is several times slower on its first few MB: warm it up, untimed.
    async with ctx.fresh_topic("bench.ceiling.warmup", partitions=PARTITIONS) as warmup:
        await _produce(ctx, warmup, records[:WARMUP_EVENTS])

    produce_s: list[float] = []
    consumed: list[dict[str, float]] = []
    for _ in range(ROUNDS):
        async with ctx.fresh_topic("bench.ceiling", partitions=PARTITIONS) as topic:
            produce_s.append(await _produce(ctx, topic, records))
            consumed.append(await _consume(ctx, topic, EVENTS))
    decoded = [_decode(values) for _ in range(ROUNDS)]
    async with ctx.fresh_database("bench_ceiling") as url:
        conn = await asyncpg.connect(url)
        try:
            copy_s = [await _copy(conn, f"{TABLE}_{n}", rows) for n in range(ROUNDS)]
            pg_version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
    calibration_end = cpu_calibration()

    consume_s = [c["seconds"] for c in consumed]
    figures = dict(
        [
            _best("kafka_produce_events_per_s", "events/s", [EVENTS / t for t in produce_s]),
            _best("kafka_produce_mb_per_s", "MB/s", [total_mb / t for t in produce_s]),
            _best("kafka_consume_events_per_s", "events/s", [EVENTS / t for t in consume_s]),
            _best(
                "kafka_consume_mb_per_s",
                "MB/s",
                [c["bytes"] / 1e6 / c["seconds"] for c in consumed],
            ),
            _best("decode_validate_events_per_s", "events/s", [EVENTS / v for _, v in decoded]),
            _best("json_decode_events_per_s", "events/s", [EVENTS / r for r, _ in decoded]),
            _best("pg_copy_rows_per_s", "rows/s", [EVENTS / t for t in copy_s]),
        ]
    )
    figures["consumer_group_join_s"] = Figure(
        min(c["join_s"] for c in consumed), "s", "best of the rounds; not part of the rate"
    )
    figures["cpu_calibration_start_ops_per_s"] = Figure(calibration_start, "ops/s")
    figures["cpu_calibration_end_ops_per_s"] = Figure(calibration_end, "ops/s")
    parameters = {
        "events": EVENTS,
        "rounds": ROUNDS,
        "event_type": HelpReceived.TYPE,
        "event_bytes_avg": round(sum(sizes) / len(sizes), 1),
        "event_bytes_min": sizes[0],
        "event_bytes_max": sizes[-1],
        "partitions": PARTITIONS,
        "warmup_events": WARMUP_EVENTS,
        "producer": dict(PRODUCER_SETTINGS),
        "consumer_max_records": CONSUMER_MAX_RECORDS,
        "consumer_batches": int(consumed[0]["batches"]),
        "consumer_commit": "after every getmany batch",
        "pg_copy": f"one COPY of {EVENTS} rows in one transaction into a fresh logged table "
        "with a uuid primary key",
        "postgres_server": str(pg_version),
        "event_loop": ctx.loop,
        "generation_s": round(gen.seconds, 2),
    }
    notes = []
    drift = calibration_end / calibration_start if calibration_start else 1.0
    if not 0.8 <= drift <= 1.25:
        notes.append(
            f"CPU calibration moved {drift:.2f}x between start and end: the machine was busy, "
            "figures are noisy"
        )
    return Measurement(figures=figures, parameters=parameters, notes=notes)


async def main(ctx: BenchContext) -> Result:
    """The ceiling benchmark: its figures, with pure-CPU baselines from the same run."""
    m = await ceiling_measurement(ctx)
    result = Result(name="ceiling", parameters=dict(m.parameters), notes=list(m.notes))
    for name, fig in m.figures.items():
        if name.startswith(("cpu_calibration", "json_decode")):
            result.baseline[name] = fig
        else:
            result.figures[name] = fig
    # What validation costs on top of the bare JSON parse every consumer does anyway.
    result.add_ratio(
        "decode_validate_vs_json_decode",
        figure="decode_validate_events_per_s",
        of="json_decode_events_per_s",
    )
    # Sanity floors: below these, this machine (or its neighbours) is too slow to benchmark on.
    result.add_target("kafka_produce_events_per_s", ">=", 10_000, "ingest bursts of thanks")
    result.add_target("kafka_consume_events_per_s", ">=", 20_000, "replay a topic quickly")
    result.add_target("decode_validate_events_per_s", ">=", 10_000, "consumers not CPU-bound")
    result.add_target("pg_copy_rows_per_s", ">=", 50_000, "bulk rebuilds of read models")
    return result
