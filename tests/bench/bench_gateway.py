"""GraphQL gateway with the whole platform running: reads under load, and live fan-out.

- `feed(first: 20)` with nested people, `leaderboard(first: 10)` and `me` with counts, each
  driven by BENCH_GATEWAY_CLIENTS (default 20) keep-alive clients for BENCH_GATEWAY_SECONDS
  (default 10) after a warm-up: requests/s and p50/p99. The same documents are served, in the
  same run, by a bare strawberry app answering the same shape from memory (its own uvicorn
  process, like the gateway): the ratio is the cost of auth, protection, caches and services.
- BENCH_GATEWAY_SUBSCRIBERS (default 1000) WebSocket subscribers, each its own person, each
  receiving a celebration published on Kafka: latency from the produce call to the message on
  the socket, p50/p99.

The four services run as real processes (thrive_shared.platform) on a fresh database and their
own copies of every topic, so nothing else on the shared stack sees the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import strawberry
import websockets
from aiokafka import AIOKafkaProducer
from thrive_shared.contracts import CelebrationDelivered, PersonUpserted, make_event, topics
from thrive_shared.kafka import OutgoingRecord, Publisher
from thrive_shared.platform import NAMES, Platform

from .harness import BenchContext, Figure, LoadReport, Result, drive, now_ns, percentiles

CLIENTS = int(os.environ.get("BENCH_GATEWAY_CLIENTS", "20"))
SECONDS = float(os.environ.get("BENCH_GATEWAY_SECONDS", "10"))
WARMUP_S = float(os.environ.get("BENCH_GATEWAY_WARMUP_S", "2"))
SUBSCRIBERS = int(os.environ.get("BENCH_GATEWAY_SUBSCRIBERS", "1000"))
PEOPLE = int(os.environ.get("BENCH_GATEWAY_PEOPLE", "200"))
THANKS = int(os.environ.get("BENCH_GATEWAY_THANKS", "300"))
TEAMS = ["payments", "platform", "mobile", "data-eng", "support", "design", "security", "growth"]
THEMES = ["python", "kafka", "sql", "onboarding", "customer-first", "testing", "design"]

FEED = (
    "query Feed { feed(first: 20) { edges { cursor node { __typename"
    " ... on Thanks { id message themes givenAt giver { id name team } helper { id name team } }"
    " ... on Milestone { id title person { id name } } } }"
    " pageInfo { hasNextPage endCursor } } }"
)
LEADERBOARD = (
    "query Board { leaderboard(first: 10) { period"
    " standings { rank score person { id name team } } } }"
)
ME = (
    "query Me { me { id name team counts { thanksReceived thanksGiven peopleHelped teamsHelped"
    " streakWeeks } } }"
)
CELEBRATIONS = "subscription { celebrations { id kind title deliveredAt } }"
TEAM_CELEBRATIONS = CELEBRATIONS.replace(
    "celebrations {", 'celebrations(audience: TEAM, team: "bench-team") {'
)


# ---------------------------------------------------------------------------------------------
# The baseline: a bare strawberry app answering the same documents from memory


@strawberry.type(name="PersonCounts")
class BareCounts:
    thanks_received: int
    thanks_given: int
    people_helped: int
    teams_helped: int
    streak_weeks: int


@strawberry.type(name="Person")
class BarePerson:
    id: strawberry.ID
    name: str
    team: str
    counts: BareCounts


@strawberry.type(name="Thanks")
class BareThanks:
    id: strawberry.ID
    message: str
    themes: list[str]
    given_at: datetime
    giver: BarePerson
    helper: BarePerson


@strawberry.type(name="Milestone")
class BareMilestone:
    id: strawberry.ID
    title: str
    person: BarePerson


BareFeedItem = Annotated[BareThanks | BareMilestone, strawberry.union("FeedItem")]


@strawberry.type(name="FeedItemEdge")
class BareEdge:
    cursor: str
    node: BareFeedItem


@strawberry.type(name="PageInfo")
class BarePageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(name="FeedItemConnection")
class BareFeedConnection:
    edges: list[BareEdge]
    page_info: BarePageInfo


@strawberry.type(name="Standing")
class BareStanding:
    rank: int
    score: float
    person: BarePerson


@strawberry.type(name="Leaderboard")
class BareLeaderboard:
    period: str
    standings: list[BareStanding]


_BARE: dict[str, Any] = {}


@strawberry.type(name="Query")
class BareQuery:
    @strawberry.field
    async def feed(self, first: int = 20) -> BareFeedConnection:
        edges = [BareEdge(cursor=f"c{i}", node=t) for i, t in enumerate(_BARE["thanks"][:first])]
        return BareFeedConnection(
            edges=edges, page_info=BarePageInfo(has_next_page=True, end_cursor="c")
        )

    @strawberry.field
    async def leaderboard(self, first: int = 10) -> BareLeaderboard:
        board: BareLeaderboard = _BARE["board"]
        return BareLeaderboard(period=board.period, standings=board.standings[:first])

    @strawberry.field
    async def me(self) -> BarePerson:
        person: BarePerson = _BARE["people"][0]
        return person


def baseline_app() -> Any:
    """A bare strawberry ASGI app with the same shape, data in memory, no auth or protection."""
    from strawberry.asgi import GraphQL

    counts = BareCounts(
        thanks_received=3, thanks_given=4, people_helped=2, teams_helped=1, streak_weeks=1
    )
    people = [
        BarePerson(
            id=strawberry.ID(f"p{i}"), name=f"Person {i}", team=TEAMS[i % len(TEAMS)], counts=counts
        )
        for i in range(50)
    ]
    now = datetime.now(UTC)
    _BARE["people"] = people
    _BARE["thanks"] = [
        BareThanks(
            id=strawberry.ID(f"t{i}"),
            message=f"Thanks for the help with item {i}!",
            themes=[THEMES[i % len(THEMES)]],
            given_at=now,
            giver=people[i % 50],
            helper=people[(i * 7 + 1) % 50],
        )
        for i in range(100)
    ]
    _BARE["board"] = BareLeaderboard(
        period="2026-11",
        standings=[BareStanding(rank=i + 1, score=100.0 - i, person=people[i]) for i in range(50)],
    )
    return GraphQL(
        strawberry.Schema(query=BareQuery, types=[BareThanks, BareMilestone]), graphql_ide=None
    )


# ---------------------------------------------------------------------------------------------
# A lean keep-alive HTTP/1.1 client: the load generator shares the 2 cores with the servers,
# so it should cost as little as possible per request.


class KeepAlive:
    """One persistent connection posting a fixed GraphQL document."""

    def __init__(self, host: str, port: int, body: bytes, token: str | None) -> None:
        self.host, self.port = host, port
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.request = (
            f"POST /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.readexactly(length)
        if status != 200 or b'"errors"' in body:
            raise RuntimeError(f"HTTP {status}: {body[:200]!r}")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(url: str, document: str, token: str | None) -> LoadReport:
    """CLIENTS keep-alive clients posting `document` for SECONDS after a warm-up."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    body = json.dumps({"query": document}).encode()
    conns = [KeepAlive(host, int(port), body, token) for _ in range(CLIENTS)]

    async def op(client: int, _seq: int) -> None:
        await conns[client].call()

    try:
        return await drive(op, clients=CLIENTS, duration_s=SECONDS, warmup_s=WARMUP_S)
    finally:
        for conn in conns:
            conn.close()


# ---------------------------------------------------------------------------------------------
# The platform


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def topic_suffix(suffix: str) -> Any:
    previous = os.environ.get(topics.SUFFIX_ENV)
    os.environ[topics.SUFFIX_ENV] = suffix
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(topics.SUFFIX_ENV, None)
        else:
            os.environ[topics.SUFFIX_ENV] = previous


@contextlib.asynccontextmanager
async def running_platform(ctx: BenchContext) -> AsyncIterator[Platform]:
    async with ctx.fresh_database("gwbench") as database:
        plat = Platform(
            kafka=ctx.kafka_bootstrap,
            database=database,
            ports={n: _free_port() for n in NAMES},
            topic_suffix=ctx.unique("gw").replace("-", ""),
            log_dir=Path(tempfile.mkdtemp(prefix="gateway-bench-")),
            extra_env={"LOG_LEVEL": "WARNING"},
        )
        await plat.create_topics()
        plat.migrate()
        plat.start()
        try:
            with topic_suffix(plat.topic_suffix):
                await plat.wait_ready(deadline_s=180)
                yield plat
        finally:
            plat.stop()


async def seed(plat: Platform) -> dict[str, int]:
    """People through the directory topic, thanks through recognition's API."""
    publisher = Publisher(plat.kafka, client_id="gateway-bench-hr")
    await publisher.start()
    try:
        records = []
        for i in range(PEOPLE):
            pid = f"bench-{i}"
            env = make_event(
                PersonUpserted(
                    person=pid,
                    name=f"Bench Person {i}",
                    email=f"{pid}@example.com",
                    team=TEAMS[i % len(TEAMS)],
                ),
                source="hr/bench",
            )
            records.append(
                OutgoingRecord(
                    topic=topics.physical(topics.DIRECTORY_PERSON), key=pid, value=env.to_json()
                )
            )
        await publisher.send_all(records)
    finally:
        await publisher.stop()
    api = plat.url("recognition") + "/internal/v1"
    made = {"thanks": 0, "refused": 0}
    async with httpx.AsyncClient(timeout=10) as client:
        deadline = time.monotonic() + 120
        while (await client.get(f"{api}/people/bench-{PEOPLE - 1}")).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("recognition never mirrored the bench people")
            await asyncio.sleep(0.3)
        for i in range(THANKS):
            giver, helper = f"bench-{i % PEOPLE}", f"bench-{(i * 7 + 3) % PEOPLE}"
            if giver == helper:
                continue
            r = await client.post(
                f"{api}/thanks",
                json={
                    "giver": giver,
                    "helper": helper,
                    "message": f"Thanks for the help with item {i}!",
                    "themes": [THEMES[i % len(THEMES)]],
                    "visibility": "public",
                },
                headers={"X-Thrive-Actor": giver},
            )
            made["thanks" if r.status_code == 201 else "refused"] += 1
    return made


async def token(gateway: str, person: str, client: httpx.AsyncClient) -> str:
    r = await client.post(f"{gateway}/dev-oidc/token", json={"username": person})
    r.raise_for_status()
    return str(r.json()["access_token"])


# ---------------------------------------------------------------------------------------------
# Subscriptions


def _celebration_record(recipient: str, team: str) -> tuple[str, str, bytes]:
    """(celebration id a socket sees, key, value) of a CelebrationDelivered for `recipient`."""
    about = f"bench-{uuid.uuid4().hex[:12]}"
    env = make_event(
        CelebrationDelivered(
            delivery_id=f"delivered:{about}",
            recipients=[recipient],
            teams=[team],
            channel="in_app",
            about=about,
            kind="thanks",
            title="Someone thanked you",
            delivered_at=datetime.now(UTC),
        ),
        source="thrive/notifier",
    )
    # The gateway names each recipient's celebration `<about>:<recipient>`.
    return f"{about}:{recipient}", env.subject, env.to_json()


async def fan_out(plat: Platform, result: Result) -> None:
    """SUBSCRIBERS sockets, each subscribed to its own celebrations and to one team's.

    Phase 1: one celebration per person (SUBSCRIBERS events, one socket each). Phase 2: one
    team celebration that every socket receives (one event, SUBSCRIBERS sockets, executed
    once). Latency is taken from each event's own produce call (the Kafka record's creation)
    to the message on the socket; phase 1 is also reported from the start of the batch, which
    adds the load generator's time to produce all the records.
    """
    gateway = plat.url("gateway")
    ws_url = gateway.replace("http", "ws") + "/graphql"
    async with httpx.AsyncClient(timeout=30) as http:
        minting = asyncio.Semaphore(20)

        async def token_of(i: int) -> str:
            async with minting:
                return await token(gateway, f"sub-{i}", http)

        tokens = await asyncio.gather(*(token_of(i) for i in range(SUBSCRIBERS)))
        admin = await token(gateway, "ada", http)

        async def subscribers_open() -> int:
            r = await http.post(
                f"{gateway}/graphql",
                json={"query": "{ gatewayStatus { subscribers } }"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            return int(r.json()["data"]["gatewayStatus"]["subscribers"])

        sent_at: dict[str, int] = {}
        latencies: dict[str, list[int]] = {"1": [], "2": []}
        received_at: list[int] = []
        done = {"1": asyncio.Event(), "2": asyncio.Event()}
        sockets: list[Any] = []
        gate = asyncio.Semaphore(50)

        async def subscriber(i: int) -> None:
            async with gate:
                ws = await websockets.connect(
                    ws_url,
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                    max_queue=None,
                )
                sockets.append(ws)
                await ws.send(
                    json.dumps(
                        {
                            "type": "connection_init",
                            "payload": {"authorization": f"Bearer {tokens[i]}"},
                        }
                    )
                )
                ack = json.loads(await ws.recv())
                if ack["type"] != "connection_ack":
                    raise RuntimeError(f"subscriber {i} refused: {ack}")
                for sub_id, document in (("1", CELEBRATIONS), ("2", TEAM_CELEBRATIONS)):
                    await ws.send(
                        json.dumps(
                            {"id": sub_id, "type": "subscribe", "payload": {"query": document}}
                        )
                    )
            got: set[str] = set()
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                sub_id = message.get("id")
                if message.get("type") != "next" or sub_id in got or sub_id not in latencies:
                    continue
                received = now_ns()
                delivery = message["payload"]["data"]["celebrations"]["id"]
                if delivery not in sent_at:
                    continue
                got.add(sub_id)
                latencies[sub_id].append(received - sent_at[delivery])
                if sub_id == "1":
                    received_at.append(received)
                if len(latencies[sub_id]) >= SUBSCRIBERS:
                    done[sub_id].set()
                if len(got) == 2:
                    return

        tasks = [asyncio.create_task(subscriber(i)) for i in range(SUBSCRIBERS)]
        producer = AIOKafkaProducer(
            bootstrap_servers=plat.kafka, acks="all", enable_idempotence=True, linger_ms=5
        )
        await producer.start()
        try:
            deadline = time.monotonic() + 120
            while await subscribers_open() < 2 * SUBSCRIBERS:
                if time.monotonic() > deadline:
                    raise RuntimeError("subscribers did not all open")
                for t in tasks:
                    if t.done() and t.exception():
                        raise t.exception()  # type: ignore[misc]
                await asyncio.sleep(0.2)

            topic = topics.physical(topics.CELEBRATION_DELIVERED_V2)
            records = [_celebration_record(f"sub-{i}", "platform") for i in range(SUBSCRIBERS)]
            batch_start = now_ns()
            acks = []
            for delivery, key, value in records:
                sent_at[delivery] = now_ns()  # the record's creation: its own produce call
                acks.append(await producer.send(topic, value, key=key.encode()))
            await asyncio.gather(*acks)
            published = now_ns()
            async with asyncio.timeout(60):
                await done["1"].wait()

            delivery, key, value = _celebration_record("sub-0", "bench-team")
            sent_at[delivery] = now_ns()
            await (await producer.send(topic, value, key=key.encode()))
            async with asyncio.timeout(60):
                await done["2"].wait()
        finally:
            await producer.stop()
            for t in tasks:
                t.cancel()
            for ws in sockets:
                with contextlib.suppress(Exception):
                    await ws.close()
    result.add("subscribers", SUBSCRIBERS, "sockets")
    result.add("celebrations_publish_ms", (published - batch_start) / 1e6, "ms", "produce batch")
    for name, ms in percentiles(latencies["1"]).items():
        result.add(f"celebration_{name}_ms", ms, "ms", "own event, produce -> socket")
    from_batch = [at - batch_start for at in received_at]
    result.add(
        "celebration_from_batch_start_p99_ms",
        percentiles(from_batch)["p99"],
        "ms",
        "from the first produce call of the batch (includes producing all of it)",
    )
    for name, ms in percentiles(latencies["2"]).items():
        result.add(f"team_celebration_{name}_ms", ms, "ms", "1 event -> all sockets")


# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def baseline_server() -> Any:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.bench.bench_gateway:baseline_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the baseline app did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def main(ctx: BenchContext) -> Result:
    result = Result(
        name="gateway",
        parameters={
            "clients": CLIENTS,
            "seconds": SECONDS,
            "warmup_s": WARMUP_S,
            "subscribers": SUBSCRIBERS,
            "people": PEOPLE,
            "thanks": THANKS,
        },
    )
    async with running_platform(ctx) as plat:
        made = await seed(plat)
        result.parameters["seeded"] = made
        gateway = plat.url("gateway") + "/graphql"
        async with httpx.AsyncClient(timeout=10) as http:
            bearer = await token(plat.url("gateway"), "bench-1", http)
        with baseline_server() as bare:
            for name, document in (("feed", FEED), ("leaderboard", LEADERBOARD), ("me", ME)):
                result.add_load(name, await load(gateway, document, bearer), unit="req/s")
                base = await load(bare, document, None)
                result.set_baseline(
                    {
                        f"bare_{name}_throughput": Figure(
                            base.throughput, "req/s", "bare strawberry"
                        ),
                        f"bare_{name}_p99_ms": Figure(
                            percentiles(base.latencies_ns)["p99"], "ms", "bare strawberry"
                        ),
                    }
                )
                result.add_ratio(
                    f"{name}_vs_bare", figure=f"{name}_throughput", of=f"bare_{name}_throughput"
                )
        await fan_out(plat, result)

    result.add_target("feed_throughput", ">=", 2000, "feed(first: 20), 20 clients")
    result.add_target("feed_p99_ms", "<=", 50)
    result.add_target("leaderboard_throughput", ">=", 4000, "cached, invalidated by events")
    result.add_target("leaderboard_p99_ms", "<=", 25)
    result.add_target("celebration_p99_ms", "<=", 500, "1,000 subscribers, from the Kafka event")
    result.add_target("team_celebration_p99_ms", "<=", 500, "one event to 1,000 subscribers")
    result.notes.append(
        "Load generator, gateway, the three services, Kafka and Postgres share this machine's "
        "cores; the bare app runs alone in its own process."
    )
    return result
