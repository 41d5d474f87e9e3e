"""An in-process recognition service on the real stack: fresh database, unique topics."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from thrive_recognition.bootstrap import build_spec
from thrive_recognition.settings import RecognitionSettings
from thrive_shared.contracts import Envelope, PersonUpserted, make_event, topics
from thrive_shared.contracts.topics import physical
from thrive_shared.db import migrate
from thrive_shared.kafka import OutgoingRecord, Publisher
from thrive_shared.service import Runtime, build_app
from thrive_shared.testing import unique_name, wait_for


@dataclass
class Harness:
    rt: Runtime
    client: httpx.AsyncClient
    publisher: Publisher
    directory_topic: str
    ingest_topic: str
    suffix: str = field(default_factory=lambda: unique_name("r")[2:])

    def pid(self, name: str) -> str:
        """A person id no other test run shares."""
        return f"{name}-{self.suffix}"

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.rt.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self.rt.pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def send(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Produce (key, value) records in order."""
        await self.publisher.send_all(
            [OutgoingRecord(topic=topic, key=k, value=v) for k, v in items]
        )

    async def send_events(self, topic: str, events: Sequence[Envelope[Any]]) -> None:
        await self.send(topic, [(e.subject, e.to_json()) for e in events])

    async def add_people(
        self, *names: str, team: str = "core", timezone: str = "UTC", timeout: float = 30
    ) -> list[str]:
        """Publish people on the directory topic and wait until recognition mirrors them."""
        ids = [self.pid(n) for n in names]
        events = [
            make_event(
                PersonUpserted(
                    person=i,
                    name=f"Name of {i}",
                    email=f"{i}@example.com",
                    team=team,
                    timezone=timezone,
                ),
                source="hr/test",
            )
            for i in ids
        ]
        await self.send_events(self.directory_topic, events)

        async def mirrored() -> bool:
            n = await self.fetchval("SELECT count(*) FROM people WHERE id = ANY($1)", ids)
            return bool(n == len(ids))

        await wait_for(mirrored, timeout=timeout, message=f"people {names} not mirrored")
        return ids


async def start_harness(
    *, database_url: str, kafka: str, relay: bool = True, **overrides: Any
) -> Harness:
    """A running service on this test's topic copies (THRIVE_TOPIC_SUFFIX must be set)."""
    if not os.environ.get(topics.SUFFIX_ENV):
        raise RuntimeError(f"set {topics.SUFFIX_ENV}: tests never use the canonical topics")
    settings = RecognitionSettings(
        database_url=database_url, kafka_bootstrap_servers=kafka, log_json=False, **overrides
    )
    await asyncio.to_thread(
        migrate, database_url, schema=settings.db_schema, migrations_dir=settings.migrations_dir
    )
    spec = build_spec(settings, group_suffix=unique_name("test"), sweep=False)
    spec.relay_outbox = relay
    rt = Runtime(spec)
    # The shared runtime sends dead letters to the canonical DLQ whatever the suffix;
    # point them at this test's copy.
    rt.dead_letters.topic = physical(topics.DLQ)
    await rt.start()
    app = build_app(spec, runtime=rt)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://recognition"
    )
    publisher = Publisher(kafka, client_id=unique_name("recognition-test"))
    await publisher.start()
    return Harness(
        rt=rt,
        client=client,
        publisher=publisher,
        directory_topic=physical(topics.DIRECTORY_PERSON),
        ingest_topic=physical(topics.INGEST_HELP),
    )


async def stop_harness(h: Harness) -> None:
    await h.client.aclose()
    await h.publisher.stop()
    await h.rt.stop()


class TopicTail:
    """Reads this test's copy of a canonical topic from the offsets it had when created."""

    def __init__(self, kafka: str, topic: str) -> None:
        from aiokafka import AIOKafkaConsumer

        if not os.environ.get(topics.SUFFIX_ENV):
            raise RuntimeError(f"set {topics.SUFFIX_ENV}: tests never read the canonical topics")
        self.topic = physical(topic)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
        self.records: list[Any] = []

    async def start(self) -> TopicTail:
        from aiokafka import TopicPartition

        await self.consumer.start()
        client = self.consumer._client
        client.add_topic(self.topic)  # fetch this topic's metadata (we assign, not subscribe)
        await client.force_metadata_update()
        parts = self.consumer.partitions_for_topic(self.topic) or set()
        if not parts:
            await self.consumer.stop()
            raise AssertionError(f"topic {self.topic} has no partitions")
        tps = [TopicPartition(self.topic, p) for p in parts]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before anything new is produced
            await self.consumer.position(tp)
        return self

    async def poll(self) -> list[Any]:
        got = await self.consumer.getmany(timeout_ms=200)
        for recs in got.values():
            self.records.extend(recs)
        return self.records

    async def stop(self) -> None:
        await self.consumer.stop()
