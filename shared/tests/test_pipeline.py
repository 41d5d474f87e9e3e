"""The foundation's delivery guarantees, on the real Kafka broker and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from thrive_shared.contracts import Envelope, HelpReceived, make_event, topics
from thrive_shared.contracts.dlq import DeadLetter
from thrive_shared.db import create_pool, migrate
from thrive_shared.kafka import DeadLetters, EventConsumer, Publisher, RecordMeta, Reject
from thrive_shared.kafka.producer import PRODUCER_SETTINGS, make_broker
from thrive_shared.outbox import enqueue
from thrive_shared.testing import wait_for

pytestmark = pytest.mark.stack

SUPPORT = Path(__file__).parent / "support"
SCHEMA = "pipeline"


def thanks(helper: str, *, giver: str = "ada", message: str = "thank you") -> Envelope[Any]:
    return make_event(
        HelpReceived(
            thanks_id=str(uuid.uuid4()),
            giver=giver,
            helper=helper,
            message=message,
            themes=["python"],
            given_at=datetime.now(UTC),
        ),
        source="test/pipeline",
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(
        migrate, database_url, schema=SCHEMA, migrations_dir=SUPPORT / "migrations"
    )
    pool = await create_pool(database_url, schema=SCHEMA)
    yield pool
    await pool.close()


async def produce(bootstrap: str, topic: str, values: Sequence[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **{k: v for k, v in PRODUCER_SETTINGS.items() if k != "max_batch_size"},
    )
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


async def effects(pool: asyncpg.Pool) -> list[str]:
    return [
        r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects ORDER BY applied_at")
    ]


async def record_effect(conn: asyncpg.Connection, env: Envelope[Any], meta: RecordMeta) -> None:
    await conn.execute(
        "INSERT INTO effects (event_id, person) VALUES ($1, $2)", env.id, env.subject
    )


@contextlib.asynccontextmanager
async def running_consumer(
    stack: Any,
    pool: asyncpg.Pool,
    topic: str,
    *,
    handler: Any = record_effect,
    dlq_topic: str,
    produce_first: Sequence[Any] = (),
    **options: Any,
) -> AsyncIterator[EventConsumer]:
    """An EventConsumer on `topic`, started; `produce_first` events are on the topic before
    it starts (its first polls find full batches); `options` go to EventConsumer."""
    publisher = Publisher(stack.kafka_bootstrap, client_id="test-dlq")
    await publisher.start()
    consumer = EventConsumer(
        service="test",
        name="effects",
        topics=[topic],
        handler=handler,
        pool=pool,
        dead_letters=DeadLetters(publisher, service="test", topic=dlq_topic),
        **{
            "group_id": f"test-{uuid.uuid4().hex[:8]}",
            "max_attempts": 2,
            "retry_backoff": 0.05,
            **options,
        },
    )
    broker = make_broker(stack.kafka_bootstrap, client_id="test-consumer")
    consumer.register(broker)
    if produce_first:
        await produce(
            stack.kafka_bootstrap, topic, [(e.subject, e.to_json()) for e in produce_first]
        )
    await broker.start()
    try:
        yield consumer
    finally:
        await broker.stop()
        await publisher.stop()


async def read_all(bootstrap: str, topic: str, *, expect: int, timeout: float = 20.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    got: list[Any] = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                got.extend(records)
            return len(got) >= expect

        await wait_for(enough, timeout=timeout, message=f"{expect} records on {topic}")
    finally:
        await consumer.stop()
    return got


async def test_published_event_reaches_consumer_and_its_effect_is_in_postgres(
    stack: Any, db: asyncpg.Pool, topic_factory: Any
) -> None:
    topic = await topic_factory(topics.HELP_RECEIVED, partitions=3)
    dlq = await topic_factory("dlq")
    event = thanks("grace")
    async with running_consumer(stack, db, topic, dlq_topic=dlq):
        await produce(stack.kafka_bootstrap, topic, [(event.subject, event.to_json())])
        await wait_for(lambda: effects(db), timeout=20, message="effect of the event")
    assert await effects(db) == [event.id]


async def test_same_event_delivered_twice_has_one_effect(
    stack: Any, db: asyncpg.Pool, topic_factory: Any
) -> None:
    topic = await topic_factory(topics.HELP_RECEIVED, partitions=1)
    dlq = await topic_factory("dlq")
    first, second = thanks("grace"), thanks("linus")
    raw = first.to_json()
    async with running_consumer(stack, db, topic, dlq_topic=dlq) as consumer:
        # The same bytes twice (a producer retry), then another event as a marker.
        await produce(
            stack.kafka_bootstrap,
            topic,
            [(first.subject, raw), (first.subject, raw), (second.subject, second.to_json())],
        )

        async def both_applied() -> bool:
            return set(await effects(db)) == {first.id, second.id}

        await wait_for(both_applied, timeout=20, message="both events applied")
        assert consumer.batches >= 1
    assert sorted(await effects(db)) == sorted([first.id, second.id])
    inbox = await db.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'effects'")
    assert inbox == 2


async def test_invalid_events_go_to_the_dlq_with_their_reason_and_the_valid_ones_go_through(
    stack: Any, db: asyncpg.Pool, topic_factory: Any
) -> None:
    topic = await topic_factory(topics.HELP_RECEIVED, partitions=1)
    dlq = await topic_factory("dlq")
    good1, good2, rejected = thanks("grace"), thanks("linus"), thanks("nobody")
    missing_helper = good1.model_dump(mode="json")
    del missing_helper["data"]["helper"]

    async def handler(conn: asyncpg.Connection, env: Envelope[Any], meta: RecordMeta) -> None:
        if env.data.helper == "nobody":
            raise Reject("unknown person: helper 'nobody' is not in the directory")
        await record_effect(conn, env, meta)

    import orjson

    stream = [
        ("k", good1.to_json()),
        ("k", b"{not json"),
        ("k", orjson.dumps(missing_helper)),
        ("k", rejected.to_json()),
        ("k", good2.to_json()),
    ]
    async with running_consumer(stack, db, topic, handler=handler, dlq_topic=dlq):
        await produce(stack.kafka_bootstrap, topic, stream)
        dead = await read_all(stack.kafka_bootstrap, dlq, expect=3)

        async def good_applied() -> bool:
            return set(await effects(db)) == {good1.id, good2.id}

        await wait_for(good_applied, timeout=20, message="valid events applied")

    letters = sorted((DeadLetter.from_headers(r.headers) for r in dead), key=lambda d: d.offset)
    assert [d.offset for d in letters] == [1, 2, 3]
    assert all(d.topic == topic and d.partition == 0 for d in letters)
    assert letters[0].error_class == "InvalidEvent" and "not JSON" in letters[0].error_message
    assert letters[1].error_class == "InvalidEvent" and "helper" in letters[1].error_message
    assert letters[2].error_class == "Reject" and "unknown person" in letters[2].error_message
    assert letters[2].attempts == 1
    # The DLQ keeps the original bytes, so an operator can fix and replay them.
    assert {r.value for r in dead} == {stream[1][1], stream[2][1], stream[3][1]}


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(
    stack: Any, db: asyncpg.Pool, topic_factory: Any
) -> None:
    topic = await topic_factory(topics.HELP_RECEIVED, partitions=1)
    dlq = await topic_factory("dlq")
    good, bad = thanks("grace"), thanks("crash")
    calls: dict[str, int] = {}

    async def handler(conn: asyncpg.Connection, env: Envelope[Any], meta: RecordMeta) -> None:
        calls[env.data.helper] = calls.get(env.data.helper, 0) + 1
        await record_effect(conn, env, meta)  # written, then rolled back with its savepoint
        if env.data.helper == "crash":
            raise ZeroDivisionError("division by zero in a buggy rule")

    async with running_consumer(stack, db, topic, handler=handler, dlq_topic=dlq):
        await produce(stack.kafka_bootstrap, topic, [("k", bad.to_json()), ("k", good.to_json())])
        dead = await read_all(stack.kafka_bootstrap, dlq, expect=1)
        await wait_for(
            lambda: _has(db, good.id), timeout=20, message="the good event after the bad one"
        )
    letter = DeadLetter.from_headers(dead[0].headers)
    assert letter.error_class == "ZeroDivisionError"
    assert letter.attempts == 2
    assert await effects(db) == [good.id]  # the failing handler's partial write was undone


async def _has(pool: asyncpg.Pool, event_id: str) -> bool:
    return event_id in await effects(pool)


def _proc(mode: str, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT / "pipeline_proc.py"), mode],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return proc


async def _wait_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        line = await asyncio.wait_for(
            loop.run_in_executor(None, proc.stdout.readline), deadline - loop.time()
        )
        if not line:
            raise AssertionError(f"process exited ({proc.wait()}) before printing {prefix!r}")
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} line within {timeout}s")


async def test_consumer_killed_after_db_commit_before_offset_commit_has_no_duplicate_effect(
    stack: Any, db: asyncpg.Pool, database_url: str, topic_factory: Any
) -> None:
    topic = await topic_factory(topics.HELP_RECEIVED, partitions=1)
    group = f"test-kill-{uuid.uuid4().hex[:8]}"
    events = [thanks(f"p{i}") for i in range(20)]
    await produce(stack.kafka_bootstrap, topic, [(e.subject, e.to_json()) for e in events])
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "DATABASE_URL": database_url,
        "SCHEMA": SCHEMA,
        "TOPIC": topic,
        "GROUP": group,
    }

    doomed = _proc("consume", {**env, "CRASH": "after_commit"})
    try:
        await _wait_line(doomed, "applied")
        assert await asyncio.to_thread(doomed.wait, 20) == -signal.SIGKILL
    finally:
        if doomed.poll() is None:
            doomed.kill()
    applied_before_restart = await effects(db)
    assert applied_before_restart, "the first consumer committed its DB transaction"

    # Its offsets were never committed, so Kafka redelivers what it already applied.
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    committed = sum(meta.offset for meta in offsets.values() if meta.offset >= 0)
    assert committed < len(applied_before_restart)

    survivor = _proc("consume", env)
    try:

        async def all_applied() -> bool:
            return len(set(await effects(db))) == len(events)

        await wait_for(all_applied, timeout=30, message="every event applied after restart")
    finally:
        survivor.send_signal(signal.SIGTERM)
        await asyncio.to_thread(survivor.wait, 20)
    ids = await effects(db)
    assert sorted(ids) == sorted(e.id for e in events)  # every one, none twice


async def test_outbox_delivers_every_row_after_the_relay_is_killed_and_restarted(
    stack: Any, db: asyncpg.Pool, database_url: str, topic_factory: Any
) -> None:
    topic = await topic_factory("outbox", partitions=3)
    people = ["ada", "grace", "linus", "barbara"]
    events = [thanks(people[i % len(people)], message=f"#{i}") for i in range(250)]
    async with db.acquire() as conn, conn.transaction():
        for e in events:
            await enqueue(conn, e, topic=topic)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "DATABASE_URL": database_url,
        "SCHEMA": SCHEMA,
    }

    doomed = _proc("relay", {**env, "CRASH": "after_publish"})
    try:
        await _wait_line(doomed, "published")
        assert await asyncio.to_thread(doomed.wait, 20) == -signal.SIGKILL
    finally:
        if doomed.poll() is None:
            doomed.kill()
    # Killed after Kafka acked but before deleting: the rows are still there.
    assert await db.fetchval("SELECT count(*) FROM outbox") == len(events)

    survivor = _proc("relay", env)
    try:

        async def drained() -> bool:
            return await db.fetchval("SELECT count(*) FROM outbox") == 0

        await wait_for(drained, timeout=30, message="outbox drained after restart")
    finally:
        survivor.send_signal(signal.SIGTERM)
        await asyncio.to_thread(survivor.wait, 20)

    records = await read_all(stack.kafka_bootstrap, topic, expect=len(events))
    from thrive_shared.contracts import parse_event

    seen = [parse_event(r.value, HelpReceived) for r in records]
    assert {e.id for e in seen} == {e.id for e in events}  # every row delivered
    # In order per key (the partition key is the person), first copies counted.
    for person in people:
        firsts: list[str] = []
        for e in seen:
            if e.subject == person and e.id not in firsts:
                firsts.append(e.id)
        assert firsts == [e.id for e in events if e.subject == person]
    # Re-sent rows carry the same event id, so consumers deduplicate them.
    assert len(seen) >= len(events)


async def test_a_rebalance_mid_stream_neither_loses_nor_doubles_an_effect(
    stack: Any, db: asyncpg.Pool, topic_factory: Any
) -> None:
    topic = await topic_factory(topics.HELP_RECEIVED, partitions=3)
    dlq = await topic_factory("dlq")
    group = f"test-rebalance-{uuid.uuid4().hex[:8]}"
    events = [thanks(f"p{i % 17}") for i in range(600)]

    def member() -> tuple[EventConsumer, Any, Publisher]:
        publisher = Publisher(stack.kafka_bootstrap, client_id="test-dlq")
        consumer = EventConsumer(
            service="test",
            name="effects",
            group_id=group,
            topics=[topic],
            handler=record_effect,
            pool=db,
            dead_letters=DeadLetters(publisher, service="test", topic=dlq),
            max_records=20,
        )
        broker = make_broker(stack.kafka_bootstrap, client_id="test-member")
        consumer.register(broker)
        return consumer, broker, publisher

    first, first_broker, first_pub = member()
    second, second_broker, second_pub = member()
    await first_pub.start()
    await second_pub.start()
    await first_broker.start()
    try:
        await produce(
            stack.kafka_bootstrap, topic, [(e.subject, e.to_json()) for e in events[:300]]
        )
        await wait_for(lambda: _count(db, 50), timeout=20, message="first member applying")
        await second_broker.start()  # joins the group: partitions move while events flow
        await produce(
            stack.kafka_bootstrap, topic, [(e.subject, e.to_json()) for e in events[300:]]
        )

        async def all_applied() -> bool:
            return len(set(await effects(db))) == len(events)

        await wait_for(all_applied, timeout=60, message="all events applied across the rebalance")
    finally:
        await second_broker.stop()
        await first_broker.stop()
        await first_pub.stop()
        await second_pub.stop()
    ids = await effects(db)
    assert len(ids) == len(events)  # no event applied twice
    assert first.batches > 0
    assert second.batches > 0  # the second member really took partitions over


async def _count(pool: asyncpg.Pool, at_least: int) -> bool:
    return len(await effects(pool)) >= at_least


async def test_batch_handler_applies_sets_and_falls_back_to_single_events_on_a_bad_one(
    stack: Any, db: asyncpg.Pool, topic_factory: Any
) -> None:
    topic = await topic_factory(topics.HELP_RECEIVED, partitions=1)
    dlq = await topic_factory("dlq")
    good = [thanks(f"p{i}") for i in range(30)]
    bad = thanks("nobody")
    batch_sizes: list[int] = []

    async def batch(
        conn: asyncpg.Connection, items: Sequence[tuple[Envelope[Any], RecordMeta]]
    ) -> None:
        batch_sizes.append(len(items))
        if any(env.data.helper == "nobody" for env, _ in items):
            raise Reject("unknown person in batch")
        await conn.executemany(
            "INSERT INTO effects (event_id, person) VALUES ($1, $2)",
            [(env.id, env.subject) for env, _ in items],
        )

    async def single(conn: asyncpg.Connection, env: Envelope[Any], meta: RecordMeta) -> None:
        if env.data.helper == "nobody":
            raise Reject("unknown person: helper 'nobody' is not in the directory")
        await record_effect(conn, env, meta)

    publisher = Publisher(stack.kafka_bootstrap, client_id="test-dlq")
    await publisher.start()
    consumer = EventConsumer(
        service="test",
        name="effects",
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=single,
        batch_handler=batch,
        pool=db,
        dead_letters=DeadLetters(publisher, service="test", topic=dlq),
    )
    broker = make_broker(stack.kafka_bootstrap, client_id="test-consumer")
    consumer.register(broker)
    stream = [(e.subject, e.to_json()) for e in good[:15]]
    stream += [(bad.subject, bad.to_json())]
    stream += [(e.subject, e.to_json()) for e in good[15:]]
    stream += [(good[0].subject, good[0].to_json())]  # a redelivered duplicate
    await produce(stack.kafka_bootstrap, topic, stream)
    await broker.start()
    try:
        dead = await read_all(stack.kafka_bootstrap, dlq, expect=1)

        async def all_good() -> bool:
            return len(await effects(db)) >= len(good)

        await wait_for(all_good, timeout=20, message="good events applied")
    finally:
        await broker.stop()
        await publisher.stop()
    assert sorted(await effects(db)) == sorted(e.id for e in good)
    assert DeadLetter.from_headers(dead[0].headers).error_class == "Reject"
    assert max(batch_sizes) > 1  # the batch handler really got sets of events


async def test_a_batch_failing_transiently_is_retried_with_the_batch_read_ahead_of_it(
    stack: Any, db: asyncpg.Pool, topic_factory: Any
) -> None:
    # Under load the consumer decodes the next batch while one is applied: when the applied
    # one fails (database away), both go back to Kafka, and every effect lands once, in order.
    topic = await topic_factory(topics.HELP_RECEIVED, partitions=3)
    dlq = await topic_factory("dlq")
    events = [thanks(f"p{i % 7}") for i in range(300)]
    failed: list[int] = []
    seen: list[int] = []

    async def batch(
        conn: asyncpg.Connection, items: Sequence[tuple[Envelope[Any], RecordMeta]]
    ) -> None:
        seen.append(len(items))
        await conn.executemany(
            "INSERT INTO effects (event_id, person, applied_at) VALUES ($1, $2, clock_timestamp())",
            [(env.id, env.subject) for env, _ in items],
        )
        await asyncio.sleep(0.02)  # a batch takes a while: the next one is fetched meanwhile
        if not failed and any(env.id == events[150].id for env, _ in items):
            failed.append(len(seen))
            raise ConnectionError("connection to the database lost")

    async with running_consumer(
        stack,
        db,
        topic,
        dlq_topic=dlq,
        produce_first=events,
        batch_handler=batch,
        max_records=20,
        max_attempts=3,
    ):

        async def all_applied() -> bool:
            return len(await effects(db)) >= len(events)

        await wait_for(all_applied, timeout=60, message="every event applied after the failure")
    assert failed, "the failure happened"
    rows = await db.fetch("SELECT event_id, person FROM effects ORDER BY applied_at")
    assert sorted(r["event_id"] for r in rows) == sorted(e.id for e in events)  # once each
    for person in {e.subject for e in events}:  # in order per key (per partition)
        applied = [r["event_id"] for r in rows if r["person"] == person]
        assert applied == [e.id for e in events if e.subject == person]


async def test_one_batch_with_bad_records_and_a_copy_dead_letters_the_bad_drops_the_copy(
    stack: Any, db: asyncpg.Pool, topic_factory: Any
) -> None:
    # One poll brings good events, records that are not events, a tombstone and a second copy
    # of an event: the batch handler gets each good event once with its own metadata, the bad
    # records are dead-lettered with their reasons, and every offset is committed.
    import orjson

    topic = await topic_factory(topics.HELP_RECEIVED, partitions=1)
    dlq = await topic_factory("dlq")
    first, second, third = thanks("grace"), thanks("linus"), thanks("ada")
    missing_helper = second.model_dump(mode="json")
    del missing_helper["data"]["helper"]
    stream: list[tuple[bytes | None, list[tuple[str, bytes]]]] = [
        (first.to_json(), [("x-origin", b"helpdesk")]),
        (b"{not json", []),
        (orjson.dumps(missing_helper), []),
        (second.to_json(), []),
        (first.to_json(), []),  # the same event again, in the same batch
        (None, []),  # a tombstone: skipped, not dead-lettered
        (third.to_json(), []),
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap,
        **{k: v for k, v in PRODUCER_SETTINGS.items() if k != "max_batch_size"},
    )
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=b"k", headers=h) for value, h in stream]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    batches: list[list[tuple[str, RecordMeta]]] = []

    async def batch(
        conn: asyncpg.Connection, items: Sequence[tuple[Envelope[Any], RecordMeta]]
    ) -> None:
        batches.append([(env.id, meta) for env, meta in items])
        await conn.executemany(
            "INSERT INTO effects (event_id, person) VALUES ($1, $2)",
            [(env.id, env.subject) for env, _ in items],
        )

    group = f"test-{uuid.uuid4().hex[:8]}"
    async with running_consumer(
        stack, db, topic, dlq_topic=dlq, batch_handler=batch, group_id=group
    ):
        dead = await read_all(stack.kafka_bootstrap, dlq, expect=2)
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        await admin.start()
        try:

            async def all_committed() -> bool:
                offsets = await admin.list_consumer_group_offsets(group)
                return [o.offset for o in offsets.values()] == [len(stream)]

            await wait_for(all_committed, timeout=20, message="every offset committed")
        finally:
            await admin.close()

    assert sorted(await effects(db)) == sorted([first.id, second.id, third.id])
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'effects'") == 3
    assert len(batches) == 1, "the records came in one poll"
    assert [(event_id, meta.offset) for event_id, meta in batches[0]] == [
        (first.id, 0),
        (second.id, 3),
        (third.id, 6),
    ]
    metas = [meta for _, meta in batches[0]]
    assert dict(metas[0].headers) == {"x-origin": "helpdesk"}
    assert dict(metas[1].headers) == {} and dict(metas[2].trace_headers) == {}
    assert all((m.topic, m.partition, m.key) == (topic, 0, "k") for m in metas)
    letters = sorted((DeadLetter.from_headers(r.headers) for r in dead), key=lambda d: d.offset)
    assert [(d.offset, d.error_class) for d in letters] == [
        (1, "InvalidEvent"),
        (2, "InvalidEvent"),
    ]
    assert letters[0].error_message.startswith("<root>: not JSON")
    assert letters[1].error_message == "data.helper: Field required"
