"""Notifier fan-out: celebrations to 10,000 people through follows, into in-app and webhooks.

The notifier runs as its own process (`thrive-notifier serve`, uvloop under uvicorn), exactly
as deployed, on a fresh database and its own copies of the topics (THRIVE_TOPIC_SUFFIX). A
local webhook sink in this process receives every webhook, checks its signature, and counts
effects per idempotency key, as a careful receiver would.

Population (seeded): BENCH_NOTIFIER_PEOPLE (10,000) people in 100 teams; each follows a
log-normal number of targets (median 20): 70 % people (popularity skewed), 10 % teams, 20 %
themes (200 themes, skewed); 5 % have a personal webhook, every team has a channel webhook,
5 % mute a theme, 20 % have offered help on one to three themes. Budgets are set high: this
measures fan-out, not deferral.

Events: a realistic mix — 96.5 % thanks (one receiver), 2 % small milestones, 0.5 % large
milestones (person, team channel, followers of the person, the team and the themes), 1 %
asks (theme followers who offered before).

1. Throughput: BENCH_NOTIFIER_EVENTS (100,000) celebrations produced flat out; deliveries/s
   = (in-app + webhook deliveries) / (first produce -> the last one delivered).
2. Latency: BENCH_NOTIFIER_RATE (500) events/s for BENCH_NOTIFIER_LATENCY_S (30) s; per
   delivery, the event's time -> in the inbox (ledger's delivered_at) or at the sink.
3. Correctness at the sink: expected deliveries are computed here from the generated graph
   with the domain's audience rules; duplicates (a key seen twice) and losses (a key never
   seen) are counted, as are duplicate or missing in-app rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from thrive_notifier.adapters.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from thrive_notifier.adapters.webhook import verify as verify_signature
from thrive_notifier.bootstrap import MIGRATIONS
from thrive_notifier.domain.audience import AudienceFacts, audience_query, resolve_audience
from thrive_notifier.domain.model import (
    Celebration,
    Channel,
    DeliveryKey,
    Kind,
    Mute,
    MuteKind,
    RecipientKind,
)
from thrive_notifier.entrypoints.kafka import TOPICS
from thrive_shared.contracts import (
    AskSize,
    CelebrationSize,
    HelpReceived,
    HelpRequested,
    MilestoneReached,
    make_event,
    topics,
)
from thrive_shared.contracts.topics import SUFFIX_ENV
from thrive_shared.db import migrate
from thrive_shared.kafka import OutgoingRecord, Publisher

from .harness import BenchContext, Result, Stopwatch, ceiling, now_ns, percentiles

PEOPLE = int(os.environ.get("BENCH_NOTIFIER_PEOPLE", "10000"))
EVENTS = int(os.environ.get("BENCH_NOTIFIER_EVENTS", "100000"))
RATE = float(os.environ.get("BENCH_NOTIFIER_RATE", "500"))
LATENCY_S = float(os.environ.get("BENCH_NOTIFIER_LATENCY_S", "30"))
TEAMS = 100
THEMES = 200
SEED = 20261125
SECRET = "bench-webhook-secret"
DRAIN_TIMEOUT_S = float(os.environ.get("BENCH_NOTIFIER_DRAIN_S", "2400"))
MIX = (("thanks", 0.965), ("small", 0.02), ("large", 0.005), ("ask", 0.01))


# ---------------------------------------------------------------------------------------------
# The population and its follow graph


@dataclass
class World:
    run: str
    people: list[str]
    team_of: dict[str, str]
    followers: dict[tuple[str, str], set[str]]  # (kind, target) -> followers
    follow_rows: list[tuple[str, str, str]]
    webhooks: set[str]
    mutes: dict[str, list[Mute]]
    offers: dict[str, set[str]]  # theme -> people who offered on it
    theme_cum: list[float]
    person_cum: list[float]

    @property
    def teams(self) -> list[str]:
        return sorted(set(self.team_of.values()))


def _zipf_cum(n: int, s: float, rng: random.Random | None = None) -> list[float]:
    """Cumulative Zipf weights (shuffled when rng is given), for random.choices(cum_weights=)."""
    weights = [1.0 / (rank**s) for rank in range(1, n + 1)]
    if rng is not None:
        rng.shuffle(weights)
    return list(itertools.accumulate(weights))


def build_world(rng: random.Random, run: str) -> World:
    people = [f"b{i}-{run}" for i in range(PEOPLE)]
    team_of = {p: f"team{i % TEAMS}-{run}" for i, p in enumerate(people)}
    themes = [f"theme{i}" for i in range(THEMES)]
    popularity = _zipf_cum(PEOPLE, 0.8, rng)
    theme_cum = _zipf_cum(THEMES, 0.8)
    teams = sorted(set(team_of.values()))
    followers: dict[tuple[str, str], set[str]] = defaultdict(set)
    rows: set[tuple[str, str, str]] = set()
    for p in people:
        k = max(1, min(200, round(rng.lognormvariate(math.log(20), 0.6))))
        for _ in range(k):
            roll = rng.random()
            if roll < 0.7:
                target = rng.choices(people, cum_weights=popularity)[0]
                kind = "person"
                if target == p:
                    continue
            elif roll < 0.8:
                kind, target = "team", rng.choice(teams)
            else:
                kind, target = "theme", rng.choices(themes, cum_weights=theme_cum)[0]
            rows.add((p, kind, target))
            followers[(kind, target)].add(p)
    webhooks = set(rng.sample(people, PEOPLE // 20))
    mutes = {
        p: [Mute(MuteKind.THEME, rng.choices(themes, cum_weights=theme_cum)[0])]
        for p in rng.sample(people, PEOPLE // 20)
    }
    offers: dict[str, set[str]] = defaultdict(set)
    for p in rng.sample(people, PEOPLE // 5):
        for t in rng.sample(themes, rng.randint(1, 3)):
            offers[t].add(p)
    return World(
        run,
        people,
        team_of,
        followers,
        sorted(rows),
        webhooks,
        mutes,
        offers,
        theme_cum,
        popularity,
    )


async def seed(url: str, world: World, sink_url: str) -> None:
    """Load the population straight into the notifier's tables (COPY: seconds, not minutes)."""
    conn = await asyncpg.connect(url, server_settings={"search_path": "notifier"})
    try:
        await conn.copy_records_to_table(
            "person",
            records=[(p, p, f"{p}@example.test", world.team_of[p], "UTC") for p in world.people],
            columns=["person", "name", "email", "team", "timezone"],
        )
        await conn.copy_records_to_table(
            "follow", records=world.follow_rows, columns=["person", "kind", "target"]
        )
        await conn.copy_records_to_table(
            "preferences",
            records=[
                (p, 100_000, ["in_app", "webhook"], "daily", 8, f"{sink_url}/p/{p}")
                for p in sorted(world.webhooks)
            ],
            columns=[
                "person",
                "daily_budget",
                "channels",
                "digest_frequency",
                "digest_hour",
                "webhook_url",
            ],
        )
        await conn.copy_records_to_table(
            "team_channel",
            records=[(t, f"{sink_url}/t/{t}") for t in world.teams],
            columns=["team", "webhook_url"],
        )
        await conn.copy_records_to_table(
            "mute",
            records=[(p, m.kind.value, m.target) for p, ms in world.mutes.items() for m in ms],
            columns=["person", "kind", "target"],
        )
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "offer_history",
            records=[(p, t, 1, now) for t, ps in world.offers.items() for p in ps],
            columns=["person", "theme", "offers", "last_offered_at"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------
# Events, and what each must cause (the oracle)


@dataclass
class Expected:
    in_app: int = 0
    webhook_keys: set[str] = field(default_factory=set)

    def add(self, other: Expected) -> None:
        self.in_app += other.in_app
        self.webhook_keys |= other.webhook_keys


def make_events(
    rng: random.Random, world: World, n: int, *, tag: str
) -> tuple[list[Any], Expected]:
    themes = [f"theme{i}" for i in range(THEMES)]
    kinds, weights = zip(*MIX, strict=True)
    events, expected = [], Expected()
    now = datetime.now(UTC)
    for seq in range(n):
        kind = rng.choices(kinds, weights=weights)[0]
        picked = sorted(set(rng.choices(themes, cum_weights=world.theme_cum, k=rng.randint(0, 2))))
        person = rng.choices(world.people, cum_weights=world.person_cum)[0]
        if kind == "thanks":
            giver = rng.choice(world.people)
            if giver == person:
                continue
            data: Any = HelpReceived(
                thanks_id=f"{tag}-{seq}",
                giver=giver,
                helper=person,
                themes=picked,
                message=f"thanks for the help {seq}",
                given_at=now,
            )
        elif kind in ("small", "large"):
            data = MilestoneReached(
                milestone_id=f"{tag}-{seq}",
                person=person,
                team=world.team_of[person],
                rule_id="people_helped",
                level=1 + seq % 5,
                size=CelebrationSize.LARGE if kind == "large" else CelebrationSize.SMALL,
                title="Helped ten people",
                themes=picked,
                reached_at=now,
            )
        else:
            data = HelpRequested(
                ask_id=f"{tag}-{seq}",
                asker=person,
                title="Pairing on a flaky test?",
                themes=picked or [themes[0]],
                size=AskSize.QUICK,
                expires_at=now + timedelta(days=3),
            )
        env = make_event(data, source="thrive/recognition")
        events.append(env)
        expected.add(expect(world, env))
    return events, expected


def expect(world: World, env: Any) -> Expected:
    """What the notifier must deliver for one event, from the graph and the domain's rules."""
    d = env.data
    if isinstance(d, HelpReceived):
        c = Celebration(
            event_id=env.id,
            kind=Kind.THANKS,
            subject=d.helper,
            actor=d.giver,
            title="",
            themes=tuple(d.themes),
            occurred_at=d.given_at,
        )
    elif isinstance(d, MilestoneReached):
        c = Celebration(
            event_id=env.id,
            kind=Kind.MILESTONE,
            subject=d.person,
            team=d.team,
            title=d.title,
            themes=tuple(d.themes),
            large=d.size is CelebrationSize.LARGE,
            occurred_at=d.reached_at,
        )
    else:
        c = Celebration(
            event_id=env.id,
            kind=Kind.ASK,
            subject=d.asker,
            title=d.title,
            themes=tuple(d.themes),
            occurred_at=env.time,
        )
    q = audience_query(c)
    f = world.followers
    facts = AudienceFacts(
        person_followers=frozenset(f.get(("person", q.person_followers or ""), ())),
        team_followers=frozenset(f.get(("team", q.team_followers or ""), ())),
        theme_followers=frozenset().union(*(f.get(("theme", t), ()) for t in q.theme_followers)),
        theme_offerers=frozenset().union(*(world.offers.get(t, ()) for t in q.theme_offerers)),
    )
    out = Expected()
    for r in resolve_audience(c, facts, world.mutes):
        if r.kind is RecipientKind.TEAM:
            out.webhook_keys.add(DeliveryKey(env.id, r, Channel.WEBHOOK).idempotency_key)
            continue
        out.in_app += 1
        if r.id in world.webhooks:
            out.webhook_keys.add(DeliveryKey(env.id, r, Channel.WEBHOOK).idempotency_key)
    return out


# ---------------------------------------------------------------------------------------------
# The webhook sink


@dataclass
class Sink:
    effects: dict[str, float] = field(default_factory=dict)  # key -> first arrival (epoch s)
    about: dict[str, str] = field(default_factory=dict)  # key -> event id
    duplicates: int = 0
    bad_signatures: int = 0
    port: int = 0

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        arrived = time.time()
        if not verify_signature(
            SECRET.encode(),
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
        ):
            self.bad_signatures += 1
            return Response(status_code=401)
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if key in self.effects:
            self.duplicates += 1
        else:
            self.effects[key] = arrived
            self.about[key] = orjson.loads(body)["thrive"]["about"]
        return Response(b"ok")


@contextlib.asynccontextmanager
async def running_sink() -> AsyncIterator[Sink]:
    sink = Sink()
    app = Starlette(routes=[Route("/{path:path}", sink.handle, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            access_log=False,
            backlog=2048,
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1000):  # up to 10 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    sink.port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.should_exit = True
        await task


# ---------------------------------------------------------------------------------------------
# Topics, the notifier process, waiting


@contextlib.asynccontextmanager
async def suffixed_topics(ctx: BenchContext, suffix: str) -> AsyncIterator[None]:
    names = [f"{t}-{suffix}" for t in (*TOPICS, topics.CELEBRATION_DELIVERED_V2, topics.DLQ)]
    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.kafka_bootstrap, client_id="thrive-bench")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 3, 1) for n in names])
        yield
    finally:
        try:
            await admin.delete_topics(names)
        finally:
            await admin.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_PROFILED = """
import cProfile, marshal, runpy, sys, threading
prof = cProfile.Profile()
def dump():
    while True:
        threading.Event().wait(15)
        prof.snapshot_stats()
        with open({path!r}, "wb") as f:
            marshal.dump(prof.stats, f)
threading.Thread(target=dump, daemon=True).start()
sys.argv = ["thrive-notifier", *sys.argv[1:]]
prof.enable()
runpy.run_module("thrive_notifier", run_name="__main__")
"""


@contextlib.contextmanager
def notifier_process(ctx: BenchContext, url: str, suffix: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THRIVE_NOTIFIER_")}
    env.update(
        {
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": ctx.kafka_bootstrap,
            SUFFIX_ENV: suffix,
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
            "THRIVE_NOTIFIER_PORT": str(free_port()),
            "THRIVE_NOTIFIER_CONSUMER_GROUP": ctx.unique("bench-notifier"),
            "THRIVE_NOTIFIER_WEBHOOK_SECRET": SECRET,
            "THRIVE_NOTIFIER_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32",
            "THRIVE_NOTIFIER_WEBHOOK_REQUIRE_HTTPS": "false",
            "THRIVE_NOTIFIER_DEFAULT_DAILY_BUDGET": "100000",
            "THRIVE_NOTIFIER_EMAIL_ENABLED": "false",
        }
    )
    ctx.results_dir.mkdir(parents=True, exist_ok=True)  # a fresh checkout has none yet
    log = open(ctx.results_dir / "notifier-bench.log", "wb")  # noqa: SIM115
    # BENCH_NOTIFIER_PROFILE=<file>: run the notifier under cProfile; its stats are written
    # to <file> every 15 s (a stopped service is not always given the time to write them).
    profile = os.environ.get("BENCH_NOTIFIER_PROFILE")
    command = ["-c", _PROFILED.format(path=profile)] if profile else ["-m", "thrive_notifier"]
    proc = subprocess.Popen(
        [sys.executable, *command, "serve"],
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


async def wait_until(
    pool: asyncpg.Pool, sink: Sink, *, in_app: int, webhooks: int, timeout: float
) -> int:
    """Wait until everything expected arrived; returns how many are still missing.

    A count(*) over the inbox (up to ~900k rows) costs Postgres tens of ms: polled every
    50 ms it took a large share of a core from the service under test. Every 0.5 s costs
    the rate at most 0.5 s of a ~200 s run.
    """
    deadline = time.monotonic() + timeout
    while True:
        got = await pool.fetchval("SELECT count(*) FROM inbox_item")
        missing = max(0, in_app - got) + max(0, webhooks - len(sink.effects))
        if missing == 0 or time.monotonic() > deadline:
            return int(missing)
        await asyncio.sleep(0.5)


async def dump_latencies(pool: asyncpg.Pool, sink: Sink, events: list[Any], path: str) -> None:
    """BENCH_NOTIFIER_LATENCY_DUMP=<file>: one JSON object per ledger row of the latency
    phase, to take its latency apart: the event's kind and time (`sent`), the channel, the
    writing transaction's start (`created`) and its `now` (`written`; for an email/webhook
    row the `now` it was reserved with, until a retry moves it), `delivered` and the
    sink's first arrival (`sink`), as epoch seconds."""
    kinds = {
        e.id: type(e.data).__name__
        + (f":{e.data.size.value}" if isinstance(e.data, MilestoneReached) else "")
        for e in events
    }
    sent = {e.id: e.time.timestamp() for e in events}
    rows = await pool.fetch(
        "SELECT event_id, channel, idempotency_key, created_at, next_attempt_at, delivered_at"
        " FROM delivery WHERE event_id = ANY($1)",
        list(sent),
    )
    lines = [
        orjson.dumps(
            {
                "event": r["event_id"],
                "kind": kinds[r["event_id"]],
                "channel": r["channel"],
                "sent": sent[r["event_id"]],
                "created": r["created_at"].timestamp(),
                "written": r["next_attempt_at"].timestamp(),
                "delivered": r["delivered_at"].timestamp() if r["delivered_at"] else None,
                "sink": sink.effects.get(r["idempotency_key"]),
            }
        )
        for r in rows
    ]
    await asyncio.to_thread(Path(path).write_bytes, b"\n".join(lines) + b"\n")


async def send(producer: Publisher, suffix: str, events: list[Any]) -> None:
    await producer.send_all(
        [
            OutgoingRecord(topic=f"{e.data.TOPIC}-{suffix}", key=e.subject, value=e.to_json())
            for e in events
        ]
    )


# ---------------------------------------------------------------------------------------------


async def main(ctx: BenchContext) -> Result:
    result = Result(
        name="notifier",
        parameters={
            "people": PEOPLE,
            "teams": TEAMS,
            "themes": THEMES,
            "events": EVENTS,
            "latency_rate_per_s": RATE,
            "latency_seconds": LATENCY_S,
            "mix": dict(MIX),
            "follows_median": 20,
            "webhook_people_share": 0.05,
        },
    )
    result.set_baseline(await ceiling(ctx))
    rng = random.Random(SEED)
    suffix = ctx.unique("nb").replace("-", "")
    world = build_world(rng, ctx.run_id)
    degrees = sorted(sum(1 for _ in g) for g in _group_sizes(world.follow_rows))
    result.parameters["follows_median_measured"] = degrees[len(degrees) // 2]
    result.parameters["follow_rows"] = len(world.follow_rows)

    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(ctx.fresh_database("bench_notifier"))
        await stack.enter_async_context(suffixed_topics(ctx, suffix))
        sink = await stack.enter_async_context(running_sink())
        await asyncio.to_thread(migrate, url, schema="notifier", migrations_dir=MIGRATIONS)
        await seed(url, world, f"http://127.0.0.1:{sink.port}")
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=2, server_settings={"search_path": "notifier"}
        )
        stack.push_async_callback(pool.close)
        producer = Publisher(ctx.kafka_bootstrap, client_id=ctx.unique("bench-notifier"))
        await producer.start()
        stack.push_async_callback(producer.stop)
        stack.enter_context(notifier_process(ctx, url, suffix))

        total = Expected()
        # Warm-up: the group joined, statements prepared, connections open.
        warm, exp = make_events(rng, world, 1000, tag="warm")
        total.add(exp)
        await send(producer, suffix, warm)
        await wait_until(
            pool, sink, in_app=total.in_app, webhooks=len(total.webhook_keys), timeout=180
        )

        # 1. Throughput.
        events, exp = make_events(rng, world, EVENTS, tag="tp")
        total.add(exp)
        with Stopwatch() as sw:
            for i in range(0, len(events), 5000):
                await send(producer, suffix, events[i : i + 5000])
            produced_s = sw.seconds
            undrained = await wait_until(
                pool,
                sink,
                in_app=total.in_app,
                webhooks=len(total.webhook_keys),
                timeout=DRAIN_TIMEOUT_S,
            )
        deliveries = exp.in_app + len(exp.webhook_keys) - undrained
        if undrained:
            result.notes.append(
                f"throughput: {undrained} deliveries still pending after {DRAIN_TIMEOUT_S:.0f}s;"
                " the rate counts only what arrived"
            )
        result.add(
            "deliveries_per_s",
            deliveries / sw.seconds,
            "deliveries/s",
            f"{deliveries} deliveries ({exp.in_app} in-app, {len(exp.webhook_keys)} "
            f"webhook) from {len(events)} events",
        )
        result.add("fanout_events_per_s", len(events) / sw.seconds, "events/s")
        result.add("fanout_seconds", sw.seconds, "s", f"produce took {produced_s:.1f} s")
        result.add("deliveries_per_event", deliveries / len(events), "deliveries")

        # 2. Latency at a steady rate.
        n = int(RATE * LATENCY_S)
        lat_events, exp = make_events(rng, world, n, tag="lat")
        total.add(exp)
        slice_n = max(1, int(RATE / 100))  # 10 ms slices
        start = now_ns()
        for i in range(0, len(lat_events), slice_n):
            due = start + int(i / RATE * 1e9)
            delay = (due - now_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = [
                e.model_copy(update={"time": datetime.now(UTC)})
                for e in lat_events[i : i + slice_n]
            ]
            lat_events[i : i + slice_n] = chunk
            await send(producer, suffix, chunk)
        achieved = len(lat_events) / ((now_ns() - start) / 1e9)
        late = await wait_until(
            pool,
            sink,
            in_app=total.in_app,
            webhooks=len(total.webhook_keys),
            timeout=DRAIN_TIMEOUT_S,
        )
        if late:
            result.notes.append(f"latency: {late} deliveries still pending at the end")
        sent_at = {e.id: e.time.timestamp() for e in lat_events}
        rows = await pool.fetch(
            "SELECT event_id, delivered_at FROM delivery WHERE channel = 'in_app' "
            "AND event_id = ANY($1)",
            list(sent_at),
        )
        in_app_ns = [
            int((r["delivered_at"].timestamp() - sent_at[r["event_id"]]) * 1e9) for r in rows
        ]
        hook_ns = [
            int((t - sent_at[sink.about[k]]) * 1e9)
            for k, t in sink.effects.items()
            if sink.about.get(k) in sent_at
        ]
        if dump := os.environ.get("BENCH_NOTIFIER_LATENCY_DUMP"):
            await dump_latencies(pool, sink, lat_events, dump)
        result.add("latency_rate_achieved", achieved, "events/s")
        for key, value in percentiles(in_app_ns + hook_ns).items():
            result.add(f"latency_{key}_ms", value, "ms", f"event -> delivered at {RATE:.0f}/s")
        for key, value in percentiles(in_app_ns).items():
            result.add(f"latency_in_app_{key}_ms", value, "ms")
        for key, value in percentiles(hook_ns).items():
            result.add(f"latency_webhook_{key}_ms", value, "ms")

        # 3. Correctness, counted at the sink and in the inbox.
        await asyncio.sleep(1.0)  # let any stray duplicate arrive before counting
        inbox = await pool.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT (person, about)) AS d FROM inbox_item"
        )
        missing = len(total.webhook_keys - set(sink.effects))
        unexpected = len(set(sink.effects) - total.webhook_keys)
        result.add("sink_duplicates", sink.duplicates, "count", "same idempotency key twice")
        result.add("sink_losses", missing, "count", "expected webhook never received")
        result.add("sink_unexpected", unexpected, "count", "received but not expected")
        result.add("sink_bad_signatures", sink.bad_signatures, "count")
        result.add("in_app_duplicates", inbox["n"] - inbox["d"], "count")
        result.add("in_app_losses", max(0, total.in_app - inbox["n"]), "count")
        backlog = await pool.fetchval("SELECT count(*) FROM outbox")
        result.add(
            "celebration_delivered_outbox_backlog",
            backlog,
            "events",
            "CelebrationDelivered facts not yet relayed to Kafka at the end",
        )

    result.add_ratio(
        "deliveries_vs_pg_copy_ceiling", figure="deliveries_per_s", of="pg_copy_rows_per_s"
    )
    result.add_ratio(
        "fanout_events_vs_consume_ceiling",
        figure="fanout_events_per_s",
        of="kafka_consume_events_per_s",
    )
    result.add_target("deliveries_per_s", ">=", 2000, "issue #5: fan-out throughput")
    result.add_target("latency_p99_ms", "<=", 500, "issue #5: p99 event->delivered at 500/s")
    for name in ("sink_duplicates", "sink_losses", "in_app_duplicates", "in_app_losses"):
        result.add_target(name, "<=", 0, "issue #5: zero duplicates and zero losses")
    return result


def _group_sizes(rows: list[tuple[str, str, str]]) -> list[list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for person, _kind, target in rows:
        groups[person].append(target)
    return list(groups.values())
