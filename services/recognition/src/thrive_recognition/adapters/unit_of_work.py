"""The Postgres unit of work: a connection in a transaction, and the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
from thrive_shared.contracts import Envelope, HelpReceived, MilestoneReached
from thrive_shared.contracts.topics import physical
from thrive_shared.outbox import enqueue_rows, outbox_rows

from thrive_recognition.adapters.sql import SqlRepository

# Payloads whose contract JSON orjson renders byte for byte like pydantic: flat models of
# str, int, bool, None, lists of str, aware datetimes and StrEnums, no aliases or custom
# serialisers (tests compare the two on awkward values). About 1.8 of them per ingested
# event, where pydantic's model_dump_json cost several times more.
_FLAT_PAYLOADS: tuple[type[Any], ...] = (HelpReceived, MilestoneReached)


def _fields(obj: Any) -> dict[str, Any]:
    if type(obj) in _FLAT_PAYLOADS:
        return obj.__dict__  # type: ignore[no-any-return]
    raise TypeError(f"{type(obj).__name__} is not rendered here")


def outbox_payload(envelope: Envelope[Any]) -> bytes:
    """`envelope.to_json()` for a flat payload (see _FLAT_PAYLOADS), rendered by orjson."""
    return orjson.dumps(envelope.__dict__, default=_fields, option=orjson.OPT_UTC_Z)


def render_rows(envelopes: Sequence[Envelope[Any]]) -> list[tuple[Any, ...]]:
    """Envelopes as outbox rows, like `thrive_shared.outbox.outbox_rows`, flat ones faster."""
    rows: list[tuple[Any, ...]] = []
    topics: dict[type[Any], str] = {}
    for e in envelopes:
        kind = type(e.data)
        if kind in _FLAT_PAYLOADS:
            topic = topics.get(kind)
            if topic is None:
                topic = topics[kind] = physical(kind.TOPIC)
            rows.append((topic, e.subject, e.id, e.type, outbox_payload(e)))
        else:
            rows.extend(outbox_rows([e]))
    return rows


class SqlUnitOfWork:
    """Handlers publish here; `flush` writes the events to the outbox, in order, in one go."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.repo = SqlRepository(conn)
        self.published: list[Envelope[Any]] = []
        self._pending: list[Envelope[Any]] = []
        self._rows: list[tuple[Any, ...]] = []  # rendered, in order, before _pending

    async def publish(self, envelope: Envelope[Any]) -> None:
        """Queue an event for the outbox of this transaction."""
        self._pending.append(envelope)

    def render(self) -> None:
        """Serialise the events queued so far (Python work to overlap with a query)."""
        if self._pending:
            self._rows.extend(render_rows(self._pending))
            self.published.extend(self._pending)
            self._pending = []

    async def flush(self) -> None:
        """Write queued events to the outbox (call before the transaction commits)."""
        self.render()
        if self._rows:
            rows, self._rows = self._rows, []
            await enqueue_rows(self.conn, rows)
