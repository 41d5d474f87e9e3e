"""Shared response caches: TTL as a safety net, events as the real invalidation."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A bounded LRU cache with TTL, single-flight loads, and invalidation by predicate.

    A load that started before an invalidation is not stored: the `generation` counter
    keeps an event from being undone by a slow response computed from older data.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def peek(self, key: K) -> tuple[bool, V | None]:
        """(True, value) on a fresh hit, else (False, None)."""
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] > self._ttl:
            self.misses += 1
            return False, None
        self.hits += 1
        self._entries.move_to_end(key)
        return True, entry[1]

    def put(self, key: K, value: V, *, generation: int | None = None) -> None:
        """Store unless an invalidation happened since `generation` was read."""
        if self._ttl <= 0 or (generation is not None and generation != self.generation):
            return
        self._entries[key] = (self._clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or one shared load for all concurrent callers."""
        hit, value = self.peek(key)
        if hit:
            return value  # type: ignore[return-value]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        generation = self.generation
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            # Nobody else may be waiting: mark the exception retrieved.
            future.exception()
            raise
        finally:
            # An invalidation may have replaced our load by a newer one: leave that alone.
            if self._inflight.get(key) is future:
                del self._inflight[key]
        future.set_result(result)
        self.put(key, result, generation=generation)
        return result

    def invalidate(self, predicate: Callable[[K], bool] | None = None) -> int:
        """Drop entries whose key matches (all when no predicate); returns how many."""
        self.generation += 1
        # Callers arriving after this must not join a load that began before it.
        for key in [k for k in self._inflight if predicate is None or predicate(k)]:
            del self._inflight[key]
        if predicate is None:
            count = len(self._entries)
            self._entries.clear()
            return count
        doomed = [k for k in self._entries if predicate(k)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)
