"""Whole-response cache: serialized JSON bytes of shared queries, dropped by live events.

An entry carries tags naming what it was built from (`feed`, `board:<key>`, `person:<id>`);
an event invalidates the tags it changes. A response computed while one of its tags was
invalidated is not stored, so a slow request can never put pre-event data back.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

FEED_TAG = "feed"
BOARDS_TAG = "boards"  # every board response, for changes not tied to one board (opt-outs)


def board_tag(board_key: str) -> str:
    """The tag of responses built from one board."""
    return f"board:{board_key}"


def person_tag(person_id: str) -> str:
    """The tag of responses showing one person (name, team, counts, milestones)."""
    return f"person:{person_id}"


@dataclass(frozen=True, slots=True)
class _Entry:
    body: bytes
    stored_at: float
    tags: frozenset[str]


class ResponseCache:
    """A bounded LRU of response bodies with TTL (safety net) and invalidation by tag."""

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int = 2_000,
        max_body_bytes: int = 512 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._max_body = max_body_bytes
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._by_tag: dict[str, set[Hashable]] = {}
        # Invalidation sequence: a put is refused when one of its tags (or everything) was
        # invalidated after the request that computed it began.
        self._seq = 0
        self._tag_seq: dict[str, int] = {}
        self._all_seq = 0
        self.hits = 0
        self.misses = 0
        self.stores = 0

    @property
    def enabled(self) -> bool:
        """False when the TTL is zero (caching turned off)."""
        return self._ttl > 0

    def get(self, key: Hashable) -> bytes | None:
        """The cached body, if fresh."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if self._clock() - entry.stored_at > self._ttl:
            self._drop(key)
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry.body

    def begin(self) -> int:
        """A token to pass to `put`: the invalidation sequence when a computation starts."""
        return self._seq

    def put(self, key: Hashable, body: bytes, *, tags: Iterable[str], started: int) -> bool:
        """Store unless caching is off, the body is too big, or a tag changed since `started`."""
        if not self.enabled or len(body) > self._max_body:
            return False
        tag_set = frozenset(tags)
        if self._all_seq > started or any(self._tag_seq.get(t, -1) > started for t in tag_set):
            return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(body=body, stored_at=self._clock(), tags=tag_set)
        for tag in tag_set:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))
        self.stores += 1
        return True

    def invalidate(self, *tags: str) -> int:
        """Drop every entry carrying one of `tags`; returns how many."""
        self._seq += 1
        if len(self._tag_seq) > 200_000:
            # Bounded memory: forgetting per-tag history is safe if treated as "all changed".
            self._tag_seq.clear()
            self._all_seq = self._seq
        dropped = 0
        for tag in tags:
            self._tag_seq[tag] = self._seq
            for key in list(self._by_tag.get(tag, ())):
                self._drop(key)
                dropped += 1
        return dropped

    def clear(self) -> int:
        """Drop everything (and refuse puts of responses already being computed)."""
        self._seq += 1
        self._all_seq = self._seq
        count = len(self._entries)
        self._entries.clear()
        self._by_tag.clear()
        return count

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    def __len__(self) -> int:
        return len(self._entries)
