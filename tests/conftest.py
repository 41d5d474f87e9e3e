"""Fixtures for cross-service tests: the whole platform as real processes, isolated."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from thrive_shared.devstack import Endpoints
from thrive_shared.platform import NAMES, Platform
from thrive_shared.testing import with_database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
async def platform(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """recognition, leaderboard, notifier and gateway running on a fresh database, on their
    own copies of every topic and on free ports, so nothing else on the machine interferes."""
    name = f"thrive_platform_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stack.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    plat = Platform(
        kafka=stack.kafka_bootstrap,
        database=with_database(stack.database_url, name),
        ports={n: free_port() for n in NAMES},
        topic_suffix=uuid.uuid4().hex[:10],
        log_dir=Path(tmp_path_factory.mktemp("platform-logs")),
        extra_env={"LOG_LEVEL": "INFO"},
    )
    await plat.create_topics()
    plat.migrate()
    plat.start()
    try:
        await plat.wait_ready(deadline_s=120)
        yield plat
    finally:
        plat.stop()
        admin = await asyncpg.connect(stack.database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
