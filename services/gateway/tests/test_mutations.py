"""Mutations answer refusals as typed results the widget can act on."""

from __future__ import annotations

from typing import Any

import pytest
from thrive_gateway.app import build_gateway, create_app
from thrive_gateway.clients.memory import InMemoryPlatform

from .conftest import make_settings

GIVE = """mutation($helper: ID!, $message: String!, $themes: [String!]! = []) {
  giveThanks(input: {helper: $helper, message: $message, themes: $themes}) {
    __typename
    ... on ThanksGiven { thanks { id message themes helper { name } } }
    ... on AllowanceExceeded { message limit period resetsAt }
    ... on UserError { message }
    ... on ValidationFailed { field }
    ... on NotFound { field }
    ... on RateLimited { retryAfterSeconds }
  }
}"""


async def give(gql: Any, helper: str, message: str = "thanks!", **kw: Any) -> dict[str, Any]:
    _, body = await gql(GIVE, {"helper": helper, "message": message, **kw}, as_="ada")
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["giveThanks"]
    return result


async def test_thanks_are_given_with_normalised_themes(gql: Any) -> None:
    result = await give(gql, "grace", themes=["#Python", "customer-first"])
    assert result["__typename"] == "ThanksGiven"
    assert result["thanks"]["themes"] == ["python", "customer-first"]
    assert result["thanks"]["helper"]["name"] == "Grace Hopper"


async def test_allowance_exceeded_tells_when_it_resets(
    gql: Any, platform: InMemoryPlatform
) -> None:
    for _ in range(platform.allowance):
        assert (await give(gql, "grace"))["__typename"] == "ThanksGiven"
    result = await give(gql, "grace")
    assert result["__typename"] == "AllowanceExceeded"
    assert result["limit"] == platform.allowance
    assert result["period"] == "week"
    assert result["resetsAt"]


@pytest.mark.parametrize(
    ("helper", "message", "typename", "field"),
    [
        ("ada", "me", "ValidationFailed", "helper"),
        ("nobody", "hi", "NotFound", "helper"),
        ("grace", "   ", "ValidationFailed", "message"),
        ("grace", "x" * 2001, "ValidationFailed", "message"),
        ("../../admin", "hi", "NotFound", "helper"),
    ],
)
async def test_refusals_are_typed(
    gql: Any, platform: InMemoryPlatform, helper: str, message: str, typename: str, field: str
) -> None:
    result = await give(gql, helper, message)
    assert result["__typename"] == typename
    assert result["field"] == field
    assert result["message"]
    assert platform.thanks == []


async def test_bad_themes_are_refused(gql: Any) -> None:
    result = await give(gql, "grace", themes=["no spaces allowed"])
    assert result == {
        "__typename": "ValidationFailed",
        "message": result["message"],
        "field": "themes",
    }


async def test_mutations_are_rate_limited_per_person(platform: InMemoryPlatform) -> None:
    import httpx

    gateway = build_gateway(
        make_settings(mutation_burst=3, mutation_rate_per_minute=1), services=platform.services()
    )
    assert gateway.dev_issuer is not None
    app = create_app(gateway)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:

        async def mute(person: str) -> str:
            r = await c.post(
                "/graphql",
                json={"query": 'mutation { mute(kind: THEME, target: "golf") { __typename } }'},
                headers={"Authorization": f"Bearer {gateway.dev_issuer.mint(person)}"},  # type: ignore[union-attr]
            )
            return str(r.json()["data"]["mute"]["__typename"])

        assert [await mute("ada") for _ in range(4)] == ["FiltersChanged"] * 3 + ["RateLimited"]
        # Someone else still has their own bucket.
        assert await mute("grace") == "FiltersChanged"
    assert platform.calls["add_mutes"] == 4


async def test_aliased_mutations_each_spend_a_token(platform: InMemoryPlatform) -> None:
    import httpx

    gateway = build_gateway(make_settings(mutation_burst=2), services=platform.services())
    app = create_app(gateway)
    doc = (
        "mutation {"
        + " ".join(f'm{i}: mute(kind: THEME, target: "t{i}") {{ __typename }}' for i in range(5))
        + "}"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(
            "/graphql",
            json={"query": doc},
            headers={"Authorization": f"Bearer {gateway.dev_issuer.mint('ada')}"},  # type: ignore[union-attr]
        )
    kinds = [v["__typename"] for v in r.json()["data"].values()]
    assert kinds.count("FiltersChanged") == 2
    assert kinds.count("RateLimited") == 3


async def test_ask_offer_accept_and_withdraw(gql: Any) -> None:
    _, body = await gql(
        """mutation { askForHelp(input: {title: "Review my SQL?", size: CHAT, themes: ["sql"]}) {
            __typename ... on AskPosted { ask { id status size asker { id } } } } }""",
        as_="grace",
    )
    ask = body["data"]["askForHelp"]["ask"]
    assert ask["status"] == "open"
    assert ask["size"] == "CHAT"
    assert ask["asker"]["id"] == "grace"

    _, body = await gql('{ asks(theme: "sql") { edges { node { id title } } } }', as_="linus")
    assert [e["node"]["id"] for e in body["data"]["asks"]["edges"]] == [ask["id"]]

    _, body = await gql(
        'mutation($a: ID!) { offerHelp(input: {askId: $a, message: "happy to"}) {'
        " __typename ... on OfferMade { offer { id helper { id } } } } }",
        {"a": ask["id"]},
        as_="linus",
    )
    offer = body["data"]["offerHelp"]["offer"]
    assert offer["helper"]["id"] == "linus"

    _, body = await gql(
        "mutation($a: ID!) { withdrawAsk(askId: $a) { __typename ... on UserError { message } } }",
        {"a": ask["id"]},
        as_="linus",
    )
    assert body["data"]["withdrawAsk"]["__typename"] == "NotAllowed"

    _, body = await gql(
        "mutation($a: ID!) { withdrawAsk(askId: $a) {"
        " __typename ... on AskPosted { ask { status } } } }",
        {"a": ask["id"]},
        as_="grace",
    )
    assert body["data"]["withdrawAsk"]["ask"]["status"] == "withdrawn"


async def test_preferences_round_trip_and_validation(gql: Any) -> None:
    _, body = await gql(
        """mutation { setPreferences(input: {channels: ["in_app", "email"], dailyBudget: 3,
             quietHoursStart: "18:00", quietHoursEnd: "08:00", digestFrequency: WEEKLY}) {
             __typename ... on PreferencesSaved { preferences { channels dailyBudget } } } }""",
        as_="grace",
    )
    assert body["data"]["setPreferences"]["preferences"] == {
        "channels": ["in_app", "email"],
        "dailyBudget": 3,
    }
    _, body = await gql(
        "{ preferences { dailyBudget quietHoursStart digestFrequency } }", as_="grace"
    )
    assert body["data"]["preferences"] == {
        "dailyBudget": 3,
        "quietHoursStart": "18:00",
        "digestFrequency": "WEEKLY",
    }
    _, body = await gql(
        """mutation { setPreferences(input: {channels: ["pigeon"]}) {
             __typename ... on ValidationFailed { field } } }""",
        as_="grace",
    )
    assert body["data"]["setPreferences"] == {"__typename": "ValidationFailed", "field": "channels"}


async def test_opting_out_hides_me_from_cached_boards(gql: Any) -> None:
    await give(gql, "grace")
    query = "{ leaderboard { standings { person { id } } } }"
    _, body = await gql(query, as_="linus")
    assert [s["person"]["id"] for s in body["data"]["leaderboard"]["standings"]] == ["grace"]
    _, body = await gql(
        "mutation { optOutOfLeaderboards { __typename ... on LeaderboardOptOut { optedOut } } }",
        as_="grace",
    )
    assert body["data"]["optOutOfLeaderboards"]["optedOut"] is True
    _, body = await gql(query, as_="linus")
    assert body["data"]["leaderboard"]["standings"] == []
    _, body = await gql("{ myRank { optedOut rank } }", as_="grace")
    assert body["data"]["myRank"] == {"optedOut": True, "rank": None}
