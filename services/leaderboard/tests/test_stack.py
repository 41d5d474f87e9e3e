"""The leaderboard on the real broker and database: exactly-once scores, rebuild, privacy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from thrive_leaderboard.adapters.repository import Repository
from thrive_leaderboard.bootstrap import MIGRATIONS, build_spec, make_keys
from thrive_leaderboard.domain.periods import Window, period_of
from thrive_leaderboard.service_layer.apply import Applier
from thrive_leaderboard.service_layer.rebuild import copy_owned_state, replay_into
from thrive_leaderboard.settings import LeaderboardSettings
from thrive_shared.contracts import (
    HelpReceived,
    LeaderboardChanged,
    MilestoneReached,
    PersonErased,
    PersonUpserted,
    make_event,
    parse_for_topic,
)
from thrive_shared.contracts import topics as t
from thrive_shared.db import create_pool, migrate
from thrive_shared.kafka import OutgoingRecord, Publisher
from thrive_shared.service import Runtime, build_app
from thrive_shared.testing import unique_name, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]

NOW = datetime.now(UTC)


@pytest.fixture
async def topics(topic_factory):
    return {
        # Named after the contracts: the suffix is stripped to find the payload types.
        "help": await topic_factory(t.HELP_RECEIVED, partitions=3),
        "milestone": await topic_factory(t.MILESTONE_REACHED, partitions=2),
        "directory": await topic_factory(t.DIRECTORY_PERSON, partitions=2),
        "changed": await topic_factory(t.LEADERBOARD_CHANGED, partitions=1),
    }


@pytest.fixture
def settings(stack, database_url, topics) -> LeaderboardSettings:
    return LeaderboardSettings(
        kafka_bootstrap_servers=stack.kafka_bootstrap,
        database_url=database_url,
        topic_help_received=topics["help"],
        topic_milestone_reached=topics["milestone"],
        topic_directory_person=topics["directory"],
        topic_leaderboard_changed=topics["changed"],
        consumer_group_id=unique_name("lb-test"),
        live_interval_seconds=0.2,
        log_json=False,
    )


@pytest.fixture
async def publisher(stack) -> AsyncIterator[Publisher]:
    pub = Publisher(stack.kafka_bootstrap, client_id="lb-test-producer")
    await pub.start()
    yield pub
    await pub.stop()


@pytest.fixture
async def migrated(settings):
    await asyncio.to_thread(
        migrate, settings.database_url, schema="leaderboard", migrations_dir=MIGRATIONS
    )
    return settings


@contextlib.asynccontextmanager
async def running(
    settings: LeaderboardSettings,
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    spec = build_spec(settings)
    rt = Runtime(spec)
    app = build_app(spec, runtime=rt)
    # As uvicorn serves it: the fast board reads in front of the app.
    asgi = spec.wrap_app(app, rt) if spec.wrap_app is not None else app
    await rt.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi), base_url="http://leaderboard"
        ) as client:
            yield rt, client
    finally:
        await rt.stop()


def thanks(i: int, helper: str, giver: str, *, days_ago: int = 0, **kw):
    data = HelpReceived(
        thanks_id=f"t{i}",
        helper=helper,
        giver=giver,
        helper_team=kw.pop("helper_team", "red"),
        giver_team=kw.pop("giver_team", "blue"),
        given_at=NOW - timedelta(days=days_ago),
        **kw,
    )
    return make_event(data, source="thrive/recognition", id=f"thanks-{i}")


def person(name: str, team: str):
    return make_event(
        PersonUpserted(person=name, name=name.title(), email=f"{name}@example.com", team=team),
        source="hr",
    )


async def send(pub: Publisher, topic: str, envs) -> None:
    await pub.send_all(
        [OutgoingRecord(topic=topic, key=e.subject, value=e.to_json()) for e in envs]
    )


async def rank(client: httpx.AsyncClient, who: str, **params) -> dict:
    params.setdefault("window", "all_time")
    resp = await client.get("/internal/v1/boards/rank", params={"person": who, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def standings(url: str, schema: str) -> list[tuple]:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        rows = []
        async for r in Repository().all_standings(conn):
            rows.append(tuple(r))
        # The distinct-helped facts too: a rebuild must agree on them, not only on counts.
        async for r in Repository().all_helped(conn):
            rows.append(("helped", *tuple(r)))
        return rows
    finally:
        await conn.close()


async def test_redelivery_restart_and_a_second_instance_change_no_score(
    migrated, topics, publisher
):
    s = migrated
    first = [thanks(i, "ann", f"g{i % 4}") for i in range(20)]
    async with running(s) as (_rt, client):
        await send(publisher, topics["help"], first)
        await wait_for(
            lambda: _score_is(client, "ann", 20.0 + 4 * 2 + 20),
            timeout=30,
            message="ann's 20 thanks from 4 people were not applied",
        )
        # The same events again (a producer retry, a replay): nothing changes.
        await send(publisher, topics["help"], first)
        await send(publisher, topics["help"], [thanks(100, "bob", "ann")])
        await wait_for(lambda: _on_board(client, "bob"), timeout=30)
        assert (await rank(client, "ann"))["score"] == 48.0
    # Restart, and a second instance in the same group (a rebalance mid-stream).
    more = [thanks(200 + i, "cat", f"g{i}") for i in range(30)]
    async with running(s) as (_rt1, _client1), running(s) as (_rt2, _client2):
        await send(publisher, topics["help"], more + first)
        # Two members share the partitions; a member joining mid-stream rebalances them.
        await wait_for(lambda: _count_is(s.database_url, "cat", 30), timeout=30)
    async with running(s) as (_rt, client):
        await wait_for(lambda: _score_is(client, "cat", 30 + 30 * 2 + 30.0), timeout=30)
        assert (await rank(client, "ann"))["score"] == 48.0
        assert (await rank(client, "bob"))["score"] == 1 + 2 + 1.0
        assert (await rank(client, "cat"))["rank"] == 1


async def _score_is(client, who, expected) -> bool:
    return (await rank(client, who)).get("score") == expected


async def _on_board(client, who) -> bool:
    return (await rank(client, who)).get("rank") is not None


async def test_rebuild_from_the_topics_equals_the_live_state(migrated, topics, publisher):
    s = migrated
    await send(
        publisher,
        topics["directory"],
        [person("ann", "red"), person("bob", "blue"), person("cat", "red"), person("dan", "blue")],
    )
    events = [
        thanks(
            i,
            ["ann", "bob", "cat"][i % 3],
            ["bob", "cat", "dan", "ann"][i % 4],
            days_ago=i * 9,
            themes=["python"] if i % 2 else ["docs", "python"],
            discounted=i % 5 == 0,
        )
        for i in range(60)
    ]
    events = [e for e in events if e.data.helper != e.data.giver]
    milestones = [
        make_event(
            MilestoneReached(
                milestone_id="m1",
                person="cat",
                rule_id="first",
                level=1,
                size="small",
                title="First thanks",
                reached_at=NOW,
            ),
            source="thrive/recognition",
        )
    ]
    async with running(s) as (_rt, client):
        await send(publisher, topics["help"], events[:40])
        await send(publisher, topics["milestone"], milestones)
        await send(
            publisher, topics["directory"], [make_event(PersonErased(person="dan"), source="hr")]
        )
        await send(publisher, topics["help"], events[40:] + events[:5])
        total_ann = sum(1 for e in events if e.data.helper == "ann")
        await wait_for(
            lambda: _count_is(s.database_url, "ann", total_ann),
            timeout=30,
            message="not every event was applied",
        )
        await wait_for(lambda: _count_is(s.database_url, "cat", 1, column="m"), timeout=30)
        put = await client.put("/internal/v1/people/bob/opt-out", json={"opted_out": True})
        assert put.status_code == 200
    live = await standings(s.database_url, "leaderboard")
    assert not any(r[3] == "dan" for r in live), "an erased person stays gone"

    await asyncio.to_thread(
        migrate, s.database_url, schema="leaderboard_rebuild", migrations_dir=MIGRATIONS
    )
    pool = await create_pool(s.database_url, schema="leaderboard_rebuild", min_size=1, max_size=2)
    try:
        assert await copy_owned_state(pool, from_schema="leaderboard")
        applier = Applier(repo=Repository(), keys=make_keys(s), tz=s.tz(), boards=None)
        report = await replay_into(
            pool,
            bootstrap_servers=s.kafka_bootstrap_servers,
            topic_groups=[[topics["directory"]], [topics["help"], topics["milestone"]]],
            applier=applier,
            consumer_name="rebuild-check",
            batch=7,
        )
        async with pool.acquire() as conn:
            bob = await Repository().get_person(conn, "bob")
    finally:
        await pool.close()
    assert report.duplicates == 5
    rebuilt = await standings(s.database_url, "leaderboard_rebuild")
    assert rebuilt == live
    assert bob is not None and bob.opted_out, "opt-outs survive a rebuild"


async def _count_is(url, who, n, column="n") -> bool:
    conn = await asyncpg.connect(url, server_settings={"search_path": "leaderboard"})
    try:
        got = await conn.fetchval(
            f"SELECT {column} FROM board_standing WHERE scope = 'company' "
            "AND \"window\" = 'all_time' "
            "AND person = $1",
            who,
        )
        return got == n
    finally:
        await conn.close()


async def test_opt_out_erasure_and_live_updates_through_the_api(migrated, topics, publisher):
    s = migrated
    await send(publisher, topics["directory"], [person("ann", "red"), person("bob", "red")])
    ann_line, bob_line = ("ann", 2 + 2 * 2 + 2.0), ("bob", 1 + 2 + 1.0)
    async with running(s) as (_rt, client), live_stream(s, topics["changed"]) as live:
        await send(
            publisher,
            topics["help"],
            [thanks(1, "ann", "x"), thanks(2, "ann", "y"), thanks(3, "bob", "x")],
        )
        # ann's and bob's thanks may sit on different partitions: wait for all three.
        await wait_for(lambda: _on_board(client, "bob"), timeout=30)
        await wait_for(lambda: _score_is(client, "ann", 2 + 2 * 2 + 2.0), timeout=30)
        assert (await rank(client, "bob"))["rank"] == 2
        # Each step below waits for the live stream to show it, so no coalescing tick can
        # fold two steps into one: every opt-out, erasure and opt-in must be published.
        await live.until_week_top([ann_line, bob_line])

        put = await client.put("/internal/v1/people/ann/opt-out", json={"opted_out": True})
        assert put.json() == {"person": "ann", "opted_out": True}
        assert await rank(client, "ann") == {"person": "ann", "opted_out": True}
        assert (await rank(client, "bob"))["rank"] == 1
        top = (await client.get("/internal/v1/boards/top", params={"window": "week"})).json()
        assert [i["person"] for i in top["items"]] == ["bob"]
        teams = await client.get(
            "/internal/v1/boards/top", params={"window": "week", "scope": "teams"}
        )
        # ann's help still counts for her team, in aggregate.
        assert teams.json()["items"][0]["team"] == "red"
        assert teams.json()["items"][0]["score"] == 3 + 3 * 2 + 3
        await live.until_week_top([bob_line])
        assert "ann" not in live.moved_since_last_top(), "an opt-out is not announced as a move"

        bad = await client.put("/internal/v1/people/ann/opt-out", json={"opted_out": "maybe"})
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "opted_out"
        wrong = await client.get("/internal/v1/boards/top", params={"window": "fortnight"})
        assert wrong.status_code == 400
        assert wrong.json()["error"]["field"] == "window"

        await send(
            publisher, topics["directory"], [make_event(PersonErased(person="bob"), source="hr")]
        )
        await wait_for(lambda: _off_board(client, "bob"), timeout=30)
        stored = await standings(s.database_url, "leaderboard")
        assert any(r[3] == "ann" for r in stored), "others' standings stay"
        assert not any("bob" in (r[1], r[3]) for r in stored), "erasure leaves no bob row"
        await live.until_week_top([])
        assert "bob" not in live.moved_since_last_top(), "an erased person is not named again"

        await client.put("/internal/v1/people/ann/opt-out", json={"opted_out": False})
        ann = await rank(client, "ann")
        assert (ann["rank"], ann["score"]) == (1, 2 + 2 * 2 + 2.0)
        await live.until_week_top([ann_line])

        weeks = {e.period for e in live.events if e.board.window == "week"}
        assert weeks == {period_of(Window.WEEK, datetime.now(UTC), ZoneInfo("UTC"))}


class LiveStream:
    """The LeaderboardChanged events on a topic, read from its start as the test goes."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic
        self.events: list[LeaderboardChanged] = []
        self._last_top = 0  # events before this one are older than the last top waited for

    def week(self) -> list[LeaderboardChanged]:
        """The company week board's events, in published order."""
        return [e for e in self.events if e.board.window == "week" and e.board.scope == "company"]

    async def until_week_top(self, lines: list[tuple[str, float]]) -> None:
        """Wait until the latest week event's top N is `lines` (person, score) ranked 1, 2…"""
        want = [(p, i, score) for i, (p, score) in enumerate(lines, 1)]

        async def shown() -> bool:
            got = await self.consumer.getmany(timeout_ms=200)
            for records in got.values():
                self.events.extend(parse_for_topic(self.topic, r.value).data for r in records)
            week = self.week()
            tops = [[(r.person, r.rank, r.score) for r in e.top] for e in week]
            assert tops and tops[-1] == want, f"week tops so far: {tops}"
            return True

        before = len(self.week())
        await wait_for(shown, timeout=15, message=f"the live stream never showed {want}")
        self._last_top = before

    def moved_since_last_top(self) -> set[str]:
        """People named as moved in the week events read by the last `until_week_top`."""
        return {m.person for e in self.week()[self._last_top :] for m in e.moved}


@contextlib.asynccontextmanager
async def live_stream(s: LeaderboardSettings, topic: str) -> AsyncIterator[LiveStream]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=s.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        yield LiveStream(consumer, topic)
    finally:
        await consumer.stop()


async def _off_board(client, who) -> bool:
    return (await rank(client, who)).get("rank") is None


async def test_an_erasure_never_overlaps_another_members_apply(migrated):
    """Two members' transactions at once: the erasure waits, so no row of the person stays."""
    s = migrated
    applier = Applier(repo=Repository(), keys=make_keys(s), tz=s.tz(), boards=None)
    url = s.database_url
    member, eraser, observer = [
        await asyncpg.connect(url, server_settings={"search_path": "leaderboard"}) for _ in range(3)
    ]
    try:
        in_flight = member.transaction()
        await in_flight.start()
        # One member's batch for eve, not committed yet: her rows are new, so the erasure's
        # deletes would not even wait for them without the apply lock.
        await applier.apply_batch(member, [thanks(1, "eve", "ann"), thanks(2, "eve", "bob")])

        async def erase() -> None:
            async with eraser.transaction():
                await applier.apply_batch(
                    eraser, [make_event(PersonErased(person="eve"), source="hr")]
                )

        erasing = asyncio.create_task(erase())

        async def erasure_waits_or_is_done() -> bool:
            waiting = await observer.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            return erasing.done() or waiting > 0

        await wait_for(erasure_waits_or_is_done, timeout=10)
        await in_flight.commit()
        await erasing
        left = await observer.fetchval(
            "SELECT (SELECT count(*) FROM standing WHERE person = 'eve')"
            " + (SELECT count(*) FROM standing_day WHERE person = 'eve')"
            " + (SELECT count(*) FROM helped WHERE helper = 'eve')"
        )
        assert left == 0, "the erased person's rows came back from a concurrent apply"
    finally:
        for conn in (member, eraser, observer):
            await conn.close()


def milestone(i: int, who: str):
    data = MilestoneReached(
        milestone_id=f"m{i}",
        person=who,
        rule_id="streak",
        level=1 + i,
        size="small",
        title="Streak",
        reached_at=NOW,
    )
    return make_event(data, source="thrive/recognition", id=f"milestone-{i}")


async def test_members_applying_concurrently_keep_memory_equal_to_postgres(
    migrated, topics, publisher
):
    """Thanks (3 partitions) and milestones (2) for the same people, applied by 3 members."""
    s = migrated.model_copy(update={"consumer_members": 3, "consumer_max_records": 7})
    people = ["ann", "bob", "cat", "dan"]
    helps = [thanks(i, people[i % 4], f"g{i % 9}") for i in range(240)]
    milestones = [milestone(i, people[i % 4]) for i in range(80)]
    async with running(s) as (rt, client):
        assert len(rt.consumers) == 3
        for i in range(0, 240, 30):  # interleaved, so members' batches overlap on rows
            await send(publisher, topics["help"], helps[i : i + 30])
            await send(publisher, topics["milestone"], milestones[i // 3 : i // 3 + 10])
        await wait_for(
            lambda: _all_time_totals(s.database_url, n=240, m=80),
            timeout=60,
            message="not every thanks and milestone was applied",
        )
        conn = await asyncpg.connect(s.database_url, server_settings={"search_path": "leaderboard"})
        try:
            rows = await conn.fetch(
                "SELECT \"window\", person, n, m FROM board_standing WHERE scope = 'company'"
            )
        finally:
            await conn.close()
        assert len(rows) == 4 * 5

        async def memory_matches() -> bool:
            for r in rows:
                for metric, value in (("thanks_received", r["n"]), ("milestones", r["m"])):
                    got = await rank(client, r["person"], window=r["window"], metric=metric)
                    assert got["score"] == value, (r["window"], r["person"], metric, got)
            return True

        # Memory follows commits through the mirror worker: it must end where Postgres is.
        await wait_for(memory_matches, timeout=30, message="memory differs from Postgres")


async def _all_time_totals(url: str, *, n: int, m: int) -> bool:
    conn = await asyncpg.connect(url, server_settings={"search_path": "leaderboard"})
    try:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(n), 0) AS n, coalesce(sum(m), 0) AS m FROM board_standing"
            " WHERE scope = 'company' AND \"window\" = 'all_time'"
        )
        return (row["n"], row["m"]) == (n, m)
    finally:
        await conn.close()


def thanks_at(i: int, helper: str, giver: str, at: datetime, **kw):
    data = HelpReceived(
        thanks_id=f"t{i}",
        helper=helper,
        giver=giver,
        helper_team="red",
        giver_team="blue",
        given_at=at,
        **kw,
    )
    return make_event(data, source="thrive/recognition", id=f"thanks-at-{i}")


@contextlib.asynccontextmanager
async def memory_and_store(s: LeaderboardSettings, clock: datetime):
    """An applier with resident boards over the real database (no Kafka)."""
    from thrive_leaderboard.bootstrap import make_loader
    from thrive_leaderboard.domain.scoring import scorers
    from thrive_leaderboard.service_layer.boards import Leaderboards
    from thrive_leaderboard.service_layer.directory import Directory

    pool = await create_pool(s.database_url, schema="leaderboard", min_size=1, max_size=3)
    repo = Repository()
    boards = Leaderboards(
        loader=make_loader(pool, repo),
        directory=Directory(),
        scorers=scorers(s.weights()),
        tz=s.tz(),
        clock=lambda: clock,
    )
    applier = Applier(repo=repo, keys=make_keys(s), tz=s.tz(), boards=boards)
    try:
        yield pool, repo, boards, applier
    finally:
        await pool.close()


async def commit_and_mirror(pool, applier: Applier, events) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await applier.apply_batch(conn, events)
    applier.mirror(applier.take([(e, None) for e in events]))


async def test_rolling_up_day_rows_changes_no_board_in_postgres_or_memory(migrated):
    from thrive_leaderboard.domain.periods import period_days
    from thrive_leaderboard.domain.standings import StoredBoard
    from thrive_leaderboard.service_layer.rollup import horizon, roll_up

    s = migrated
    today = datetime(2027, 1, 6, 12, tzinfo=UTC)
    # Days on both sides of a year end inside one ISO week (2026-W53 runs to 3 January),
    # the same givers on several days, themes, a milestone.
    days = [
        datetime(2026, 11, 15, 9, tzinfo=UTC),
        datetime(2026, 12, 28, 9, tzinfo=UTC),
        datetime(2027, 1, 2, 9, tzinfo=UTC),
        datetime(2027, 1, 5, 9, tzinfo=UTC),
        today,
    ]
    events = [
        thanks_at(i * 10 + j, helper, giver, at, themes=["python"] if j % 2 else [])
        for i, at in enumerate(days)
        for j, (helper, giver) in enumerate([("ann", "bob"), ("ann", "cat"), ("bob", "ann")])
    ]
    async with memory_and_store(s, today) as (pool, repo, boards, applier):
        await boards.preload()
        await commit_and_mirror(pool, applier, events[:7])
        await commit_and_mirror(pool, applier, events[7:])
        keys = [
            StoredBoard(scope, w, period)
            for scope in ("company", "theme:python")
            for at in days
            for w, period in [(w, period_of(w, at, UTC)) for w in Window]
        ]

        async def loaded() -> dict:
            out = {}
            async with pool.acquire() as conn:
                for key in set(keys):
                    read = await repo.load_board(conn, key, period_days(key.window, key.period))
                    out[key] = read.counters
            return out

        before_rows, before_boards = await standings(s.database_url, "leaderboard"), await loaded()
        moved = await roll_up(pool, repo, before=horizon(today, UTC, 2))
        assert moved == 3  # 15 Nov, 28 Dec, 2 Jan; 5 and 6 Jan stay day rows
        assert await standings(s.database_url, "leaderboard") == before_rows
        assert await loaded() == before_boards
        async with pool.acquire() as conn:
            left = await conn.fetch("SELECT DISTINCT day FROM standing_day ORDER BY 1")
        assert [r[0] for r in left] == [d.date().toordinal() for d in days[3:]]
        # Memory, which never heard of the roll-up, still equals what Postgres serves.
        for key in {k for k in keys if k.scope == "company"} & set(boards._boards):
            assert boards.resident(key).counters == before_boards[key], key
        # A late thanks for a rolled-up day writes a day row again and adds on top.
        year_2026 = StoredBoard("company", Window.YEAR, "2026")
        await commit_and_mirror(pool, applier, [thanks_at(999, "ann", "dan", days[1])])
        assert (await loaded())[year_2026]["ann"].n == before_boards[year_2026]["ann"].n + 1
        assert (await loaded())[year_2026]["ann"].d == before_boards[year_2026]["ann"].d + 1


async def test_a_board_read_after_a_commit_does_not_count_that_commit_twice(migrated):
    from thrive_leaderboard.domain.standings import StoredBoard

    s = migrated
    python = StoredBoard("theme:python", Window.ALL_TIME, "all")
    async with memory_and_store(s, NOW) as (pool, _repo, boards, applier):
        first = [thanks(1, "ann", "bob", themes=["python"])]
        async with pool.acquire() as conn, conn.transaction():
            await applier.apply_batch(conn, first)
        # Committed, but still waiting for the mirror when the board is first read.
        waiting = applier.take([(e, None) for e in first])
        board = await boards.board(python)
        assert board.counters["ann"].n == 1
        applier.mirror(waiting)
        assert board.counters["ann"].n == 1, "the read already held that commit"
        await commit_and_mirror(pool, applier, [thanks(2, "ann", "cat", themes=["python"])])
        assert board.counters["ann"].n == 2
        assert board.counters["ann"].d == 2
