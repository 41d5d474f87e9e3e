"""Kafka handlers: the directory mirror and help from other systems.

Each is a plain function the shared EventConsumer calls inside its transaction (after the
inbox claim); a business refusal becomes `Reject`, so the event is dead-lettered with
the reason and the rest of the stream goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from thrive_shared.contracts import Envelope, ExternalHelp, PersonErased, PersonUpserted
from thrive_shared.kafka import RecordMeta, Reject

from thrive_recognition.adapters.unit_of_work import SqlUnitOfWork
from thrive_recognition.domain.errors import DomainError
from thrive_recognition.entrypoints.metrics import count_milestones
from thrive_recognition.service_layer import handlers
from thrive_recognition.service_layer.handlers import Policies

_MAX_PENDING = 10_000


class RecognitionConsumers:
    """The handlers for recognition's two input streams, sharing the policies."""

    def __init__(self, policies: Policies) -> None:
        self.policies = policies
        # Events' outputs wait here until their batch commits (see after_commit).
        self._pending: dict[tuple[str, str], list[Envelope[Any]]] = {}

    def _reject(self, err: DomainError) -> Reject:
        where = f" ({err.field})" if err.field else ""
        return Reject(f"{err.code}{where}: {err.message}")

    async def directory(
        self, conn: asyncpg.Connection, event: Envelope[Any], meta: RecordMeta
    ) -> None:
        """directory.person.v1: mirror upserts, forget erased people."""
        uow = SqlUnitOfWork(conn)
        data = event.data
        try:
            if isinstance(data, PersonUpserted):
                await handlers.upsert_person(uow, data)
            elif isinstance(data, PersonErased):
                await handlers.erase_person(uow, data.person)
            else:
                raise Reject(f"type: {event.type!r} is not a directory event")
        except DomainError as err:
            raise self._reject(err) from err
        await uow.flush()

    async def ingest(
        self, conn: asyncpg.Connection, event: Envelope[Any], meta: RecordMeta
    ) -> None:
        """thrive.ingest.help.v1: validate, dedupe on (source, id), take the UI's path."""
        data = event.data
        if not isinstance(data, ExternalHelp):
            raise Reject(f"type: {event.type!r} is not an ingest event")
        uow = SqlUnitOfWork(conn)
        try:
            await handlers.ingest_external(
                uow, source=event.source, event_id=event.id, data=data, policies=self.policies
            )
        except DomainError as err:
            raise self._reject(err) from err
        await uow.flush()
        if uow.published:
            if len(self._pending) > _MAX_PENDING:
                self._pending.clear()
            self._pending[(event.source, event.id)] = uow.published

    async def ingest_batch(
        self, conn: asyncpg.Connection, events: Sequence[tuple[Envelope[Any], RecordMeta]]
    ) -> None:
        """A whole batch set-based: a few statements instead of a few per event.

        Raising makes the consumer fall back to `ingest` one event at a time, which sets
        the bad events aside (DLQ with reason) and applies the rest.
        """
        items = [
            handlers.ExternalEvent(env.source, env.id, env.data)
            for env, _ in events
            if isinstance(env.data, ExternalHelp)
        ]
        if len(items) != len(events):
            raise Reject("batch holds an event that is not external help")
        uow = SqlUnitOfWork(conn)
        try:
            await handlers.ingest_external_many(uow, items, policies=self.policies)
        except DomainError as err:
            raise self._reject(err) from err
        await uow.flush()
        if uow.published and events:
            first = events[0][0]
            self._pending[(first.source, first.id)] = uow.published

    async def after_commit(self, applied: Sequence[tuple[Envelope[Any], RecordMeta]]) -> None:
        """Count milestones once their transaction is committed."""
        pending = self._pending
        for env, _ in applied:
            if not pending:
                break  # a batch's outputs wait under its first event: usually done at once
            published = pending.pop((env.source, env.id), None)
            if published:
                count_milestones(published)
