"""Fixtures for recognition's unit tests: the in-memory unit of work and a small directory."""

from __future__ import annotations

import time
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
async def start_recognition(stack, database_url, monkeypatch):  # type: ignore[no-untyped-def]
    """`await start_recognition(relay=..., **settings)` -> a running service on the real stack.

    The service consumes and publishes only this test's copies of the canonical topics
    ("<topic>-<suffix>", THRIVE_TOPIC_SUFFIX), so nothing reaches the shared ones.
    """
    from thrive_shared.contracts import topics
    from thrive_shared.devstack import probes
    from thrive_shared.devstack.stack import CANONICAL_TOPICS
    from thrive_shared.testing import unique_name

    from .stack_harness import start_harness, stop_harness

    suffix = unique_name("rt")
    monkeypatch.setenv(topics.SUFFIX_ENV, suffix)
    copies = {f"{name}-{suffix}": spec for name, spec in CANONICAL_TOPICS.items()}
    started = []
    created = False

    async def start(relay: bool = True, **overrides):  # type: ignore[no-untyped-def]
        nonlocal created
        if not created:
            await probes.ensure_topics(
                stack.kafka_bootstrap, copies, deadline=time.monotonic() + 60
            )
            created = True
        h = await start_harness(
            database_url=database_url, kafka=stack.kafka_bootstrap, relay=relay, **overrides
        )
        started.append(h)
        return h

    yield start
    for h in started:
        await stop_harness(h)
    if created:
        await probes.delete_topics(stack.kafka_bootstrap, list(copies))
