"""Root conftest: every test gets Thrive's fixtures (stack, database_url, topic_factory)."""

from __future__ import annotations

import os
from typing import Any

import pytest

pytest_plugins = ["thrive_shared.testing"]

# In CI a test skipped for a missing tool or package means CI proves less than the README
# claims: `.ci/run` installs every prerequisite, so such a skip is a failure there.
_MISSING = ("could not import", "missing", "not installed", "not found")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped:
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(word in reason.lower() for word in _MISSING):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI for a missing prerequisite: {reason}"
