"""`make run` end to end: the four services start, pass health and readiness, take the demo
data, and stop cleanly — on the real local stack."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SERVICES = ("recognition", "leaderboard", "notifier", "gateway")


def _ports_free() -> bool:
    import socket

    for port in (8000, 8101, 8102, 8103):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return False
    return True


def test_platform_starts_seeds_and_stops_cleanly(stack: object) -> None:
    if not _ports_free():
        pytest.fail("ports 8000/8101-8103 are taken: is `make run` already running here?")
    done = subprocess.run(
        [sys.executable, "-m", "thrive_shared.platform", "run", "--smoke"],
        env={**os.environ, "LOG_JSON": "true"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for name in SERVICES:
        assert f"{name} healthy and ready" in out, out[-4000:]
        assert f"{name}: stopped cleanly" in out, out[-4000:]
    assert "12 people" in out, out[-4000:]
