"""Fixtures for the notifier's tests: a migrated notifier schema in a fresh database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from thrive_notifier.bootstrap import MIGRATIONS
from thrive_shared.db import create_pool, migrate

SCHEMA = "notifier"


@pytest.fixture
async def notifier_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database with the shared and the notifier's migrations applied."""
    await asyncio.to_thread(migrate, database_url, schema=SCHEMA, migrations_dir=MIGRATIONS)
    pool = await create_pool(database_url, schema=SCHEMA, min_size=1, max_size=8)
    yield pool
    await pool.close()
