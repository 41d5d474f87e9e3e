"""The real consumer, batching: each event's pending sends keep that event's own trace."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord
from thrive_notifier.domain.model import Preferences
from thrive_notifier.entrypoints.kafka import make_handlers
from thrive_shared.contracts import HelpReceived, PersonUpserted, make_event, topics
from thrive_shared.kafka import DeadLetters, EventConsumer, Publisher

pytestmark = pytest.mark.stack

NOW = datetime.now(UTC)
TRACE_IDS = ["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"]


def record(n: int, topic: str, value: bytes, trace_id: str | None = None) -> ConsumerRecord:
    headers = [("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())] if trace_id else []
    return ConsumerRecord(topic, 0, n, 0, 0, b"k", value, None, 1, 1, headers)


async def test_a_batch_of_thanks_keeps_each_events_trace_on_its_webhook(notifier_pool):
    handler, batch_handler = make_handlers(defaults=Preferences())
    consumer = EventConsumer(
        service="notifier",
        name="events",
        topics=[topics.HELP_RECEIVED, topics.DIRECTORY_PERSON],
        handler=handler,
        batch_handler=batch_handler,
        pool=notifier_pool,
        dead_letters=DeadLetters(Publisher("127.0.0.1:9", client_id="unused"), service="test"),
    )
    ana = make_event(
        PersonUpserted(person="ana", name="Ana", email="ana@example.test", team="blue"),
        source="hr/test",
    )
    await consumer.process_batch([record(0, topics.DIRECTORY_PERSON, ana.to_json())])
    await notifier_pool.execute(
        "INSERT INTO preferences (person, daily_budget, channels, digest_frequency, digest_hour,"
        " webhook_url) VALUES ('ana', 100, '{in_app,webhook}', 'daily', 8, 'https://h.test/a')"
    )
    thanks = [
        make_event(
            HelpReceived(
                thanks_id=f"t{n}", giver="bo", helper="ana", message="thanks", given_at=NOW
            ),
            source="thrive/recognition",
        )
        for n in range(3)
    ]
    traced = [*TRACE_IDS, None]  # the third came from an untraced producer
    await consumer.process_batch(
        [
            record(n, topics.HELP_RECEIVED, e.to_json(), t)
            for n, (e, t) in enumerate(zip(thanks, traced, strict=True))
        ]
    )
    assert consumer.batches == 2
    rows = await notifier_pool.fetch(
        "SELECT event_id, traceparent FROM delivery WHERE channel = 'webhook'"
    )
    kept = {r["event_id"]: r["traceparent"] for r in rows}
    assert [kept[e.id].split("-")[1] if kept[e.id] else None for e in thanks] == traced
    inbox = await notifier_pool.fetchval("SELECT count(*) FROM inbox_item WHERE person = 'ana'")
    assert inbox == 3
