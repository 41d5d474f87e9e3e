"""Subscriptions over graphql-transport-ws, authenticated in connection_init."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from thrive_gateway.app import Gateway, create_app
from thrive_shared.contracts import CelebrationDelivered, HelpReceived, make_event
from thrive_shared.testing import wait_for
from websockets.exceptions import ConnectionClosed

from .wsclient import GraphQLWs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def ws_url(gateway: Gateway) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(gateway), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout=10)
    yield f"ws://127.0.0.1:{port}/graphql"
    server.should_exit = True
    await task


CELEBRATIONS = """subscription { celebrations { kind title recipient { id name } } }"""


def celebration(recipient: str, title: str, *, team: str = "platform") -> Any:
    return make_event(
        CelebrationDelivered(
            delivery_id=f"d-{recipient}-{title}",
            recipients=[recipient],
            teams=[team],
            channel="in_app",
            about=f"ev-{title}",
            kind="thanks",
            title=title,
            delivered_at=datetime.now(UTC),
        ),
        source="thrive/notifier",
    )


async def test_connection_without_or_with_a_bad_token_is_refused(ws_url: str, token: Any) -> None:
    for credential in (None, "not-a-jwt", token("grace", ttl_seconds=-120)):
        client = GraphQLWs(ws_url)
        with pytest.raises(ConnectionClosed) as info:
            await client.connect(credential)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 4403


async def test_my_celebrations_arrive_and_others_do_not(
    ws_url: str, token: Any, gateway: Gateway
) -> None:
    client = GraphQLWs(ws_url)
    ack = await client.connect(token("grace"))
    assert ack["type"] == "connection_ack"
    await client.subscribe(CELEBRATIONS)
    await wait_for(lambda: gateway.live.hub.subscriber_count() == 1, timeout=10)

    gateway.live.apply(celebration("linus", "not for grace"))
    gateway.live.apply(celebration("grace", "Ada thanked you"))
    message = await client.next()
    assert message["payload"]["data"]["celebrations"] == {
        "kind": "thanks",
        "title": "Ada thanked you",
        "recipient": {"id": "grace", "name": "Grace Hopper"},
    }
    await client.close()
    await wait_for(lambda: gateway.live.hub.subscriber_count() == 0, timeout=10)


async def test_feed_subscription_gets_public_thanks_only(
    ws_url: str, token: Any, gateway: Gateway
) -> None:
    client = GraphQLWs(ws_url)
    await client.connect(token("linus"))
    await client.subscribe(
        "subscription { feed { __typename ... on Thanks { id message helper { name } } } }"
    )
    await wait_for(lambda: gateway.live.hub.subscriber_count() == 1, timeout=10)
    for thanks_id, visibility in (("secret", "private"), ("open", "public")):
        gateway.live.apply(
            make_event(
                HelpReceived(
                    thanks_id=thanks_id,
                    giver="ada",
                    helper="grace",
                    message=f"{visibility} thanks",
                    visibility=visibility,
                    given_at=datetime.now(UTC),
                ),
                source="thrive/recognition",
            )
        )
    message = await client.next()
    assert message["payload"]["data"]["feed"] == {
        "__typename": "Thanks",
        "id": "open",
        "message": "public thanks",
        "helper": {"name": "Grace Hopper"},
    }
    await client.close()


async def test_team_celebrations_are_shown_once_per_event(
    ws_url: str, token: Any, gateway: Gateway
) -> None:
    client = GraphQLWs(ws_url)
    await client.connect(token("linus"))
    await client.subscribe(
        'subscription { celebrations(audience: TEAM, team: "platform") { about title } }'
    )
    await wait_for(lambda: gateway.live.hub.subscriber_count() == 1, timeout=10)
    # One milestone, delivered to two members of the team: the wall shows it once.
    for member in ("ada", "grace"):
        gateway.live.apply(celebration(member, "Ten people helped"))
    gateway.live.apply(celebration("grace", "Another one"))
    first = await client.next()
    second = await client.next()
    assert first["payload"]["data"]["celebrations"]["title"] == "Ten people helped"
    assert second["payload"]["data"]["celebrations"]["title"] == "Another one"
    await client.close()


async def test_a_channel_event_is_executed_once_for_every_subscriber(
    ws_url: str, token: Any, gateway: Gateway
) -> None:
    from thrive_gateway.schema.executor import SharedEventExecutor

    document = 'subscription { celebrations(audience: TEAM, team: "platform") { about title } }'
    clients = [GraphQLWs(ws_url) for _ in range(3)]
    for client, person in zip(clients, ("linus", "margaret", "ada"), strict=True):
        await client.connect(token(person))
        await client.subscribe(document)
    await wait_for(lambda: gateway.live.hub.subscriber_count() == 3, timeout=10)
    executions, reuses = SharedEventExecutor.executions, SharedEventExecutor.reuses
    gateway.live.apply(celebration("grace", "Helped three teams"))
    for client in clients:
        message = await client.next()
        assert message["payload"]["data"]["celebrations"]["title"] == "Helped three teams"
        await client.close()
    assert SharedEventExecutor.executions - executions == 1
    assert SharedEventExecutor.reuses - reuses == 2


async def test_fields_only_the_recipient_may_see_are_never_shared_between_sockets(
    ws_url: str, token: Any, gateway: Gateway
) -> None:
    document = """subscription { celebrations(audience: TEAM, team: "platform") {
        title recipient { id mutes { target } } } }"""
    grace, ada = GraphQLWs(ws_url), GraphQLWs(ws_url)
    for client, person in ((grace, "grace"), (ada, "ada")):
        await client.connect(token(person))
        await client.subscribe(document)
    await wait_for(lambda: gateway.live.hub.subscriber_count() == 2, timeout=10)
    gateway.live.apply(celebration("grace", "First thanks"))
    mine = (await grace.next())["payload"]
    theirs = (await ada.next())["payload"]
    assert mine["data"]["celebrations"]["recipient"]["mutes"] == []
    assert "errors" not in mine
    assert theirs["data"]["celebrations"]["recipient"] is None or (
        theirs["data"]["celebrations"]["recipient"].get("mutes") is None
    )
    assert theirs["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    for client in (grace, ada):
        await client.close()


async def test_a_plain_projection_reads_exactly_what_full_execution_would(
    ws_url: str, token: Any, gateway: Gateway
) -> None:
    fields = "__typename id kind title about themes team when: deliveredAt"
    projected = GraphQLWs(ws_url)
    executed = GraphQLWs(ws_url)  # `recipient` makes graphql-core execute this one
    await projected.connect(token("grace"))
    await projected.subscribe(f"subscription {{ celebrations {{ {fields} }} }}")
    await executed.connect(token("grace"))
    await executed.subscribe(f"subscription {{ celebrations {{ {fields} recipient {{ id }} }} }}")
    await wait_for(lambda: gateway.live.hub.subscriber_count() == 2, timeout=10)
    event = celebration("grace", "Ada thanked you")
    gateway.live.apply(event)
    fast = (await projected.next())["payload"]["data"]["celebrations"]
    full = (await executed.next())["payload"]["data"]["celebrations"]
    assert full.pop("recipient") == {"id": "grace"}
    assert fast == full
    assert fast["when"] == event.data.delivered_at.isoformat()
    assert fast["__typename"] == "Celebration"
    for client in (projected, executed):
        await client.close()


def test_only_plain_attribute_documents_are_projected() -> None:
    from graphql import OperationDefinitionNode, parse
    from thrive_gateway.schema import build_schema
    from thrive_gateway.schema.executor import projection_of

    schema = build_schema()._schema

    def projected(document: str) -> bool:
        operation = parse(document).definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        return projection_of(schema, operation) is not None

    assert projected("subscription { celebrations { id title deliveredAt } }")
    assert not projected("subscription { celebrations { id recipient { id } } }")
    assert not projected("subscription { celebrations { id @include(if: true) } }")
    assert not projected("subscription { celebrations { ... on Celebration { id } } }")
    assert not projected("subscription { feed { __typename } }")
    assert not projected("subscription { leaderboardChanged { standings { rank } } }")
