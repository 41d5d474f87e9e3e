"""Producing to Kafka safely: acks=all, idempotence, recovery from a stuck producer."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber
from aiokafka.partitioner import DefaultPartitioner
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLScram256, SASLScram512

log = logging.getLogger(__name__)

# aiokafka defaults to acks=1 and no idempotence: a leader crash can lose acknowledged
# records and a retry can duplicate them. These are the settings every Thrive producer uses.
PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    "max_batch_size": 512 * 1024,
    "request_timeout_ms": 30_000,
}


def kafka_security(
    *,
    protocol: str = "PLAINTEXT",
    mechanism: str = "SCRAM-SHA-512",
    username: str | None = None,
    password: str | None = None,
    cafile: str | None = None,
) -> BaseSecurity | None:
    """faststream security for the configured protocol: None for PLAINTEXT, SCRAM over TLS else."""
    protocol = protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    ctx = ssl.create_default_context(cafile=cafile) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=ctx, use_ssl=True)
    if not username or password is None:
        raise ValueError(f"{protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    cls = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256}.get(mechanism.upper())
    if cls is None:
        raise ValueError(f"unsupported KAFKA_SASL_MECHANISM {mechanism!r}")
    return cls(username, password, ssl_context=ctx, use_ssl=protocol == "SASL_SSL")


def security_from_settings(settings: Any) -> BaseSecurity | None:
    """kafka_security() from a CommonSettings."""
    password = settings.kafka_sasl_password
    return kafka_security(
        protocol=settings.kafka_security_protocol,
        mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password is not None else None,
        cafile=settings.kafka_ssl_cafile,
    )


def make_broker(
    bootstrap_servers: str,
    *,
    client_id: str,
    security: BaseSecurity | None = None,
    **kwargs: Any,
) -> KafkaBroker:
    """A faststream KafkaBroker whose producer uses PRODUCER_SETTINGS."""
    settings = {**PRODUCER_SETTINGS, **kwargs}
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        graceful_timeout=15.0,
        security=security,
        **settings,
    )


# Keyed records go where the Java client and aiokafka's send() put them: murmur2(key).
_PARTITIONER = DefaultPartitioner()
_PARTITION_CACHE = 100_000  # (topic, partition count, key) -> partition, then start over


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record to produce: raw value bytes, key, headers."""

    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Publisher:
    """A publish-only aiokafka producer that is recreated when it gets stuck.

    Plain aiokafka rather than faststream's publish path: the outbox relay and the DLQ send
    records in bulk, and per-record framework overhead capped them near 2k records/s.
    aiokafka's idempotent producer has been seen stuck on OutOfOrderSequenceNumber after a
    short broker outage until restarted (aiokafka#1017); recreating it resets its producer
    id and sequence numbers.
    """

    def __init__(
        self, bootstrap_servers: str, *, client_id: str, security: BaseSecurity | None = None
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.security = security
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._partitions: dict[tuple[str, int, bytes], int] = {}

    async def start(self) -> None:
        """Connect the producer."""
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=self.client_id,
                    **PRODUCER_SETTINGS,
                    **parse_security(self.security),
                )
                await producer.start()
                self._producer = producer

    async def stop(self) -> None:
        """Flush and close the producer."""
        async with self._lock:
            if self._producer is not None:
                producer, self._producer = self._producer, None
                await producer.stop()

    async def reset(self) -> None:
        """Throw the producer away and make a new one."""
        log.warning("recreating Kafka producer", extra={"client_id": self.client_id})
        await self.stop()
        await self.start()

    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        """Produce records in order and wait until the broker acknowledged every one."""
        if not records:
            return
        if self._producer is None:
            await self.start()
        producer = self._producer
        assert producer is not None
        futures: list[asyncio.Future[Any]] = []
        try:
            # One record batch per partition rather than a send() per record: aiokafka's
            # per-record path (a future, a partitioner call and an accumulator lookup each)
            # cost more than the rest of the relay. Same partitioner, same order per
            # partition, same idempotent producer (sequence numbers are set per batch).
            open_batches: dict[tuple[str, int], Any] = {}
            partitions: dict[str, list[int]] = {}
            for rec in records:
                parts = partitions.get(rec.topic)
                if parts is None:
                    parts = sorted(await producer.partitions_for(rec.topic))
                    partitions[rec.topic] = parts
                key = rec.key.encode()
                tp = (rec.topic, self._partition_of(rec.topic, key, parts))
                record = {
                    "key": key,
                    "value": rec.value,
                    "timestamp": None,
                    "headers": [(k, v.encode()) for k, v in rec.headers.items()],
                }
                batch = open_batches.get(tp)
                if batch is None:
                    batch = open_batches[tp] = producer.create_batch()
                if batch.append(**record) is None:
                    # Full: send it, and start the next one with this record.
                    futures.append(await producer.send_batch(batch, tp[0], partition=tp[1]))
                    batch = open_batches[tp] = producer.create_batch()
                    if batch.append(**record) is None:
                        raise ValueError(f"record too large for a batch: {len(rec.value)} bytes")
            for (topic, partition), batch in open_batches.items():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*futures)
        except OutOfOrderSequenceNumber:
            _cancel(futures)
            await self.reset()
            raise
        except KafkaError:
            _cancel(futures)
            raise

    def _partition_of(self, topic: str, key: bytes, partitions: list[int]) -> int:
        """The partition aiokafka's default partitioner gives `key` (murmur2), memoised."""
        cache_key = (topic, len(partitions), key)
        partition = self._partitions.get(cache_key)
        if partition is None:
            if len(self._partitions) >= _PARTITION_CACHE:
                self._partitions.clear()
            partition = self._partitions[cache_key] = _PARTITIONER(key, partitions, partitions)
        return partition

    async def ping(self) -> bool:
        """True if the producer is connected and the cluster answers a metadata request."""
        if self._producer is None:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 2.0)
            return True
        except Exception:  # readiness probe: any failure means not ready
            return False


def _cancel(futures: Sequence[asyncio.Future[Any]]) -> None:
    for fut in futures:
        if not fut.done():
            fut.cancel()
