"""Who sees what: anonymous, the employee, another employee, an admin."""

from __future__ import annotations

from typing import Any

import pytest
from thrive_gateway.clients.memory import InMemoryPlatform

GIVE = """
mutation($helper: ID!, $visibility: Visibility!) {
  giveThanks(input: {helper: $helper, message: "you saved my release", visibility: $visibility}) {
    __typename
    ... on ThanksGiven { thanks { id } }
    ... on UserError { message }
  }
}"""


async def give(gql: Any, *, giver: str, helper: str, visibility: str = "PUBLIC") -> str:
    status, body = await gql(GIVE, {"helper": helper, "visibility": visibility}, as_=giver)
    assert status == 200, body
    assert body["data"]["giveThanks"]["__typename"] == "ThanksGiven", body
    return str(body["data"]["giveThanks"]["thanks"]["id"])


THANKS = "query($id: ID!) { thanks(id: $id) { message giver { id } } }"
RECEIVED = """query($id: ID!) { person(id: $id) {
  thanksReceived(first: 10) { edges { node { id message visibility } } } } }"""


@pytest.mark.parametrize(
    ("viewer", "admin", "sees"),
    [
        ("ada", False, True),
        ("grace", False, True),
        ("linus", False, False),
        ("margaret", True, True),
    ],
)
async def test_private_thanks_is_visible_to_giver_helper_and_admin_only(
    gql: Any, viewer: str, admin: bool, sees: bool
) -> None:
    thanks_id = await give(gql, giver="ada", helper="grace", visibility="PRIVATE")

    _, body = await gql(THANKS, {"id": thanks_id}, as_=viewer, admin=admin)
    if sees:
        assert body["data"]["thanks"]["message"] == "you saved my release"
    else:
        assert body["data"]["thanks"] is None
        assert "errors" not in body

    _, body = await gql(RECEIVED, {"id": "grace"}, as_=viewer, admin=admin)
    messages = [e["node"]["message"] for e in body["data"]["person"]["thanksReceived"]["edges"]]
    assert messages == (["you saved my release"] if sees else [])


async def test_anonymous_sees_nothing(gql: Any) -> None:
    thanks_id = await give(gql, giver="ada", helper="grace")
    for query, variables in [
        ("{ me { id } }", None),
        ("{ feed(first: 5) { edges { cursor } } }", None),
        (THANKS, {"id": thanks_id}),
        ("{ leaderboard { standings { rank } } }", None),
    ]:
        status, body = await gql(query, variables)
        assert status == 200
        assert body["data"] is None or all(v is None for v in body["data"].values())
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_anonymous_cannot_mutate(gql: Any, platform: InMemoryPlatform) -> None:
    _, body = await gql(GIVE, {"helper": "grace", "visibility": "PUBLIC"})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert platform.calls["give_thanks"] == 0


@pytest.mark.parametrize(
    ("viewer", "admin", "allowed"),
    [("ada", False, True), ("grace", False, False), ("margaret", True, False)],
)
async def test_mutes_and_follows_are_private_to_their_owner(
    gql: Any, viewer: str, admin: bool, allowed: bool
) -> None:
    _, body = await gql(
        'mutation { mute(kind: PERSON, target: "linus") { __typename } }', as_="ada"
    )
    assert body["data"]["mute"]["__typename"] == "FiltersChanged"

    _, body = await gql(
        '{ person(id: "ada") { name mutes { kind target } follows { target } } }',
        as_=viewer,
        admin=admin,
    )
    person = body["data"]["person"]
    if allowed:
        assert person["mutes"] == [{"kind": "person", "target": "linus"}]
        assert "errors" not in body
    else:
        # The person is visible; the private fields are not (field-level, not top-level).
        assert person is None or person.get("mutes") is None
        codes = {e["extensions"]["code"] for e in body["errors"]}
        assert codes == {"FORBIDDEN"}
        assert "linus" not in str(body)


async def test_thanks_are_given_as_the_token_subject(gql: Any, platform: InMemoryPlatform) -> None:
    await give(gql, giver="linus", helper="grace")
    assert platform.thanks[0].giver == "linus"


async def test_admin_only_field_refuses_employees(gql: Any) -> None:
    _, body = await gql("{ gatewayStatus { subscribers } }", as_="grace")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    _, body = await gql("{ gatewayStatus { subscribers } }", as_="ada", admin=True)
    assert body["data"]["gatewayStatus"]["subscribers"] == 0
