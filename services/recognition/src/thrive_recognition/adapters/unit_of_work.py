"""The Postgres unit of work: a connection in a transaction, and the outbox."""

from __future__ import annotations

from typing import Any

import asyncpg
from thrive_shared.contracts import Envelope
from thrive_shared.outbox import enqueue_rows, outbox_rows

from thrive_recognition.adapters.sql import SqlRepository


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
            self._rows.extend(outbox_rows(self._pending))
            self.published.extend(self._pending)
            self._pending = []

    async def flush(self) -> None:
        """Write queued events to the outbox (call before the transaction commits)."""
        self.render()
        if self._rows:
            rows, self._rows = self._rows, []
            await enqueue_rows(self.conn, rows)
