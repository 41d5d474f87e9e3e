"""Relay-style cursors over the services' cursor pages, including merged feeds.

A service returns pages with one `next_cursor`; Relay wants a cursor on every edge.
An edge cursor records, per source, the service cursor of the page the next unread
item is in and its offset within that page, so paging can resume after any edge.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from thrive_gateway.clients.models import Page

T = TypeVar("T")
Fetch = Callable[[int, str | None], Awaitable[Page[Any]]]
SERVICE_MAX_PAGE = 100
_MAX_OFFSET = 10_000


class BadCursor(ValueError):
    """The `after` cursor was not issued by this gateway for this list."""


@dataclass(frozen=True, slots=True)
class Position:
    after: str | None
    offset: int


def encode_cursor(positions: Mapping[str, Position]) -> str:
    """An opaque cursor for a set of source positions."""
    raw = json.dumps(
        {name: [p.after, p.offset] for name, p in sorted(positions.items())},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sources: list[str]) -> dict[str, Position]:
    """Positions from a cursor, or BadCursor."""
    if len(cursor) > 2_000:
        raise BadCursor("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("malformed cursor") from exc
    if not isinstance(data, dict) or set(data) != set(sources):
        raise BadCursor("cursor belongs to another list")
    positions: dict[str, Position] = {}
    for name, value in data.items():
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not (value[0] is None or isinstance(value[0], str))
            or not isinstance(value[1], int)
            or not 0 <= value[1] <= _MAX_OFFSET
        ):
            raise BadCursor("malformed cursor")
        positions[name] = Position(value[0], value[1])
    return positions


class _Reader:
    """Reads one source item by item, fetching service pages as needed."""

    def __init__(self, fetch: Fetch, start: Position, want: int) -> None:
        self._fetch = fetch
        self._page_after = start.after
        self._pos = start.offset
        self._want = want
        self._items: list[Any] = []
        self._next: str | None = None
        self._loaded = False

    async def peek(self) -> Any | None:
        while True:
            if not self._loaded:
                size = min(SERVICE_MAX_PAGE, self._pos + self._want)
                page = await self._fetch(size, self._page_after)
                self._items, self._next, self._loaded = list(page.items), page.next_cursor, True
            if self._pos < len(self._items):
                return self._items[self._pos]
            if self._next is None:
                return None
            # Past this page: move to the next one.
            self._pos -= len(self._items)
            self._page_after, self._loaded = self._next, False

    def take(self) -> None:
        self._pos += 1
        self._want = max(1, self._want - 1)

    def position(self) -> Position:
        if self._loaded and self._pos >= len(self._items) and self._next is not None:
            return Position(self._next, self._pos - len(self._items))
        return Position(self._page_after, self._pos)

    def maybe_more(self) -> bool:
        return self._pos < len(self._items) or self._next is not None


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    """One Relay page: (cursor, item) edges and whether more follow."""

    edges: list[tuple[str, T]]
    has_next_page: bool


async def paginate(
    sources: Mapping[str, Fetch],
    *,
    first: int,
    after: str | None,
    newest: Callable[[Any], Any] | None = None,
) -> Slice[Any]:
    """Read `first` items after `after`, merged newest-first when there are several sources."""
    names = sorted(sources)
    start = decode_cursor(after, names) if after else {n: Position(None, 0) for n in names}
    readers = {n: _Reader(sources[n], start[n], first) for n in names}
    edges: list[tuple[str, Any]] = []
    while len(edges) < first:
        heads = [(n, await readers[n].peek()) for n in names]
        present = [(n, item) for n, item in heads if item is not None]
        if not present:
            break
        if len(present) > 1 and newest is None:
            raise ValueError("merging several sources needs a `newest` key")
        name, item = max(present, key=lambda h: newest(h[1])) if newest else present[0]
        readers[name].take()
        edges.append((encode_cursor({n: r.position() for n, r in readers.items()}), item))
    return Slice(edges=edges, has_next_page=any(r.maybe_more() for r in readers.values()))
