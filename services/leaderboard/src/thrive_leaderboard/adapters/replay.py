"""Reading topics from the beginning up to where they end now, for a rebuild.

Not a group consumer: it assigns every partition itself, commits nothing, and stops at
the end offsets it saw when it started, so a replay is a finite, repeatable read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


class TopicReplay:
    """Every record of some topics, oldest first per partition, in batches."""

    def __init__(self, bootstrap_servers: str, topics: Sequence[str], *, batch: int = 5000):
        self.bootstrap_servers = bootstrap_servers
        self.topics = list(topics)
        self.batch = batch
        self.total = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._end: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> TopicReplay:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            client_id="thrive-leaderboard-rebuild",
            max_poll_records=self.batch,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        # A consumer with no subscription knows no partitions; ask the cluster directly.
        cluster = await consumer._client.fetch_all_metadata()
        parts: list[TopicPartition] = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(cluster.partitions_for_topic(topic) or ())
        ]
        consumer.assign(parts)
        if parts:
            begin = await consumer.beginning_offsets(parts)
            end = await consumer.end_offsets(parts)
            self._end = {tp: end[tp] for tp in parts if end[tp] > begin[tp]}
            self.total = sum(end[tp] - begin[tp] for tp in self._end)
            await consumer.seek_to_beginning(*parts)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def batches(self) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
        """Batches of records until every partition reached its end offset."""
        assert self._consumer is not None, "use `async with`"
        consumer = self._consumer
        remaining = dict(self._end)
        # Partitions with nothing to read must not be fetched: they would block forever.
        done = [tp for tp in consumer.assignment() if tp not in remaining]
        if done:
            consumer.pause(*done)
        while remaining:
            got = await consumer.getmany(*remaining, timeout_ms=1000, max_records=self.batch)
            out: list[ConsumerRecord[bytes, bytes]] = []
            for tp, records in got.items():
                end = remaining.get(tp)
                if end is None:
                    continue
                for rec in records:
                    if rec.offset < end:
                        out.append(rec)
                if records and records[-1].offset >= end - 1:
                    del remaining[tp]
                    consumer.pause(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
                    consumer.pause(tp)
            if out:
                yield out
