"""The internal JSON API: own-settings only, private mutes, clear errors, cursor pages."""

from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from thrive_notifier.adapters.egress import EgressPolicy
from thrive_notifier.adapters.memory import MemoryStore, MemoryUnitOfWork
from thrive_notifier.domain.messages import Message
from thrive_notifier.domain.model import (
    Channel,
    DeliveryKey,
    DeliveryState,
    Kind,
    Recipient,
    RecipientKind,
)
from thrive_notifier.entrypoints.http import NotifierApi
from thrive_notifier.service_layer.ports import NewDelivery

BASE = "/internal/v1/people"


@pytest.fixture
def uow():
    return MemoryUnitOfWork(MemoryStore())


@pytest.fixture
async def client(uow):
    app = Starlette(routes=NotifierApi(uow, policy=EgressPolicy()).routes())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notifier"
    ) as c:
        yield c


def as_(person, roles="employee"):
    return {"X-Thrive-Actor": person, "X-Thrive-Roles": roles}


async def test_preferences_round_trip_with_defaults_first(client):
    r = await client.get(f"{BASE}/ana/preferences", headers=as_("ana"))
    assert r.status_code == 200 and r.json()["daily_budget"] == 10
    prefs = {
        "daily_budget": 3,
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "timezone": "Europe/Paris",
        "channels": ["in_app", "email"],
        "digest_frequency": "weekly",
        "digest_hour": 9,
    }
    r = await client.put(f"{BASE}/ana/preferences", json=prefs, headers=as_("ana"))
    assert r.status_code == 200
    got = (await client.get(f"{BASE}/ana/preferences", headers=as_("ana"))).json()
    assert got["quiet_hours"] == {"start": "22:00:00", "end": "07:00:00"}
    assert got["timezone"] == "Europe/Paris" and got["digest_frequency"] == "weekly"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"timezone": "Mars/Base"}, "timezone", "validation"),
        ({"daily_budget": -1}, "daily_budget", "validation"),
        ({"channels": ["webhook"]}, "webhook_url", "validation"),
        ({"webhook_url": "https://10.0.0.1/hook"}, "webhook_url", "refused_destination"),
        ({"surprise": 1}, "surprise", "validation"),
    ],
)
async def test_bad_preferences_get_a_structured_error(client, body, field, code):
    r = await client.put(f"{BASE}/ana/preferences", json=body, headers=as_("ana"))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == code and err["field"] == field and err["message"]


async def test_broken_json_is_a_400_not_a_500(client):
    r = await client.put(f"{BASE}/ana/preferences", content=b"{nope", headers=as_("ana"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


async def test_mutes_are_visible_only_to_the_muter_not_even_to_admins(client):
    r = await client.post(
        f"{BASE}/ana/mutes", json={"kind": "person", "target": "bo"}, headers=as_("ana")
    )
    assert r.status_code == 201
    for who, roles in (("bo", "employee"), ("cy", "employee,admin")):
        r = await client.get(f"{BASE}/ana/mutes", headers=as_(who, roles))
        assert r.status_code == 403
        assert "bo" not in r.text
    r = await client.get(f"{BASE}/ana/mutes")
    assert r.status_code == 401
    r = await client.get(f"{BASE}/ana/mutes", headers=as_("ana"))
    assert r.json() == {"items": [{"kind": "person", "target": "bo"}], "next_cursor": None}


async def test_follows_are_paginated_and_removable(client):
    for t in ("#Python", "rust", "go"):
        r = await client.post(
            f"{BASE}/ana/follows", json={"kind": "theme", "target": t}, headers=as_("ana")
        )
        assert r.status_code == 201
    again = await client.post(
        f"{BASE}/ana/follows", json={"kind": "theme", "target": "python"}, headers=as_("ana")
    )
    assert again.status_code == 200
    seen, after = [], None
    while True:
        params = {"first": 2} | ({"after": after} if after else {})
        page = (await client.get(f"{BASE}/ana/follows", params=params, headers=as_("ana"))).json()
        seen += [i["target"] for i in page["items"]]
        after = page["next_cursor"]
        if not after:
            break
    assert seen == ["go", "python", "rust"]
    r = await client.delete(
        f"{BASE}/ana/follows", params={"kind": "theme", "target": "go"}, headers=as_("ana")
    )
    assert r.status_code == 204
    r = await client.delete(
        f"{BASE}/ana/follows", params={"kind": "theme", "target": "go"}, headers=as_("ana")
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_self_follow_and_unknown_mute_kinds_are_refused(client):
    r = await client.post(
        f"{BASE}/ana/follows", json={"kind": "person", "target": "ana"}, headers=as_("ana")
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "target"
    r = await client.post(
        f"{BASE}/ana/mutes", json={"kind": "kind", "target": "everything"}, headers=as_("ana")
    )
    assert r.status_code == 422


async def test_inbox_lists_newest_first_filters_unread_and_marks_read(client, uow):
    async with uow() as repo:
        for n in range(3):
            await repo.reserve(
                [
                    NewDelivery(
                        key=DeliveryKey(
                            f"e{n}", Recipient(RecipientKind.PERSON, "ana"), Channel.IN_APP
                        ),
                        message=Message(kind=Kind.THANKS, title=f"thanks {n}"),
                        state=DeliveryState.DELIVERED,
                    )
                ],
                now=datetime.now(UTC),
            )
    page = (await client.get(f"{BASE}/ana/inbox", params={"first": 2}, headers=as_("ana"))).json()
    assert [i["title"] for i in page["items"]] == ["thanks 2", "thanks 1"]
    rest = (
        await client.get(
            f"{BASE}/ana/inbox", params={"after": page["next_cursor"]}, headers=as_("ana")
        )
    ).json()
    assert [i["title"] for i in rest["items"]] == ["thanks 0"]
    r = await client.post(
        f"{BASE}/ana/inbox/read", json={"ids": [page["items"][0]["id"]]}, headers=as_("ana")
    )
    assert r.json() == {"updated": 1}
    unread = (
        await client.get(f"{BASE}/ana/inbox", params={"unread": "true"}, headers=as_("ana"))
    ).json()
    assert [i["title"] for i in unread["items"]] == ["thanks 1", "thanks 0"]
    r = await client.get(f"{BASE}/ana/inbox", params={"after": "garbage"}, headers=as_("ana"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "after"
    r = await client.get(f"{BASE}/ana/inbox", headers=as_("bo"))
    assert r.status_code == 403


async def test_team_channels_need_an_admin_and_a_safe_url(client):
    url = "/internal/v1/teams/blue/channel"
    r = await client.put(
        url, json={"webhook_url": "https://hooks.example.test/b"}, headers=as_("ana")
    )
    assert r.status_code == 403
    r = await client.put(
        url, json={"webhook_url": "https://127.0.0.1/b"}, headers=as_("ana", "admin")
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "refused_destination"
    r = await client.put(
        url, json={"webhook_url": "https://hooks.example.test/b"}, headers=as_("ana", "admin")
    )
    assert r.status_code == 200
