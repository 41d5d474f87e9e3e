"""A consumer or outbox relay in its own process, so a test can SIGKILL it at a chosen point.

usage: python pipeline_proc.py consume|relay   (configuration through environment variables)
  KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, SCHEMA, TOPIC, GROUP
  CRASH=after_commit   consume: SIGKILL itself after the DB commit, before the offset commit
  CRASH=after_publish  relay:   SIGKILL itself after Kafka acked, before the rows are deleted
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from thrive_shared.contracts import Envelope
from thrive_shared.db import create_pool
from thrive_shared.kafka import DeadLetters, EventConsumer, OutgoingRecord, Publisher, RecordMeta
from thrive_shared.kafka.producer import make_broker
from thrive_shared.outbox import OutboxRelay

CRASH = os.environ.get("CRASH", "")


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


async def effect(conn: Any, env: Envelope[Any], meta: RecordMeta) -> None:
    await conn.execute(
        "INSERT INTO effects (event_id, person) VALUES ($1, $2)", env.id, env.subject
    )


async def consume() -> None:
    pool = await create_pool(os.environ["DATABASE_URL"], schema=os.environ["SCHEMA"])
    publisher = Publisher(os.environ["KAFKA_BOOTSTRAP_SERVERS"], client_id="test-dlq")
    await publisher.start()

    async def after_commit(applied: Sequence[Any]) -> None:
        print(f"applied {len(applied)}", flush=True)
        if CRASH == "after_commit":
            _die()

    consumer = EventConsumer(
        service="test",
        name="effects",
        group_id=os.environ["GROUP"],
        topics=[os.environ["TOPIC"]],
        handler=effect,
        pool=pool,
        dead_letters=DeadLetters(publisher, service="test"),
        after_commit=after_commit,
    )
    broker = make_broker(os.environ["KAFKA_BOOTSTRAP_SERVERS"], client_id="test-consumer")
    consumer.register(broker)
    await broker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


class CrashingPublisher(Publisher):
    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        await super().send_all(records)
        if records and CRASH == "after_publish":
            print(f"published {len(records)}", flush=True)
            _die()


async def relay() -> None:
    pool = await create_pool(os.environ["DATABASE_URL"], schema=os.environ["SCHEMA"])
    publisher = CrashingPublisher(os.environ["KAFKA_BOOTSTRAP_SERVERS"], client_id="test-relay")
    await publisher.start()
    relay = OutboxRelay(
        pool=pool, publisher=publisher, service="test", schema=os.environ["SCHEMA"], batch_size=100
    )
    await relay.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run({"consume": consume, "relay": relay}[sys.argv[1]]())
