"""Kafka entry point of the live topics: parse records and hand them to LiveState.apply.

Every gateway replica must see every live event (its own WebSocket subscribers and caches
depend on them), so the consumer has no group: it reads all partitions from the latest
offset and commits nothing. Missing events while down is fine: caches also expire by TTL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.errors import KafkaError
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from thrive_shared.contracts import InvalidEvent, parse_for_topic, topics
from thrive_shared.contracts.envelope import Tombstone
from thrive_shared.contracts.topics import contract_of, physical
from thrive_shared.observability import metrics

from thrive_gateway.live.events import LiveState

log = logging.getLogger(__name__)
SERVICE = "gateway"

LIVE_TOPICS: tuple[str, ...] = (
    topics.HELP_RECEIVED,
    topics.MILESTONE_REACHED,
    topics.CELEBRATION_DELIVERED_V2,
    topics.LEADERBOARD_CHANGED,
    topics.DIRECTORY_PERSON,
)


def apply_records(live: LiveState, records: Iterable[Any]) -> int:
    """Apply each record's event; bad records are counted and skipped (owners dead-letter them)."""
    applied = 0
    for record in records:
        topic = contract_of(record.topic)
        try:
            event = parse_for_topic(record.topic, record.value)
        except Tombstone:
            continue
        except InvalidEvent as exc:
            log.warning("skipping invalid live event on %s: %s", record.topic, exc.reason)
            metrics.EVENTS_CONSUMED.labels(SERVICE, topic, "unknown", "error").inc()
            continue
        try:
            live.apply(event)
        except Exception:
            log.exception("applying a live event failed", extra={"event_id": event.id})
            metrics.EVENTS_CONSUMED.labels(SERVICE, topic, event.type, "error").inc()
            continue
        metrics.EVENTS_CONSUMED.labels(SERVICE, topic, event.type, "ok").inc()
        applied += 1
    return applied


def register_live_consumer(
    broker: KafkaBroker, live: LiveState, *, topic_names: Sequence[str] = LIVE_TOPICS
) -> Any:
    """Attach the group-less live subscriber to `broker`."""

    async def raw(msg: Any) -> Any:
        return msg.raw_message

    subscriber = broker.subscriber(
        *[physical(t) for t in topic_names],
        batch=True,
        group_id=None,
        auto_offset_reset="latest",
        max_records=500,
        # Short: a widget should see a new thanks well within a second.
        batch_timeout_ms=20,
        ack_policy=AckPolicy.ACK_FIRST,
        decoder=raw,
        title="gateway.live",
    )

    async def handler(records: Any, message: KafkaMessage = Context("message")) -> None:  # noqa: B008
        recs = message.raw_message
        apply_records(live, recs if isinstance(recs, tuple | list) else (recs,))

    subscriber(handler)
    return subscriber


async def live_consumer_positioned(subscriber: Any, *, within: float = 2.0) -> bool:
    """True once the consumer has partitions and knows where it reads from.

    Until then an event produced now could be skipped (it starts at the latest offset), so
    the gateway is not ready: a widget would miss its own thanks.
    """
    consumer = getattr(subscriber, "consumer", None)
    if consumer is None:
        return False
    assignment = consumer.assignment()
    if not assignment:
        return False
    try:
        async with asyncio.timeout(within):
            for partition in assignment:
                await consumer.position(partition)
    except (TimeoutError, KafkaError):
        return False
    return True
