"""A unit of work: one transaction's repository plus the events it will publish."""

from __future__ import annotations

from typing import Any, Protocol

from thrive_shared.contracts import Envelope

from thrive_recognition.adapters.repository import Repository


class UnitOfWork(Protocol):
    """What a handler needs: storage, and an outbox to publish through on commit."""

    @property
    def repo(self) -> Repository:
        """This transaction's storage."""
        ...

    async def publish(self, envelope: Envelope[Any]) -> None:
        """Publish `envelope` if (and only if) this unit of work commits."""
        ...

    def render(self) -> None:
        """Prepare what was published so far for the outbox (CPU work, no I/O)."""
        ...
