"""Leaderboard at a million people: query latency, apply throughput, freshness, start-up load.

1. Postgres generates 1,000,000 people and 10,000,000 thanks spread over the last year
   (`generate_series`, seeded: far faster than producing them through Kafka) and aggregates
   them into the leaderboard's `standing` rows for every window, as the service would have.
2. The service starts in-process on that database (timed: loading the current company
   boards and building the default metric's rank index is its start-up rebuild).
3. top-10, rank-of-person and neighbourhood are driven through the service's HTTP routes
   (Starlette over httpx's ASGI transport: routing, parsing, JSON; no socket) by 8
   concurrent clients; the same queries straight on the rank structure are measured too.
4. Apply throughput: N HelpReceived events produced to a fresh topic, then consumed and
   applied by the running service's consumer; and the same events replayed in batches
   (the rebuild path) into a fresh schema.
5. Freshness: one event at a time, from produce to visible in a rank query.

Sizes: BENCH_LB_PEOPLE (default 1,000,000), BENCH_LB_THANKS (10,000,000),
BENCH_LB_EVENTS (50,000), BENCH_LB_FRESHNESS (200). Lower them for a quick try only.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from thrive_leaderboard.adapters.repository import Repository
from thrive_leaderboard.bootstrap import MIGRATIONS, build_spec, make_keys
from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Metric
from thrive_leaderboard.service_layer.apply import Applier
from thrive_leaderboard.service_layer.boards import BoardQuery
from thrive_leaderboard.service_layer.rebuild import replay_into
from thrive_leaderboard.settings import LeaderboardSettings
from thrive_shared.contracts import HelpReceived, make_event
from thrive_shared.contracts import topics as t
from thrive_shared.db import create_pool, migrate
from thrive_shared.kafka import OutgoingRecord, Publisher
from thrive_shared.service import Runtime, build_app

from .harness import BenchContext, Result, Stopwatch, ceiling, drive, per_second, percentiles

PEOPLE = int(os.environ.get("BENCH_LB_PEOPLE", "1000000"))
THANKS = int(os.environ.get("BENCH_LB_THANKS", "10000000"))
EVENTS = int(os.environ.get("BENCH_LB_EVENTS", "50000"))
FRESHNESS = int(os.environ.get("BENCH_LB_FRESHNESS", "200"))
CLIENTS = 8
QUERY_SECONDS = 8.0
TEAMS = max(1, PEOPLE // 100)

# Thanks as a table Postgres fills itself. Helpers are skewed (a few help a lot, as in any
# company); givers are uniform; ~10% are discounted ring thanks; ~70% cross a team line.
GENERATE = """
CREATE UNLOGGED TABLE bench_thanks AS
SELECT 'p' || lpad(h::text, 7, '0') AS helper,
       'p' || lpad(g::text, 7, '0') AS giver,
       (random() < 0.1) AS discounted,
       (h % $3) <> (g % $3) AS cross_team,
       (now() - random() * interval '365 days') AS at
FROM (
    SELECT (floor(power(random(), 2) * $1))::int AS h, (floor(random() * $1))::int AS g
    FROM generate_series(1, $2)
) s
WHERE h <> g
"""
PERIOD_SQL = {
    Window.WEEK: "to_char(at AT TIME ZONE 'UTC', 'IYYY-\"W\"IW')",
    Window.MONTH: "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM')",
    Window.QUARTER: "to_char(at AT TIME ZONE 'UTC', 'YYYY-\"Q\"Q')",
    Window.YEAR: "to_char(at AT TIME ZONE 'UTC', 'YYYY')",
    Window.ALL_TIME: "'all'",
}
# Giver identities as the service stores them: keyed 64-bit hashes. Postgres cannot compute
# BLAKE2b; hashtextextended with a seed stands in (same shape, same distinctness).
AGGREGATE = """
INSERT INTO standing (scope, "window", period, person, n, nd, d, x, m, givers)
SELECT 'company', '{window}', {period}, helper, count(*),
       count(*) FILTER (WHERE discounted), count(DISTINCT gh),
       count(*) FILTER (WHERE cross_team), 0, array_agg(DISTINCT gh)
FROM (SELECT *, hashtextextended(giver, 42) AS gh FROM bench_thanks) s
GROUP BY 1, 2, 3, 4
"""
PEOPLE_SQL = """
INSERT INTO person (person, team)
SELECT 'p' || lpad(i::text, 7, '0'), 'team-' || (i % $2) FROM generate_series(0, $1 - 1) i
"""


def rss_mb() -> float:
    """Peak resident memory of this process (the service runs in it), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def load_history(url: str, result: Result) -> None:
    conn = await asyncpg.connect(url, server_settings={"search_path": "leaderboard"})
    try:
        await conn.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'")
        await conn.execute("SELECT setseed(0.42)")
        with Stopwatch() as sw:
            await conn.execute(PEOPLE_SQL, PEOPLE, TEAMS)
            await conn.execute(GENERATE, PEOPLE, THANKS, TEAMS)
        result.add("generate_s", sw.seconds, "s", f"{PEOPLE} people, {THANKS} thanks")
        with Stopwatch() as sw:
            for window, period in PERIOD_SQL.items():
                await conn.execute(AGGREGATE.format(window=window.value, period=period))
            await conn.execute("DROP TABLE bench_thanks")
            await conn.execute("ANALYZE standing")
        rows = await conn.fetchval("SELECT count(*) FROM standing")
        result.add("standing_rows", rows, "rows")
        result.add("aggregate_s", sw.seconds, "s", "bulk load of standings, every window")
    finally:
        await conn.close()


def thanks_event(i: int, *, helper: str, giver: str, at: datetime) -> Any:
    data = HelpReceived(
        thanks_id=f"bench-{i}",
        helper=helper,
        giver=giver,
        helper_team=f"team-{int(helper[1:]) % TEAMS}",
        giver_team=f"team-{int(giver[1:]) % TEAMS}",
        given_at=at,
        themes=["python"] if i % 3 == 0 else [],
        discounted=i % 10 == 0,
    )
    return make_event(data, source="bench", id=f"bench-{i}")


def pid(i: int) -> str:
    return f"p{i:07d}"


async def query_load(client: httpx.AsyncClient, rng: random.Random, result: Result) -> None:
    people = [pid(rng.randrange(PEOPLE)) for _ in range(10_000)]

    async def top(_c: int, _s: int) -> None:
        r = await client.get("/internal/v1/boards/top", params={"window": "month", "first": 10})
        r.raise_for_status()

    async def rank(_c: int, seq: int) -> None:
        r = await client.get(
            "/internal/v1/boards/rank",
            params={"window": "year", "person": people[seq % len(people)]},
        )
        r.raise_for_status()

    async def around(_c: int, seq: int) -> None:
        r = await client.get(
            "/internal/v1/boards/neighbourhood",
            params={"window": "year", "person": people[seq % len(people)]},
        )
        r.raise_for_status()

    for name, op in (("top10", top), ("rank", rank), ("neighbourhood", around)):
        report = await drive(op, clients=CLIENTS, duration_s=QUERY_SECONDS, warmup_s=1.0)
        result.add_load(f"http_{name}", report)


async def direct_queries(app: Any, rng: random.Random, result: Result) -> None:
    boards = app.boards
    q_top = BoardQuery(metric=Metric.SERVICE, window=Window.MONTH)
    q_rank = BoardQuery(metric=Metric.SERVICE, window=Window.YEAR)
    people = [pid(rng.randrange(PEOPLE)) for _ in range(10_000)]

    async def top(_c: int, _s: int) -> None:
        await boards.top(q_top, first=10)

    async def rank(_c: int, seq: int) -> None:
        await boards.rank(q_rank, people[seq % len(people)])

    for name, op in (("top10", top), ("rank", rank)):
        report = await drive(op, clients=CLIENTS, count=50_000)
        result.add_load(f"direct_{name}", report)


async def produce(pub: Publisher, topic: str, envs: list[Any]) -> None:
    for i in range(0, len(envs), 5000):
        await pub.send_all(
            [
                OutgoingRecord(topic=topic, key=e.subject, value=e.to_json())
                for e in envs[i : i + 5000]
            ]
        )


async def main(ctx: BenchContext) -> Result:
    """Run the leaderboard benchmark."""
    result = Result(
        name="leaderboard",
        parameters={
            "people": PEOPLE,
            "thanks": THANKS,
            "teams": TEAMS,
            "apply_events": EVENTS,
            "freshness_samples": FRESHNESS,
            "clients": CLIENTS,
            "query_seconds": QUERY_SECONDS,
            "http": "Starlette app over httpx ASGITransport, in the service's process",
        },
    )
    result.set_baseline(await ceiling(ctx))
    rng = random.Random(7)
    async with (
        ctx.fresh_database("lb") as url,
        ctx.fresh_topic(t.HELP_RECEIVED, partitions=3) as help_topic,
        ctx.fresh_topic(t.MILESTONE_REACHED, partitions=1) as ms_topic,
        ctx.fresh_topic(t.DIRECTORY_PERSON, partitions=1) as dir_topic,
        ctx.fresh_topic(t.LEADERBOARD_CHANGED, partitions=1) as changed_topic,
    ):
        await asyncio.to_thread(migrate, url, schema="leaderboard", migrations_dir=MIGRATIONS)
        await load_history(url, result)
        settings = LeaderboardSettings(
            kafka_bootstrap_servers=ctx.kafka_bootstrap,
            database_url=url,
            topic_help_received=help_topic,
            topic_milestone_reached=ms_topic,
            topic_directory_person=dir_topic,
            topic_leaderboard_changed=changed_topic,
            consumer_group_id=ctx.unique("lb-bench"),
            log_level="WARNING",
        )
        now = datetime.now(UTC)
        envs = [
            thanks_event(
                i,
                helper=pid(int(rng.random() ** 2 * PEOPLE)),
                giver=pid(rng.randrange(PEOPLE)),
                at=now - timedelta(seconds=rng.randrange(3600)),
            )
            for i in range(EVENTS)
        ]
        envs = [e for e in envs if e.data.helper != e.data.giver]
        pub = Publisher(ctx.kafka_bootstrap, client_id="bench-leaderboard")
        await pub.start()
        try:
            await produce(pub, help_topic, envs)
            spec = build_spec(settings)
            rt = Runtime(spec)
            http_app = build_app(spec, runtime=rt)
            rss_before = rss_mb()
            started = time.perf_counter()
            await rt.start()  # loads the current boards, then starts consuming
            app = rt.state["leaderboard"]
            result.add(
                "startup_load_s",
                time.perf_counter() - started,
                "s",
                "directory + current company boards + default metric index, from Postgres",
            )
            result.add("resident_entries", app.boards.resident_entries(), "entries")
            try:
                # Apply throughput: the consumer started on the pre-produced backlog.
                first_seen = None
                deadline = time.monotonic() + 600
                while app.applier.applied_events < len(envs) and time.monotonic() < deadline:
                    if first_seen is None and app.applier.applied_events > 0:
                        first_seen = (time.perf_counter(), app.applier.applied_events)
                    await asyncio.sleep(0.01)
                done = time.perf_counter()
                if first_seen is not None:
                    n = app.applier.applied_events - first_seen[1]
                    result.add(
                        "apply_events_per_s",
                        per_second(n, done - first_seen[0]),
                        "events/s",
                        "live consumer: parse, inbox, standings upsert, memory, per event",
                    )
                result.add("rss_after_load_mb", rss_mb(), "MiB", f"{rss_before:.0f} before start")

                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=http_app), base_url="http://lb"
                ) as client:
                    await query_load(client, rng, result)
                await direct_queries(app, rng, result)

                # Freshness: produce one event, poll the rank until it shows.
                samples: list[int] = []
                for i in range(FRESHNESS):
                    who = pid(rng.randrange(PEOPLE))
                    env = thanks_event(10_000_000 + i, helper=who, giver=pid(0), at=now)
                    before = app.boards.counters_of(_year_board(app), who).n
                    t0 = time.perf_counter_ns()
                    await produce(pub, help_topic, [env])
                    while app.boards.counters_of(_year_board(app), who).n == before:
                        await asyncio.sleep(0.001)
                        if time.perf_counter_ns() - t0 > 10e9:
                            result.notes.append("freshness sample timed out")
                            break
                    samples.append(time.perf_counter_ns() - t0)
                for key, value in percentiles(samples).items():
                    result.add(f"freshness_{key}_ms", value, "ms")
            finally:
                await rt.stop()

            # The same events replayed in batches (the rebuild path) into a fresh schema.
            await asyncio.to_thread(
                migrate, url, schema="leaderboard_rebuild", migrations_dir=MIGRATIONS
            )
            pool = await create_pool(url, schema="leaderboard_rebuild", min_size=1, max_size=2)
            try:
                applier = Applier(
                    repo=Repository(), keys=make_keys(settings), tz=settings.tz(), boards=None
                )
                with Stopwatch() as sw:
                    report = await replay_into(
                        pool,
                        bootstrap_servers=ctx.kafka_bootstrap,
                        topic_groups=[[help_topic]],
                        applier=applier,
                        consumer_name="bench-rebuild",
                    )
                result.add(
                    "rebuild_events_per_s",
                    per_second(report.applied, sw.seconds),
                    "events/s",
                    "replay from Kafka, 5000 events per transaction",
                )
            finally:
                await pool.close()
        finally:
            await pub.stop()

    result.add_ratio(
        "apply_vs_kafka_consume", figure="apply_events_per_s", of="kafka_consume_events_per_s"
    )
    result.add_target("http_top10_p99_ms", "<=", 2.0, "issue #4")
    result.add_target("http_rank_p99_ms", "<=", 5.0, "issue #4")
    result.add_target("apply_events_per_s", ">=", 10_000, "issue #4")
    result.add_target("freshness_p99_ms", "<=", 1000.0, "issue #4")
    return result


def _year_board(app: Any) -> Any:
    from thrive_leaderboard.domain.standings import StoredBoard

    return StoredBoard("company", Window.YEAR, app.boards.current_period(Window.YEAR))
