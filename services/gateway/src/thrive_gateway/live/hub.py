"""In-process pub/sub feeding GraphQL subscriptions from the live Kafka topics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)


class Hub:
    """Fans each published item out to every subscriber of a channel.

    Each subscriber has a bounded queue; a subscriber too slow to keep up loses its
    oldest items rather than making the consumer (and every other subscriber) wait.
    """

    def __init__(self, *, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[asyncio.Queue[Any]]] = {}
        self.dropped = 0

    def subscriber_count(self, channel: str | None = None) -> int:
        """How many subscriptions are open (on one channel, or all)."""
        if channel is not None:
            return len(self._subscribers.get(channel, ()))
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, channel: str, item: Any) -> int:
        """Deliver to every subscriber of `channel` without waiting; returns how many."""
        queues = self._subscribers.get(channel, ())
        for queue in queues:
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(item)
        return len(queues)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[Any]]:
        """A queue receiving the channel's items until the context exits."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self._queue_size)
        self._subscribers.setdefault(channel, set()).add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[channel]
