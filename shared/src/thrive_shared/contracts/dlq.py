"""Dead-letter topic contract: header names every consumer writes on `thrive.dlq.v1`.

A dead-lettered record keeps the original key and value bytes untouched; these headers
say where it came from and why it failed, so an operator can inspect and replay it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from thrive_shared.contracts import topics

DLQ_TOPIC = topics.DLQ

X_DLQ_TOPIC = "x-dlq-topic"
X_DLQ_PARTITION = "x-dlq-partition"
X_DLQ_OFFSET = "x-dlq-offset"
X_DLQ_ERROR_CLASS = "x-dlq-error-class"
X_DLQ_ERROR_MESSAGE = "x-dlq-error-message"
X_DLQ_ATTEMPTS = "x-dlq-attempts"
X_DLQ_CONSUMER = "x-dlq-consumer"
X_DLQ_FAILED_AT = "x-dlq-failed-at"

# Header name -> what it holds (UTF-8 text); used by the README and the AsyncAPI document.
HEADERS: Mapping[str, str] = {
    X_DLQ_TOPIC: "Topic the record was consumed from.",
    X_DLQ_PARTITION: "Partition of the original record (decimal).",
    X_DLQ_OFFSET: "Offset of the original record (decimal).",
    X_DLQ_ERROR_CLASS: "Failure class: 'InvalidEvent', 'Reject', or the exception's class name.",
    X_DLQ_ERROR_MESSAGE: "Human-readable reason, e.g. 'data.helper: Field required'.",
    X_DLQ_ATTEMPTS: "How many times the consumer tried the record (decimal, >= 1).",
    X_DLQ_CONSUMER: "Consumer group that gave up on the record.",
    X_DLQ_FAILED_AT: "When it was dead-lettered (ISO 8601, UTC).",
}
ALL_HEADERS: tuple[str, ...] = tuple(HEADERS)

# Kafka headers are small by convention; a stack trace belongs in logs, not here.
MAX_ERROR_MESSAGE = 2000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Where a dead-lettered record came from and why it failed."""

    topic: str
    partition: int
    offset: int
    error_class: str
    error_message: str
    attempts: int
    consumer: str
    failed_at: datetime

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers (aiokafka's list of (name, bytes)) for this dead letter."""
        message = self.error_message[:MAX_ERROR_MESSAGE]
        values = {
            X_DLQ_TOPIC: self.topic,
            X_DLQ_PARTITION: str(self.partition),
            X_DLQ_OFFSET: str(self.offset),
            X_DLQ_ERROR_CLASS: self.error_class,
            X_DLQ_ERROR_MESSAGE: message,
            X_DLQ_ATTEMPTS: str(self.attempts),
            X_DLQ_CONSUMER: self.consumer,
            X_DLQ_FAILED_AT: self.failed_at.astimezone(UTC).isoformat(),
        }
        return [(name, values[name].encode()) for name in ALL_HEADERS]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]]) -> DeadLetter:
        """Read a dead letter back from a DLQ record's headers; KeyError if one is missing."""
        got = {name: (value or b"").decode(errors="replace") for name, value in headers}
        return cls(
            topic=got[X_DLQ_TOPIC],
            partition=int(got[X_DLQ_PARTITION]),
            offset=int(got[X_DLQ_OFFSET]),
            error_class=got[X_DLQ_ERROR_CLASS],
            error_message=got[X_DLQ_ERROR_MESSAGE],
            attempts=int(got[X_DLQ_ATTEMPTS]),
            consumer=got[X_DLQ_CONSUMER],
            failed_at=datetime.fromisoformat(got[X_DLQ_FAILED_AT]),
        )
