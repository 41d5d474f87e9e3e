"""Kafka plumbing every service uses: safe producers, exactly-once consumers, dead letters."""

from thrive_shared.kafka.consumer import EventConsumer, RecordMeta, Reject
from thrive_shared.kafka.dlq import DeadLetters, Failure
from thrive_shared.kafka.producer import PRODUCER_SETTINGS, OutgoingRecord, Publisher, make_broker

__all__ = [
    "PRODUCER_SETTINGS",
    "DeadLetters",
    "EventConsumer",
    "Failure",
    "OutgoingRecord",
    "Publisher",
    "RecordMeta",
    "Reject",
    "make_broker",
]
