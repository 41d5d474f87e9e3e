"""Fixtures for cross-service tests: the whole platform as real processes, isolated."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from thrive_shared.devstack import Endpoints
from thrive_shared.platform import Platform
from thrive_shared.testing import isolated_platform


@pytest.fixture(scope="session")
async def platform(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """recognition, leaderboard, notifier and gateway running on a fresh database, on their
    own copies of every topic and on free ports, so nothing else on the machine interferes."""
    log_dir = tmp_path_factory.mktemp("platform-logs")
    async with isolated_platform(stack, label="platform", log_dir=log_dir) as plat:
        yield plat
