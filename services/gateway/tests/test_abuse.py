"""Abusive documents are rejected before any resolver runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from strawberry.extensions import SchemaExtension
from thrive_gateway.app import build_gateway, create_app
from thrive_gateway.clients.memory import InMemoryPlatform

from .conftest import make_settings


class ResolverCounter(SchemaExtension):
    """Counts every resolver call, across requests."""

    calls = 0

    def resolve(
        self, _next: Callable[..., Any], root: Any, info: Any, *args: Any, **kwargs: Any
    ) -> Any:
        ResolverCounter.calls += 1
        return _next(root, info, *args, **kwargs)


@pytest.fixture(params=[False, True], ids=["dev", "production"])
async def abuse_client(
    request: pytest.FixtureRequest, platform: InMemoryPlatform
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = make_settings(production=request.param, dev_issuer=not request.param)
    gateway = build_gateway(settings, services=platform.services())
    if gateway.dev_issuer is None:
        from thrive_gateway.auth.dev_issuer import DevIssuer

        # Production has no dev issuer: trust a test issuer's keys instead.
        issuer = DevIssuer(issuer=settings.oidc_issuer, audience=settings.oidc_audience)
        keys = issuer.jwks()

        async def fetch() -> dict[str, Any]:
            return keys

        gateway = build_gateway(settings, services=platform.services(), jwks_fetcher=fetch)
    else:
        issuer = gateway.dev_issuer
    app = create_app(gateway, extra_extensions=[ResolverCounter])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        yield client, issuer.mint("grace")


def deep_query(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"thanksReceived {{ edges {{ node {{ helper {{ {inner} }} }} }} }}"
    return f"{{ me {{ {inner} }} }}"


def alias_query(spreads: int = 100, per_fragment: int = 10) -> str:
    names = " ".join(f"n{i}: name" for i in range(per_fragment))
    body = " ".join(f"p{i}: me {{ ...P }}" for i in range(spreads))
    return f"query Many {{ {body} }} fragment P on Person {{ {names} }}"


COSTLY = """{ feed(first: 100) { edges { node { ... on Thanks {
  giver { thanksReceived(first: 100) { edges { node { id message } } } } } } } } }"""

ABUSE = {
    "depth 50": deep_query(12),
    "1100 aliases via fragments": alias_query(),
    "cost 100x100": COSTLY,
}


async def post(client: httpx.AsyncClient, token: str, payload: Any) -> httpx.Response:
    return await client.post(
        "/graphql",
        content=json.dumps(payload),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


@pytest.mark.parametrize("name", list(ABUSE))
async def test_abusive_documents_never_reach_a_resolver(
    abuse_client: tuple[httpx.AsyncClient, str], platform: InMemoryPlatform, name: str
) -> None:
    client, token = abuse_client
    before = ResolverCounter.calls
    response = await post(client, token, {"query": ABUSE[name]})
    body = response.json()
    assert body.get("data") is None
    assert body["errors"], body
    assert ResolverCounter.calls == before
    assert sum(platform.calls.values()) == 0


async def test_depth_fifty_is_refused_by_the_depth_limit(
    abuse_client: tuple[httpx.AsyncClient, str],
) -> None:
    client, token = abuse_client
    body = (await post(client, token, {"query": deep_query(12)})).json()
    assert any("exceeds maximum operation depth" in e["message"] for e in body["errors"])


async def test_aliases_are_counted_through_fragments(
    abuse_client: tuple[httpx.AsyncClient, str],
) -> None:
    client, token = abuse_client
    # Small enough for the token limit; the alias limit must see through the fragment.
    body = (await post(client, token, {"query": alias_query(spreads=20, per_fragment=5)})).json()
    assert any("aliases found" in e["message"] for e in body["errors"]), body


async def test_costly_query_names_its_cost(abuse_client: tuple[httpx.AsyncClient, str]) -> None:
    client, token = abuse_client
    body = (await post(client, token, {"query": COSTLY})).json()
    codes = [e.get("extensions", {}).get("code") for e in body["errors"]]
    assert "QUERY_TOO_COSTLY" in codes


async def test_one_megabyte_document_gets_413_before_parsing(
    abuse_client: tuple[httpx.AsyncClient, str], platform: InMemoryPlatform
) -> None:
    client, token = abuse_client
    before = ResolverCounter.calls
    query = "{ me { id } }" + " " * (1024 * 1024)
    response = await post(client, token, {"query": query})
    assert response.status_code == 413
    assert ResolverCounter.calls == before
    assert sum(platform.calls.values()) == 0


async def test_batched_operations_are_refused(abuse_client: tuple[httpx.AsyncClient, str]) -> None:
    client, token = abuse_client
    before = ResolverCounter.calls
    response = await post(client, token, [{"query": "{ me { id } }"}] * 50)
    assert response.status_code == 400
    assert ResolverCounter.calls == before


async def test_mutation_over_get_is_refused(abuse_client: tuple[httpx.AsyncClient, str]) -> None:
    client, token = abuse_client
    response = await client.get(
        "/graphql",
        params={"query": "mutation { optOutOfLeaderboards { __typename } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (400, 405)


async def test_introspection_only_outside_production(
    abuse_client: tuple[httpx.AsyncClient, str], request: pytest.FixtureRequest
) -> None:
    client, token = abuse_client
    production = "production" in request.node.callspec.id
    before = ResolverCounter.calls
    body = (await post(client, token, {"query": "{ __schema { types { name } } }"})).json()
    if production:
        assert body.get("data") is None
        assert "introspection" in body["errors"][0]["message"].lower()
        assert ResolverCounter.calls == before
    else:
        assert body["data"]["__schema"]["types"]


async def test_field_suggestions_only_outside_production(
    abuse_client: tuple[httpx.AsyncClient, str], request: pytest.FixtureRequest
) -> None:
    client, token = abuse_client
    production = "production" in request.node.callspec.id
    body = (await post(client, token, {"query": "{ mee { id } }"})).json()
    message = body["errors"][0]["message"]
    assert ("Did you mean" in message) is (not production)


async def test_unexpected_errors_are_masked(
    gql: Any, platform: InMemoryPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("db password is hunter2 at /srv/app.py:42")

    monkeypatch.setattr(platform, "themes", broken)
    _, body = await gql("{ themes { theme } }", as_="grace")
    assert body["errors"][0]["message"] == "Unexpected error."
    assert "hunter2" not in json.dumps(body)
