"""The widgets' operations stay valid against the schema, and are the production allow-list."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from graphql import parse, validate
from thrive_gateway.app import WIDGET_OPERATIONS, build_gateway, create_app
from thrive_gateway.clients.memory import InMemoryPlatform
from thrive_gateway.schema import schema

from .conftest import make_settings

OPERATIONS: dict[str, str] = json.loads(WIDGET_OPERATIONS.read_text())
STATIC = WIDGET_OPERATIONS.parent
SCRIPTS = sorted(p.name for p in STATIC.glob("*.js"))


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_widget_operation_is_valid_against_the_schema(name: str) -> None:
    document = parse(OPERATIONS[name])
    errors = validate(schema._schema, document)
    assert errors == [], errors


def test_every_operation_a_widget_names_exists() -> None:
    import re

    used: set[str] = set()
    for path in STATIC.glob("*.js"):
        used |= set(re.findall(r"(?:gql|subscribe)\('(\w+)'", path.read_text()))
    assert used, "no widget calls found"
    assert used <= set(OPERATIONS), used - set(OPERATIONS)


def test_the_leaderboard_widget_asks_for_the_board_apart_from_the_viewer_rank() -> None:
    # The board is the same for every employee, so the gateway may share one cached answer;
    # the viewer's rank is personal and travels in its own operation.
    from thrive_gateway.schema.sharing import Sharing, judge

    assert judge(schema._schema, parse(OPERATIONS["Leaderboard"])).sharing is Sharing.CLASS
    assert judge(schema._schema, parse(OPERATIONS["MyRank"])).sharing is Sharing.NONE


async def test_widgets_may_send_hashes_alone_outside_persisted_only_mode(
    client: httpx.AsyncClient, token: Any
) -> None:
    from thrive_gateway.protection.persisted import document_hash

    headers = {"Authorization": f"Bearer {token('grace')}"}
    known = await client.post(
        "/graphql",
        json={
            "variables": {"board": "SERVICE", "window": "MONTH"},
            "operationName": "MyRank",
            "extensions": {
                "persistedQuery": {"version": 1, "sha256Hash": document_hash(OPERATIONS["MyRank"])}
            },
        },
        headers=headers,
    )
    assert known.json()["data"]["myRank"]["optedOut"] is False
    # An unknown hash gets the code a client answers by sending the document itself.
    unknown = await client.post(
        "/graphql",
        json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "f" * 64}}},
        headers=headers,
    )
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    free_text = await client.post("/graphql", json={"query": "{ me { id } }"}, headers=headers)
    assert free_text.json()["data"]["me"] == {"id": "grace"}


@pytest.fixture
async def prod(platform: InMemoryPlatform) -> Any:
    settings = make_settings(persisted_queries_only=True)
    gateway = build_gateway(settings, services=platform.services())
    app = create_app(gateway)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        c.headers["Authorization"] = f"Bearer {gateway.dev_issuer.mint('grace')}"  # type: ignore[union-attr]
        yield c


async def test_persisted_only_mode_runs_widget_operations_and_nothing_else(prod: Any) -> None:
    ok = await prod.post(
        "/graphql",
        json={
            "query": OPERATIONS["Leaderboard"],
            "variables": {"board": "SERVICE", "window": "MONTH", "first": 5},
        },
    )
    assert "errors" not in ok.json(), ok.json()
    other = await prod.post("/graphql", json={"query": "{ me { id name } }"})
    assert other.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"


async def test_persisted_query_by_hash_alone(prod: Any) -> None:
    from thrive_gateway.protection.persisted import document_hash

    digest = document_hash(OPERATIONS["Feed"])
    response = await prod.post(
        "/graphql",
        json={
            "variables": {"first": 3},
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
        },
    )
    assert response.json()["data"]["feed"]["edges"] == []
    unknown = await prod.post(
        "/graphql",
        json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
    )
    assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"


async def test_demo_page_and_widgets_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/demo")
    assert page.status_code == 200
    assert "<thrive-kudos-wall" in page.text
    assert len(SCRIPTS) == 6
    for script in SCRIPTS:
        response = await client.get(f"/widgets/{script}")
        assert response.status_code == 200
        assert "javascript" in response.headers["content-type"]


async def test_dev_issuer_mints_tokens_the_gateway_accepts(client: httpx.AsyncClient) -> None:
    users = (await client.get("/dev-oidc/users")).json()["items"]
    assert {"ada", "grace"} <= {u["id"] for u in users}
    discovery = (await client.get("/dev-oidc/.well-known/openid-configuration")).json()
    assert discovery["jwks_uri"].endswith("/dev-oidc/jwks.json")
    token = (await client.post("/dev-oidc/token", json={"username": "grace"})).json()
    me = await client.post(
        "/graphql",
        json={"query": "{ me { id name } }"},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert me.json()["data"]["me"] == {"id": "grace", "name": "Grace Hopper"}
    bad = await client.post("/dev-oidc/token", json={"username": "../etc"})
    assert bad.status_code == 400


async def test_no_dev_issuer_in_production(platform: InMemoryPlatform) -> None:
    gateway = build_gateway(
        make_settings(production=True, dev_issuer=True), services=platform.services()
    )
    assert gateway.dev_issuer is None
    app = create_app(gateway)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post("/dev-oidc/token", json={"username": "ada"})).status_code == 404
