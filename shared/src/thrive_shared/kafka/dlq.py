"""Sending records a consumer cannot apply to the dead-letter topic, with the reason."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from thrive_shared.contracts.dlq import DLQ_TOPIC, DeadLetter
from thrive_shared.contracts.topics import physical
from thrive_shared.kafka.producer import OutgoingRecord, Publisher
from thrive_shared.observability import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Failure:
    """A record that could not be applied, and why."""

    record: ConsumerRecord[bytes, bytes]
    error_class: str
    error_message: str
    attempts: int


class DeadLetters:
    """Publishes failures to thrive.dlq.v1: original key and bytes, headers naming the cause."""

    def __init__(self, publisher: Publisher, *, service: str, topic: str | None = None) -> None:
        self.publisher = publisher
        self.service = service
        # None: the canonical DLQ, or its isolated copy when THRIVE_TOPIC_SUFFIX is set.
        self.topic = topic

    async def send(self, failures: Sequence[Failure], *, consumer: str) -> None:
        """Publish every failure and wait for the broker's acknowledgement."""
        if not failures:
            return
        now = datetime.now(UTC)
        dlq_topic = self.topic or physical(DLQ_TOPIC)
        out = []
        for f in failures:
            rec = f.record
            letter = DeadLetter(
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                error_class=f.error_class,
                error_message=f.error_message,
                attempts=f.attempts,
                consumer=consumer,
                failed_at=now,
            )
            headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (rec.headers or ())}
            headers.update({k: v.decode() for k, v in letter.headers()})
            key = rec.key.decode("utf-8", "replace") if rec.key else f"{rec.topic}:{rec.partition}"
            out.append(
                OutgoingRecord(topic=dlq_topic, key=key, value=rec.value or b"", headers=headers)
            )
            metrics.DLQ_EVENTS.labels(self.service, rec.topic, f.error_class).inc()
            log.warning(
                "event dead-lettered",
                extra={
                    "topic": rec.topic,
                    "partition": rec.partition,
                    "offset": rec.offset,
                    "error_class": f.error_class,
                    "reason": f.error_message[:300],
                    "attempts": f.attempts,
                },
            )
        await self.publisher.send_all(out)
