"""Fixtures for recognition's unit tests: the in-memory unit of work and a small directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from thrive_recognition.adapters.memory import InMemoryUnitOfWork
from thrive_recognition.domain.milestones import RuleBook
from thrive_recognition.domain.model import Person
from thrive_recognition.service_layer.handlers import Policies

RULES_FILE = Path(__file__).resolve().parents[1] / "milestones.toml"
# A Wednesday, mid-morning in Europe: far from any period boundary.
NOW = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)


@pytest.fixture
def policies() -> Policies:
    return Policies(rules=RuleBook.load(RULES_FILE))


@pytest.fixture
def uow() -> InMemoryUnitOfWork:
    return make_uow()


def make_uow() -> InMemoryUnitOfWork:
    """An in-memory unit of work with five people in four teams and timezones."""
    u = InMemoryUnitOfWork()
    for pid, team, tz in [
        ("ada", "core", "Europe/Paris"),
        ("bob", "core", "UTC"),
        ("cy", "sales", "America/New_York"),
        ("dee", "ops", "Asia/Tokyo"),
        ("eve", "legal", "UTC"),
    ]:
        u.repo.people[pid] = Person(
            id=pid, name=pid.title(), email=f"{pid}@example.com", team=team, timezone=tz
        )
    return u


@pytest.fixture
async def start_recognition(stack, database_url, topic_factory):  # type: ignore[no-untyped-def]
    """`await start_recognition(relay=..., **settings)` -> a running service on the real stack."""
    from .stack_harness import start_harness, stop_harness

    started = []

    async def start(relay: bool = True, **overrides):  # type: ignore[no-untyped-def]
        h = await start_harness(
            database_url=database_url,
            kafka=stack.kafka_bootstrap,
            directory_topic=await topic_factory("directory.person.v1", partitions=3),
            ingest_topic=await topic_factory("thrive.ingest.help.v1", partitions=3),
            relay=relay,
            **overrides,
        )
        started.append(h)
        return h

    yield start
    for h in started:
        await stop_harness(h)
