"""Gateway test fixtures: the ASGI app over an in-memory platform, and tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from thrive_gateway.app import Gateway, build_gateway, create_app
from thrive_gateway.auth.principal import Role
from thrive_gateway.clients.memory import InMemoryPlatform
from thrive_gateway.settings import GatewaySettings

PEOPLE = [
    ("ada", "Ada Lovelace", "platform"),
    ("grace", "Grace Hopper", "platform"),
    ("linus", "Linus Torvalds", "kernel"),
    ("margaret", "Margaret Hamilton", "apollo"),
]


def make_settings(**overrides: Any) -> GatewaySettings:
    base: dict[str, Any] = {"dev_issuer": True, "live_consumers": False}
    base.update(overrides)
    return GatewaySettings(**base)


@pytest.fixture
def platform() -> InMemoryPlatform:
    p = InMemoryPlatform()
    for person_id, name, team in PEOPLE:
        p.add_person(person_id, name, team)
    return p


@pytest.fixture
def settings() -> GatewaySettings:
    return make_settings()


@pytest.fixture
def gateway(settings: GatewaySettings, platform: InMemoryPlatform) -> Gateway:
    return build_gateway(settings, services=platform.services())


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(gateway)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as c:
        yield c


@pytest.fixture
def token(gateway: Gateway) -> Callable[..., str]:
    assert gateway.dev_issuer is not None
    issuer = gateway.dev_issuer

    def mint(person: str, *, admin: bool = False, **kwargs: Any) -> str:
        roles = (Role.EMPLOYEE, Role.ADMIN) if admin else (Role.EMPLOYEE,)
        return issuer.mint(person, roles=roles, **kwargs)

    return mint


@pytest.fixture
def gql(client: httpx.AsyncClient, token: Callable[..., str]) -> Callable[..., Any]:
    """POST a document as `as_` (None: anonymous); returns (status, json)."""

    async def run(
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_: str | None = None,
        admin: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        headers = {}
        if as_ is not None:
            headers["Authorization"] = f"Bearer {token(as_, admin=admin)}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        response = await client.post("/graphql", json=body, headers=headers)
        return response.status_code, response.json()

    return run
