"""schemathesis (GraphQL mode) against a running gateway: no 5xx, no unmasked or masked crash."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from thrive_gateway.app import build_gateway, create_app
from thrive_gateway.clients.memory import InMemoryPlatform

from .conftest import PEOPLE, make_settings
from .test_subscriptions import free_port

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

SDL = Path(__file__).resolve().parents[1] / "schema.graphql"
SCHEMA = schemathesis.graphql.from_path(str(SDL))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# Error codes the gateway gives on purpose; anything else with a code is a surprise.
EXPECTED_CODES = {"UNAUTHENTICATED", "FORBIDDEN", "BAD_USER_INPUT", "QUERY_TOO_COSTLY", None}


@pytest.fixture(scope="module")
def running_gateway() -> Iterator[tuple[str, str]]:
    """The gateway over an in-memory platform, served by uvicorn in its own thread."""
    platform = InMemoryPlatform(allowance=1_000)
    for person_id, name, team in PEOPLE:
        platform.add_person(person_id, name, team)
    settings = make_settings(mutation_burst=100_000, mutation_rate_per_minute=100_000)
    gateway = build_gateway(settings, services=platform.services())
    assert gateway.dev_issuer is not None
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(gateway), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    with httpx.Client() as probe:
        for _ in range(500):
            try:
                if probe.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}/graphql", gateway.dev_issuer.mint("grace")
    server.should_exit = True
    thread.join(timeout=10)


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    body: Any = response.json()
    for error in body.get("errors") or []:
        message = error["message"]
        assert message != "Unexpected error.", f"a resolver crashed: {error}"
        assert "Traceback" not in message and 'File "' not in message, message
        code = (error.get("extensions") or {}).get("code")
        assert code in EXPECTED_CODES, error


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_generated_operations_never_crash_the_gateway(
    running_gateway: tuple[str, str], operation: Any
) -> None:
    url, token = running_gateway

    @hypothesis.settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy())
    def run(case: Any) -> None:
        query = case.body if isinstance(case.body, str) else case.body["query"]
        with httpx.Client(timeout=10) as client:
            for headers in ({"Authorization": f"Bearer {token}"}, {}):
                check(client.post(url, json={"query": query}, headers=headers))

    run()
