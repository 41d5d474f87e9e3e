"""Leaderboard at a million people: query latency, apply throughput, freshness, start-up load.

1. Postgres generates 1,000,000 people and 10,000,000 thanks spread over the last year
   (`generate_series`, seeded: far faster than producing them through Kafka) and aggregates
   them into the leaderboard's rolled-up `standing` rows for every window and its `helped`
   pairs, as the service would have; then three days of day rows at the same daily rate
   (today and the two days the roll-up keeps), as a running service holds them.
2. The service starts as its own process (`thrive-leaderboard serve`: uvicorn, as deployed)
   on that database; start-up is timed from spawn until /ready answers 200 (imports,
   directory, current company boards, default metric index, consumer assigned), and its
   resident memory is read from /proc.
3. Apply throughput: N HelpReceived events produced to a fresh topic beforehand, consumed
   and applied by the service's consumer (progress read from its /metrics: every 0.5 s,
   then ever more often as the end nears, to time it within ~20 ms without scraping the
   service 20 times a second throughout, which cost it ~3 µs of CPU per applied event).
4. top-10, rank-of-person and neighbourhood over real HTTP/1.1 keep-alive connections from
   this process (8 concurrent clients, one connection each, as a gateway pool would), with a
   minimal client so the figures are the service's, not a heavy client's.
5. Freshness: one event at a time, from produce to visible in a rank query over HTTP.
6. Roll-up: the oldest kept day's rows (two days ago) moved into the rolled-up rows of their
   five periods while the service runs, as its hourly task does (applies wait meanwhile).
7. The same events replayed in batches (the rebuild path) into a fresh schema, in-process.

Sizes: BENCH_LB_PEOPLE (default 1,000,000), BENCH_LB_THANKS (10,000,000),
BENCH_LB_EVENTS (50,000), BENCH_LB_FRESHNESS (200). Lower them for a quick try only.
BENCH_LB_KEEP_HISTORY=1 keeps the loaded history (1.) as a template database named after
its sizes and the loading SQL, and later runs clone it (`CREATE DATABASE … TEMPLATE`,
about a minute instead of 10–20) before migrating the clone to the current migrations:
the same seeded data, for iterating. Drop `lbhist_*` databases when done.
BENCH_LB_PHASES (default `apply,queries,freshness,rollup,rebuild`) picks phases, e.g.
`BENCH_LB_PHASES=queries BENCH_LB_PEOPLE=200000 BENCH_LB_THANKS=2000000` to iterate on
query latency alone.

The query phase first measures the same-run HTTP floor: a do-nothing raw ASGI app (a
constant ~60-byte JSON body) under the same uvicorn, driven by the same 8 clients. It is
what any answer costs on this machine at that moment (uvicorn, sockets, this driver), so
the query figures are also reported as ratios to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import orjson
from thrive_leaderboard.adapters.repository import Repository
from thrive_leaderboard.bootstrap import MIGRATIONS, make_keys
from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.service_layer.apply import Applier
from thrive_leaderboard.service_layer.rebuild import replay_into
from thrive_leaderboard.service_layer.rollup import roll_up
from thrive_leaderboard.settings import LeaderboardSettings
from thrive_shared.contracts import HelpReceived, make_event
from thrive_shared.contracts import topics as t
from thrive_shared.db import create_pool, migrate
from thrive_shared.kafka import OutgoingRecord, Publisher

from .harness import (
    BenchContext,
    Figure,
    Result,
    Stopwatch,
    ceiling,
    drive,
    per_second,
    percentiles,
)

PEOPLE = int(os.environ.get("BENCH_LB_PEOPLE", "1000000"))
THANKS = int(os.environ.get("BENCH_LB_THANKS", "10000000"))
EVENTS = int(os.environ.get("BENCH_LB_EVENTS", "50000"))
FRESHNESS = int(os.environ.get("BENCH_LB_FRESHNESS", "200"))
KEEP_HISTORY = os.environ.get("BENCH_LB_KEEP_HISTORY", "") == "1"
PHASES = set(os.environ.get("BENCH_LB_PHASES", "apply,queries,freshness,rollup,rebuild").split(","))
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
INSERT INTO standing (scope, "window", period, person, n, nd, d, x, m)
SELECT 'company', '{window}', {period}, helper, count(*),
       count(*) FILTER (WHERE discounted), count(DISTINCT gh),
       count(*) FILTER (WHERE cross_team), 0
FROM (SELECT *, hashtextextended(giver, 42) AS gh FROM bench_thanks) s
GROUP BY 1, 2, 3, 4
"""
# The (helper, scope, giver) -> local days facts distinct counting reads (date ordinals).
HELPED = """
INSERT INTO helped (helper, scope, giver, days)
SELECT helper, 'company', hashtextextended(giver, 42),
       array_agg(DISTINCT (at AT TIME ZONE 'UTC')::date - date '0001-01-01' + 1)
FROM bench_thanks GROUP BY 1, 2, 3
"""
# The day rows a running service holds: applies write one row per (scope, day, person)
# and days older than the roll-up horizon (2 days) move into `standing`. The history above
# is stored rolled up; these are today's and the two previous days' rows, at the history's
# daily rate, so the apply phase writes into a day table of production size (its d columns
# count every thanks as a new person helped: synthetic, and the boards read them as they
# are, so memory still equals Postgres).
RECENT_DAYS_SQL = """
INSERT INTO standing_day (scope, day, person, n, nd, x, m, dw, dm, dq, dy, da)
SELECT 'company', $1::int - back, 'p' || lpad(h::text, 7, '0'), count(*),
       count(*) FILTER (WHERE disc), count(*) FILTER (WHERE cross_team), 0,
       count(*), count(*), count(*), count(*), count(*)
FROM (
    SELECT floor(power(random(), 2) * $2)::int AS h, floor(random() * 3)::int AS back,
           random() < 0.1 AS disc, random() < 0.7 AS cross_team
    FROM generate_series(1, $3)
) s
GROUP BY 1, 2, 3
"""
PEOPLE_SQL = """
INSERT INTO person (person, team)
SELECT 'p' || lpad(i::text, 7, '0'), 'team-' || (i % $2) FROM generate_series(0, $1 - 1) i
"""


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
            await conn.execute(HELPED)
            await conn.execute("DROP TABLE bench_thanks")
            await conn.execute("VACUUM ANALYZE standing")
            await conn.execute("VACUUM ANALYZE helped")
        rows = await conn.fetchval("SELECT count(*) FROM standing")
        pairs = await conn.fetchval("SELECT count(*) FROM helped")
        result.add("standing_rows", rows, "rows")
        result.add("helped_pairs", pairs, "rows")
        result.add("aggregate_s", sw.seconds, "s", "bulk load of standings + helped pairs")
    finally:
        await conn.close()


async def rollup_one_day(url: str, result: Result) -> None:
    """Roll the oldest kept day (two days ago) up, as the service's hourly task would."""
    pool = await create_pool(url, schema="leaderboard", min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            rows = await conn.fetchval(
                "SELECT count(*) FROM standing_day WHERE day = $1",
                datetime.now(UTC).date().toordinal() - 2,
            )
        with Stopwatch() as sw:
            days = await roll_up(
                pool, Repository(), before=datetime.now(UTC).date().toordinal() - 1
            )
        result.add(
            "rollup_day_s", sw.seconds, "s", f"{days} day, {rows} day rows -> 5 periods each"
        )
    finally:
        await pool.close()


async def recent_day_rows(url: str, result: Result) -> None:
    """Today's and the two previous days' day rows (see RECENT_DAYS_SQL)."""
    conn = await asyncpg.connect(url, server_settings={"search_path": "leaderboard"})
    try:
        await conn.execute("SELECT setseed(0.24)")
        today = datetime.now(UTC).date().toordinal()
        await conn.execute(RECENT_DAYS_SQL, today, PEOPLE, THANKS * 3 // 365)
        rows = await conn.fetchval("SELECT count(*) FROM standing_day")
        await conn.execute("ANALYZE standing_day")
        result.add("day_rows", rows, "rows", "today's and 2 previous days' rows before apply")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def history_database(ctx: BenchContext, result: Result) -> AsyncIterator[str]:
    """A fresh database holding the loaded history (a clone of a kept one with KEEP_HISTORY)."""
    if not KEEP_HISTORY:
        async with ctx.fresh_database("lb") as url:
            await asyncio.to_thread(migrate, url, schema="leaderboard", migrations_dir=MIGRATIONS)
            await load_history(url, result)
            yield url
        return
    recipe = "|".join((str(PEOPLE), str(THANKS), GENERATE, AGGREGATE, HELPED, PEOPLE_SQL))
    template = "lbhist_" + hashlib.sha256(recipe.encode()).hexdigest()[:12]
    parts = urlsplit(ctx.database_url)
    admin = await asyncpg.connect(ctx.database_url)
    try:
        # A kept history is complete once it allows no connections (the last step below);
        # one left open by a killed run is half-loaded: start it again.
        allows = await admin.fetchval(
            "SELECT datallowconn FROM pg_database WHERE datname = $1", template
        )
        if allows:
            await admin.execute(f'DROP DATABASE "{template}" WITH (FORCE)')
        if allows is None or allows:
            await admin.execute(f'CREATE DATABASE "{template}"')
            try:
                turl = urlunsplit(parts._replace(path=f"/{template}"))
                await asyncio.to_thread(
                    migrate, turl, schema="leaderboard", migrations_dir=MIGRATIONS
                )
                await load_history(turl, result)
                # No autovacuum worker (nor anyone) may be connected to a template being
                # cloned; autovacuum skips databases that allow no connections.
                await admin.execute(f'ALTER DATABASE "{template}" WITH ALLOW_CONNECTIONS false')
            except BaseException:
                await admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
                raise
        else:
            result.notes.append(f"history cloned from the kept database {template}")
        name = ctx.unique("lb").replace("-", "_")
        with Stopwatch() as sw:
            for attempt in range(60):
                try:
                    await admin.execute(
                        f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'
                    )
                    break
                except asyncpg.ObjectInUseError:
                    if attempt == 59:
                        raise
                    # Only this benchmark's leftovers connect to its template (the loader's
                    # migration connection, an autovacuum worker that started before the
                    # database closed to connections): end them, then try again.
                    await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = $1 AND pid <> pg_backend_pid()",
                        template,
                    )
                    await asyncio.sleep(1)
        result.add("history_clone_s", sw.seconds, "s", f"clone of {template}")
    finally:
        await admin.close()
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        await asyncio.to_thread(migrate, url, schema="leaderboard", migrations_dir=MIGRATIONS)
        yield url
    finally:
        admin = await asyncpg.connect(ctx.database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


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


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive GET client: the load driver must not be the bottleneck.

    httpx costs several hundred microseconds of CPU per request in this process, which on two
    cores would be measured as the service's latency; this one costs tens.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """GET `path`; the status and body (reconnecting once if an idle connection closed)."""
        try:
            return await self._get(path)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            await self.close()  # the server's keep-alive timeout closed it
            return await self._get(path)

    async def _get(self, path: str) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(f"GET {path} HTTP/1.1\r\nHost: leaderboard\r\n\r\n".encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self._reader.readexactly(length)

    async def get_json(self, path: str, **params: Any) -> Any:
        """GET with query params; the decoded JSON body (raises on a non-200)."""
        status, body = await self.get(f"{path}?{urlencode(params)}" if params else path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {body[:200]!r}")
        return orjson.loads(body)

    async def close(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid_: int) -> dict[str, float]:
    """Current and peak resident memory of a process, MiB (from /proc)."""
    out = {}
    with open(f"/proc/{pid_}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


@contextlib.asynccontextmanager
async def service_process(env: dict[str, str], port: int) -> AsyncIterator[Any]:
    """`thrive-leaderboard serve` as its own process; stopped with SIGTERM afterwards."""
    log = tempfile.NamedTemporaryFile(prefix="bench-leaderboard-", suffix=".log", delete=False)  # noqa: SIM115
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "thrive_leaderboard", "serve", env=env, stdout=log, stderr=log
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
        os.unlink(log.name)


async def wait_ready(conn: HttpConnection, proc: Any, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"the service exited with {proc.returncode} during start-up")
        try:
            status, _ = await conn.get("/ready")
            if status == 200:
                return
        except OSError:
            await conn.close()
        await asyncio.sleep(0.05)
    raise TimeoutError("the service did not become ready")


def apply_poll_pause(
    first_seen: tuple[float, float] | None, now: float, applied: float, total: int
) -> float:
    """Seconds until the next /metrics poll of the apply phase.

    Each scrape costs the service a Starlette request and a `prometheus_client` exposition
    (py-spy: ~2.6 % of its CPU at 20 scrapes a second, ~3 µs per applied event), which a
    real Prometheus spends every 15-30 s. So poll every 0.5 s while the end is far, and
    ever more often as the rate seen so far brings it near (half the time it predicts is
    left, down to 20 ms): the end is timed to within ~20 ms (50 ms before) with ~50
    scrapes for 150,000 events instead of ~400. The start needs no precision: the rate
    counts from the first poll that saw an applied event, with the count it saw.
    """
    if first_seen is None or applied <= first_seen[1] or now <= first_seen[0]:
        return 0.05
    rate = (applied - first_seen[1]) / (now - first_seen[0])
    return min(0.5, max(0.02, (total - applied) / rate / 2))


async def applied_events(conn: HttpConnection) -> float:
    """thrive_leaderboard_events_applied_total from the service's /metrics."""
    _status, body = await conn.get("/metrics")
    for line in body.split(b"\n"):
        if line.startswith(b"thrive_leaderboard_events_applied_total"):
            return float(line.split()[-1])
    return 0.0


async def query_load(host: str, port: int, rng: random.Random, result: Result) -> None:
    people = [pid(rng.randrange(PEOPLE)) for _ in range(10_000)]
    conns = [HttpConnection(host, port) for _ in range(CLIENTS)]
    top_path = "/internal/v1/boards/top?" + urlencode({"window": "month", "first": 10})
    rank_paths = [
        "/internal/v1/boards/rank?" + urlencode({"window": "year", "person": p}) for p in people
    ]
    around_paths = [
        "/internal/v1/boards/neighbourhood?" + urlencode({"window": "year", "person": p})
        for p in people
    ]

    async def call(c: int, path: str) -> None:
        status, body = await conns[c].get(path)
        if status != 200:
            raise RuntimeError(f"{status}: {body[:200]!r}")

    async def top(c: int, _s: int) -> None:
        await call(c, top_path)

    async def rank(c: int, seq: int) -> None:
        await call(c, rank_paths[seq % len(rank_paths)])

    async def around(c: int, seq: int) -> None:
        await call(c, around_paths[seq % len(around_paths)])

    try:
        for name, op in (("top10", top), ("rank", rank), ("neighbourhood", around)):
            report = await drive(op, clients=CLIENTS, duration_s=QUERY_SECONDS, warmup_s=1.0)
            result.add_load(f"http_{name}", report)
    finally:
        for conn in conns:
            await conn.close()


# The same-run HTTP floor: uvicorn as `serve` runs it (uvloop, httptools), no work at all.
FLOOR_APP = """
import sys, uvicorn
BODY = b'{"person":"p0000000","opted_out":false,"rank":1,"score":1.0,"of":1}'
HEAD = [(b"content-length", str(len(BODY)).encode()), (b"content-type", b"application/json")]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEAD})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None,
            access_log=False, lifespan="off")
"""


async def http_floor(result: Result) -> None:
    """Latency of a do-nothing ASGI app under the same uvicorn and load (baseline)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", FLOOR_APP, str(port))
    probe = HttpConnection("127.0.0.1", port)
    conns = [HttpConnection("127.0.0.1", port) for _ in range(CLIENTS)]
    try:
        await wait_ready(probe, proc, timeout=60)

        async def op(c: int, _s: int) -> None:
            status, _body = await conns[c].get("/internal/v1/boards/rank?person=p0000001")
            if status != 200:
                raise RuntimeError(str(status))

        report = await drive(op, clients=CLIENTS, duration_s=QUERY_SECONDS, warmup_s=1.0)
        pct = report.percentiles()
        result.set_baseline(
            {
                "http_floor_throughput": Figure(report.throughput, "ops/s", f"{CLIENTS} clients"),
                "http_floor_p50_ms": Figure(pct["p50"], "ms", "do-nothing ASGI app, same uvicorn"),
                "http_floor_p99_ms": Figure(pct["p99"], "ms", "do-nothing ASGI app, same uvicorn"),
            }
        )
    finally:
        for conn in (probe, *conns):
            await conn.close()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


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
            "http": "thrive-leaderboard serve (uvicorn) as its own process; HTTP/1.1 keep-alive, "
            "one connection per client, driven from the benchmark process",
        },
    )
    result.set_baseline(await ceiling(ctx))
    rng = random.Random(7)
    async with (
        history_database(ctx, result) as url,
        ctx.fresh_topic(t.HELP_RECEIVED, partitions=3) as help_topic,
        ctx.fresh_topic(t.MILESTONE_REACHED, partitions=1) as ms_topic,
        ctx.fresh_topic(t.DIRECTORY_PERSON, partitions=1) as dir_topic,
        ctx.fresh_topic(t.LEADERBOARD_CHANGED, partitions=1) as changed_topic,
    ):
        await recent_day_rows(url, result)
        port = free_port()
        group = ctx.unique("lb-bench")
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": ctx.kafka_bootstrap,
            "LOG_LEVEL": "WARNING",
            "THRIVE_LEADERBOARD_HOST": "127.0.0.1",
            "THRIVE_LEADERBOARD_PORT": str(port),
            "THRIVE_LEADERBOARD_TOPIC_HELP_RECEIVED": help_topic,
            "THRIVE_LEADERBOARD_TOPIC_MILESTONE_REACHED": ms_topic,
            "THRIVE_LEADERBOARD_TOPIC_DIRECTORY_PERSON": dir_topic,
            "THRIVE_LEADERBOARD_TOPIC_LEADERBOARD_CHANGED": changed_topic,
            "THRIVE_LEADERBOARD_CONSUMER_GROUP_ID": group,
        }
        env.pop("THRIVE_TOPIC_SUFFIX", None)
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        settings = LeaderboardSettings(
            database_url=url, kafka_bootstrap_servers=ctx.kafka_bootstrap
        )
        now = datetime.now(UTC)
        envs = [
            thanks_event(
                i,
                helper=pid(int(rng.random() ** 2 * PEOPLE)),
                giver=pid(rng.randrange(PEOPLE)),
                at=now - timedelta(seconds=rng.randrange(3600)),
            )
            for i in range(EVENTS if "apply" in PHASES else 0)
        ]
        envs = [e for e in envs if e.data.helper != e.data.giver]
        pub = Publisher(ctx.kafka_bootstrap, client_id="bench-leaderboard")
        await pub.start()
        try:
            await produce(pub, help_topic, envs)
            started = time.perf_counter()
            async with service_process(env, port) as proc:
                probe = HttpConnection("127.0.0.1", port)
                try:
                    await wait_ready(probe, proc)
                    result.add(
                        "startup_load_s",
                        time.perf_counter() - started,
                        "s",
                        "spawn -> /ready: imports, directory, current company boards, "
                        "default metric index, consumer started",
                    )
                    # Apply throughput: the consumer started on the pre-produced backlog.
                    # (Without the apply phase there is no backlog and the loop is skipped.)
                    first_seen: tuple[float, float] | None = None
                    deadline = time.monotonic() + 900
                    applied = 0.0
                    while applied < len(envs) and time.monotonic() < deadline:
                        applied = await applied_events(probe)
                        polled = time.perf_counter()
                        if first_seen is None and applied > 0:
                            first_seen = (polled, applied)
                        pause = apply_poll_pause(first_seen, polled, applied, len(envs))
                        await asyncio.sleep(pause)
                    done = time.perf_counter()
                    if first_seen is not None:
                        result.add(
                            "apply_events_per_s",
                            per_second(applied - first_seen[1], done - first_seen[0]),
                            "events/s",
                            "live consumer: parse, inbox, pairs, standings upsert, memory "
                            "(batches of the consumer's max_records)",
                        )
                    mem = rss_mib(proc.pid)
                    result.add("service_rss_mb", mem["VmRSS"], "MiB", "after load and apply")
                    result.add("service_peak_rss_mb", mem["VmHWM"], "MiB")
                    ready = await probe.get_json("/internal/v1/boards/top", window="year")
                    result.add("year_board_people", ready["total"], "people")

                    if "queries" in PHASES:
                        await http_floor(result)
                        await query_load("127.0.0.1", port, rng, result)

                    # Freshness: produce one event, poll the rank until it shows.
                    samples: list[int] = []
                    for i in range(FRESHNESS if "freshness" in PHASES else 0):
                        who = pid(rng.randrange(PEOPLE))
                        env_ = thanks_event(10_000_000 + i, helper=who, giver=pid(0), at=now)
                        before = await probe.get_json(
                            "/internal/v1/boards/rank", window="year", person=who
                        )
                        t0 = time.perf_counter_ns()
                        await produce(pub, help_topic, [env_])
                        while True:
                            got = await probe.get_json(
                                "/internal/v1/boards/rank", window="year", person=who
                            )
                            if got["score"] != before["score"]:
                                break
                            if time.perf_counter_ns() - t0 > 10e9:
                                result.notes.append("freshness sample timed out")
                                break
                            await asyncio.sleep(0.001)
                        samples.append(time.perf_counter_ns() - t0)
                    if samples:
                        for key, value in percentiles(samples).items():
                            result.add(f"freshness_{key}_ms", value, "ms")

                    # The deferred half of the day-row layout: rolling one day's rows up
                    # into the rolled-up rows of its five periods (the service does it
                    # hourly, holding applies back meanwhile), timed while it serves.
                    if "rollup" in PHASES:
                        await rollup_one_day(url, result)
                finally:
                    await probe.close()

            # The same events replayed in batches (the rebuild path) into a fresh schema.
            if "rebuild" in PHASES and envs:
                await rebuild_path(url, ctx, settings, help_topic, result)
        finally:
            await pub.stop()

    if "apply_events_per_s" in result.figures:
        result.add_ratio(
            "apply_vs_kafka_consume", figure="apply_events_per_s", of="kafka_consume_events_per_s"
        )
    for name in ("top10", "rank", "neighbourhood"):
        if f"http_{name}_p99_ms" in result.figures:
            result.add_ratio(
                f"http_{name}_p99_vs_floor", figure=f"http_{name}_p99_ms", of="http_floor_p99_ms"
            )
            result.add_ratio(
                f"http_{name}_p50_vs_floor", figure=f"http_{name}_p50_ms", of="http_floor_p50_ms"
            )
    result.add_target("http_top10_p99_ms", "<=", 2.0, "issue #4")
    result.add_target("http_rank_p99_ms", "<=", 5.0, "issue #4")
    result.add_target("apply_events_per_s", ">=", 10_000, "issue #4")
    result.add_target("freshness_p99_ms", "<=", 1000.0, "issue #4")
    return result


async def rebuild_path(
    url: str, ctx: BenchContext, settings: LeaderboardSettings, help_topic: str, result: Result
) -> None:
    """Replay the applied events in batches (the rebuild path) into a fresh schema."""
    await asyncio.to_thread(migrate, url, schema="leaderboard_rebuild", migrations_dir=MIGRATIONS)
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
