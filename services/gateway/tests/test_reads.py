"""Reads: merged feed paging, one batched people call per request, shared caches, outages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from thrive_gateway.app import Gateway
from thrive_gateway.clients.memory import InMemoryPlatform
from thrive_gateway.clients.models import MilestoneDTO, ThanksDTO
from thrive_shared.contracts import Board, HelpReceived, LeaderboardChanged, Standing, make_event

FEED = """query($first: Int!, $after: String) { feed(first: $first, after: $after) {
  edges { cursor node { __typename
    ... on Thanks { id message giver { name } helper { name } }
    ... on Milestone { id title person { name } } } }
  pageInfo { hasNextPage endCursor } } }"""

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def seed(platform: InMemoryPlatform, *, thanks: int, milestones: int) -> list[str]:
    """Interleaved thanks and milestones; returns all ids newest first."""
    items: list[tuple[datetime, str]] = []
    for i in range(thanks):
        at = T0 + timedelta(minutes=2 * i)
        platform.thanks.insert(
            0,
            ThanksDTO(
                id=f"t{i}",
                giver="ada",
                helper="grace",
                message=f"thanks {i}",
                giver_team="platform",
                helper_team="platform",
                given_at=at,
            ),
        )
        items.append((at, f"t{i}"))
    for i in range(milestones):
        at = T0 + timedelta(minutes=3 * i + 1, seconds=30)
        platform.milestones.insert(
            0,
            MilestoneDTO(
                id=f"m{i}",
                person="grace",
                team="platform",
                rule_id="first",
                title=f"ms {i}",
                reached_at=at,
            ),
        )
        items.append((at, f"m{i}"))
    return [i for _, i in sorted(items, reverse=True)]


async def test_feed_pages_through_merged_thanks_and_milestones(
    gql: Any, platform: InMemoryPlatform
) -> None:
    expected = seed(platform, thanks=23, milestones=11)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        _, body = await gql(FEED, {"first": 7, "after": after}, as_="linus")
        feed = body["data"]["feed"]
        seen += [e["node"]["id"] for e in feed["edges"]]
        pages += 1
        if not feed["pageInfo"]["hasNextPage"]:
            break
        after = feed["pageInfo"]["endCursor"]
    assert seen == expected
    assert pages == 5


async def test_any_edge_cursor_resumes_right_after_that_edge(
    gql: Any, platform: InMemoryPlatform
) -> None:
    expected = seed(platform, thanks=10, milestones=6)
    _, body = await gql(FEED, {"first": 9}, as_="linus")
    edges = body["data"]["feed"]["edges"]
    _, body = await gql(FEED, {"first": 4, "after": edges[2]["cursor"]}, as_="linus")
    assert [e["node"]["id"] for e in body["data"]["feed"]["edges"]] == expected[3:7]


async def test_a_forged_cursor_is_a_clear_error(gql: Any) -> None:
    _, body = await gql(FEED, {"first": 5, "after": "bm90LWEtY3Vyc29y"}, as_="linus")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "after" in body["errors"][0]["message"]


async def test_people_are_loaded_in_one_batch_per_request(
    gql: Any, platform: InMemoryPlatform, gateway: Gateway
) -> None:
    seed(platform, thanks=20, milestones=5)
    gateway.live.people_cache.invalidate()
    _, body = await gql(FEED, {"first": 20}, as_="linus")
    assert len(body["data"]["feed"]["edges"]) == 20
    assert platform.calls["people_batch"] == 1
    assert platform.calls["get_person"] == 0


async def test_feed_is_cached_until_a_thanks_event_arrives(
    gql: Any, platform: InMemoryPlatform, gateway: Gateway
) -> None:
    seed(platform, thanks=3, milestones=0)
    _, first = await gql(FEED, {"first": 5}, as_="linus")
    _, again = await gql(FEED, {"first": 5}, as_="margaret")
    assert again["data"] == first["data"]
    assert platform.calls["recent_thanks"] == 1

    # A new thanks lands in recognition and its event reaches the gateway.
    new = ThanksDTO(
        id="t-new", giver="linus", helper="ada", message="new!", given_at=T0 + timedelta(days=1)
    )
    platform.thanks.insert(0, new)
    gateway.live.apply(
        make_event(
            HelpReceived(
                thanks_id="t-new",
                giver="linus",
                helper="ada",
                message="new!",
                given_at=new.given_at,
            ),
            source="thrive/recognition",
        )
    )
    _, body = await gql(FEED, {"first": 5}, as_="linus")
    assert body["data"]["feed"]["edges"][0]["node"]["id"] == "t-new"
    assert platform.calls["recent_thanks"] == 2


async def test_board_cache_is_dropped_only_by_its_own_board_event(
    gql: Any, platform: InMemoryPlatform, gateway: Gateway
) -> None:
    month = "{ leaderboard(window: MONTH) { standings { rank } } }"
    week = "{ leaderboard(window: WEEK) { standings { rank } } }"
    for q in (month, week, month, week):
        await gql(q, as_="linus")
    assert platform.calls["top"] == 2

    changed = LeaderboardChanged(
        board=Board(metric="service", window="week"),
        period="2026-W10",
        top=[Standing(person="grace", rank=1, score=3.0)],
    )
    gateway.live.apply(make_event(changed, source="thrive/leaderboard"))
    await gql(month, as_="linus")
    await gql(week, as_="linus")
    assert platform.calls["top"] == 3


async def test_service_outage_is_a_clear_retryable_error(
    gql: Any, platform: InMemoryPlatform, monkeypatch: Any
) -> None:
    from thrive_gateway.clients.errors import ServiceUnavailable

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ServiceUnavailable("recognition")

    monkeypatch.setattr(platform, "get_person", down)
    _, body = await gql("{ me { id } }", as_="linus")
    error = body["errors"][0]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert "try again" in error["message"]


async def test_my_profile_is_cached_until_an_event_changes_my_counts(
    gql: Any, platform: InMemoryPlatform, gateway: Gateway
) -> None:
    query = "{ me { counts { thanksReceived } } }"
    for _ in range(3):
        _, body = await gql(query, as_="linus")
        assert body["data"]["me"]["counts"]["thanksReceived"] == 0
    assert platform.calls["get_person"] == 1

    new = ThanksDTO(id="t-l", giver="ada", helper="linus", message="ty", given_at=T0)
    platform.thanks.insert(0, new)
    gateway.live.apply(
        make_event(
            HelpReceived(thanks_id="t-l", giver="ada", helper="linus", given_at=T0),
            source="thrive/recognition",
        )
    )
    _, body = await gql(query, as_="linus")
    assert body["data"]["me"]["counts"]["thanksReceived"] == 1
    assert platform.calls["get_person"] == 2
