"""Kafka plumbing every service uses: safe producers, exactly-once consumers, dead letters."""

from thrive_shared.kafka.consumer import (
    BatchHandler,
    EventConsumer,
    RecordMeta,
    Reject,
    claim_inbox,
)
from thrive_shared.kafka.dlq import DeadLetters, Failure
from thrive_shared.kafka.producer import PRODUCER_SETTINGS, OutgoingRecord, Publisher, make_broker

__all__ = [
    "PRODUCER_SETTINGS",
    "BatchHandler",
    "DeadLetters",
    "EventConsumer",
    "Failure",
    "OutgoingRecord",
    "Publisher",
    "RecordMeta",
    "Reject",
    "claim_inbox",
    "make_broker",
]
