"""The Postgres unit of work: a connection in a transaction, and the outbox."""

from __future__ import annotations

from typing import Any

import asyncpg
from thrive_shared.contracts import Envelope
from thrive_shared.outbox import enqueue_many

from thrive_recognition.adapters.sql import SqlRepository


class SqlUnitOfWork:
    """Handlers publish here; `flush` writes the events to the outbox, in order, in one go."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.repo = SqlRepository(conn)
        self.published: list[Envelope[Any]] = []
        self._pending: list[Envelope[Any]] = []

    async def publish(self, envelope: Envelope[Any]) -> None:
        """Queue an event for the outbox of this transaction."""
        self._pending.append(envelope)

    async def flush(self) -> None:
        """Write queued events to the outbox (call before the transaction commits)."""
        if self._pending:
            pending, self._pending = self._pending, []
            await enqueue_many(self.conn, pending)
            self.published.extend(pending)
