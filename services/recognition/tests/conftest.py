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
