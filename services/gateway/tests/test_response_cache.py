"""The whole-response cache: shared answers are reused, private answers never change hands.

A cached response is served without running any resolver or permission check, so these
tests prove the key holds everything the answer depends on: the viewer's class for shared
documents, the person for personal ones, and nothing at all for documents that read
anything viewer-dependent (private thanks, follows, mutes, operator fields).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from graphql import parse
from thrive_gateway.app import Gateway
from thrive_gateway.clients.memory import InMemoryPlatform
from thrive_gateway.clients.models import ThanksDTO
from thrive_gateway.live.responses import ResponseCache
from thrive_gateway.schema import build_schema
from thrive_gateway.schema.sharing import Sharing, judge
from thrive_shared.contracts import (
    Board,
    HelpReceived,
    LeaderboardChanged,
    PersonUpserted,
    Standing,
    Visibility,
    make_event,
)

FEED = """query Feed($first: Int!) { feed(first: $first) { edges { node { __typename
  ... on Thanks { id message giver { id name counts { thanksGiven } } helper { name } } } } } }"""
BOARD = "{ leaderboard(window: WEEK) { standings { rank person { id name } } } }"
ME = "{ me { id name counts { thanksReceived thanksGiven } } }"
RECEIVED = """query($id: ID!) { person(id: $id) {
  thanksReceived(first: 10) { edges { node { id message visibility } } } } }"""
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

Post = Callable[..., Any]


@pytest.fixture
def post(client: httpx.AsyncClient, token: Callable[..., str]) -> Post:
    """POST a document; returns the raw response (to see whether the cache answered)."""

    async def run(
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_: str | None,
        admin: bool = False,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token(as_, admin=admin)}"} if as_ else {}
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await client.post("/graphql", json=body, headers=headers)

    return run


def cached(response: httpx.Response) -> bool:
    return response.headers.get("x-thrive-cache") == "hit"


def add_thanks(platform: InMemoryPlatform, thanks_id: str, *, visibility: str = "public") -> None:
    platform.thanks.insert(
        0,
        ThanksDTO(
            id=thanks_id,
            giver="ada",
            helper="grace",
            message=f"secret {thanks_id}" if visibility == "private" else f"thanks {thanks_id}",
            visibility=visibility,
            given_at=T0,
        ),
    )


def thanks_event(thanks_id: str, *, visibility: Visibility = Visibility.PUBLIC) -> Any:
    return make_event(
        HelpReceived(
            thanks_id=thanks_id, giver="ada", helper="grace", visibility=visibility, given_at=T0
        ),
        source="thrive/recognition",
    )


async def test_the_feed_is_answered_from_cache_for_every_employee(
    post: Post, platform: InMemoryPlatform
) -> None:
    add_thanks(platform, "t1")
    first = await post(FEED, {"first": 5}, as_="linus")
    second = await post(FEED, {"first": 5}, as_="margaret")
    assert not cached(first)
    assert cached(second)
    assert second.json() == first.json()
    assert platform.calls["recent_thanks"] == 1
    # Other variables are another answer.
    other = await post(FEED, {"first": 4}, as_="margaret")
    assert not cached(other)


async def test_private_thanks_never_reach_anyone_else_through_the_cache(
    post: Post, platform: InMemoryPlatform
) -> None:
    add_thanks(platform, "t-private", visibility="private")
    add_thanks(platform, "t-public")
    # The giver reads her private thanks; then another employee sends the same document.
    for viewer, sees in [("ada", True), ("linus", False), ("ada", True), ("linus", False)]:
        response = await post(RECEIVED, {"id": "grace"}, as_=viewer)
        messages = [
            e["node"]["message"]
            for e in response.json()["data"]["person"]["thanksReceived"]["edges"]
        ]
        assert ("secret t-private" in messages) is sees, viewer
        assert not cached(response)
    # The shared feed holds public thanks only, whoever filled the cache.
    for viewer in ("ada", "linus"):
        body = (await post(FEED, {"first": 5}, as_=viewer)).json()
        ids = [e["node"]["id"] for e in body["data"]["feed"]["edges"]]
        assert ids == ["t-public"]


async def test_me_is_cached_per_person_only(post: Post) -> None:
    answers = {}
    for viewer in ("ada", "linus", "ada", "linus"):
        response = await post(ME, as_=viewer)
        assert response.json()["data"]["me"]["id"] == viewer
        answers.setdefault(viewer, []).append(cached(response))
    assert answers == {"ada": [False, True], "linus": [False, True]}


async def test_anonymous_and_other_roles_never_get_an_employees_cached_answer(
    post: Post,
) -> None:
    await post(BOARD, as_="linus")
    assert cached(await post(BOARD, as_="linus"))
    anonymous = await post(BOARD, as_=None)
    assert not cached(anonymous)
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert not cached(await post(BOARD, as_="margaret", admin=True))


async def test_operator_and_private_fields_are_never_cached(post: Post) -> None:
    status = "{ gatewayStatus { subscribers } }"
    assert "errors" not in (await post(status, as_="margaret", admin=True)).json()
    refused = await post(status, as_="linus")
    assert not cached(refused)
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    mutes = '{ person(id: "ada") { mutes { target } } }'
    await post(mutes, as_="ada")
    refused = await post(mutes, as_="linus")
    assert not cached(refused)
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_public_thanks_event_refreshes_the_cached_feed_within_the_next_request(
    post: Post, platform: InMemoryPlatform, gateway: Gateway
) -> None:
    add_thanks(platform, "t1")
    await post(FEED, {"first": 5}, as_="linus")
    assert cached(await post(FEED, {"first": 5}, as_="linus"))
    add_thanks(platform, "t2")
    gateway.live.apply(thanks_event("t2"))
    body = (await post(FEED, {"first": 5}, as_="linus")).json()
    assert [e["node"]["id"] for e in body["data"]["feed"]["edges"]] == ["t2", "t1"]


async def test_a_private_thanks_refreshes_the_counts_shown_but_never_enters_the_feed(
    post: Post, platform: InMemoryPlatform, gateway: Gateway
) -> None:
    add_thanks(platform, "t1")
    before = (await post(FEED, {"first": 5}, as_="linus")).json()
    given = before["data"]["feed"]["edges"][0]["node"]["giver"]["counts"]["thanksGiven"]
    add_thanks(platform, "t-private", visibility="private")
    gateway.live.apply(thanks_event("t-private", visibility=Visibility.PRIVATE))
    after = await post(FEED, {"first": 5}, as_="linus")
    assert not cached(after)
    edges = after.json()["data"]["feed"]["edges"]
    assert [e["node"]["id"] for e in edges] == ["t1"]
    assert edges[0]["node"]["giver"]["counts"]["thanksGiven"] == given + 1


async def test_board_responses_drop_on_their_board_event_and_on_a_rename(
    post: Post, platform: InMemoryPlatform, gateway: Gateway, gql: Any
) -> None:
    await gql(
        'mutation { giveThanks(input: {helper: "grace", message: "ty"}) { __typename } }',
        as_="ada",
    )
    month = "{ leaderboard(window: MONTH) { standings { rank person { id name } } } }"
    for query in (BOARD, month):
        await post(query, as_="linus")
        assert cached(await post(query, as_="linus"))
    changed = LeaderboardChanged(
        board=Board(metric="service", window="week"),
        period="2026-W10",
        top=[Standing(person="grace", rank=1, score=3.0)],
    )
    gateway.live.apply(make_event(changed, source="thrive/leaderboard"))
    assert not cached(await post(BOARD, as_="linus"))
    assert cached(await post(month, as_="linus"))

    platform.add_person("grace", "Grace B. Hopper", "platform")
    gateway.live.apply(
        make_event(
            PersonUpserted(
                person="grace", name="Grace B. Hopper", email="g@example.com", team="platform"
            ),
            source="hr/test",
        )
    )
    response = await post(month, as_="linus")
    assert not cached(response)
    assert response.json()["data"]["leaderboard"]["standings"][0]["person"]["name"] == (
        "Grace B. Hopper"
    )


def test_a_response_computed_across_an_event_is_not_stored() -> None:
    cache = ResponseCache(ttl=30)
    started = cache.begin()
    cache.invalidate("feed")
    assert not cache.put("k", b"{}", tags={"feed", "person:ada"}, started=started)
    assert cache.put("k", b"{}", tags={"board:x"}, started=started)
    assert cache.get("k") == b"{}"
    cache.invalidate("board:x")
    assert cache.get("k") is None


@pytest.mark.parametrize(
    ("document", "sharing"),
    [
        (FEED, Sharing.CLASS),
        (BOARD, Sharing.CLASS),
        (ME, Sharing.PERSON),
        ("{ me { id } feed { edges { cursor } } }", Sharing.PERSON),
        (RECEIVED, Sharing.NONE),
        ("{ me { follows { target } } }", Sharing.NONE),
        ("{ me { rank { rank } } }", Sharing.NONE),
        ("{ myRank { rank } }", Sharing.NONE),
        ("{ gatewayStatus { subscribers } }", Sharing.NONE),
        ("{ __schema { types { name } } }", Sharing.NONE),
        ('{ thanks(id: "t1") { message } }', Sharing.NONE),
        ("mutation { optOutOfLeaderboards { __typename } }", Sharing.NONE),
        ("query A { me { id } } query B { feed { edges { cursor } } }", Sharing.NONE),
        (
            "{ feed { ...F } } fragment F on FeedItemConnection { edges { node {"
            " ... on Thanks { giver { thanksReceived { edges { cursor } } } } } } }",
            Sharing.NONE,
        ),
    ],
)
def test_only_viewer_independent_documents_are_shareable(document: str, sharing: Sharing) -> None:
    schema = build_schema()._schema
    assert judge(schema, parse(document)).sharing is sharing
