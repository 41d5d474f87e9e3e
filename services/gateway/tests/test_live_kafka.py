"""On the real broker: a celebration published on Kafka reaches a GraphQL subscriber."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from thrive_gateway.app import Gateway, build_gateway, create_app
from thrive_gateway.clients.memory import InMemoryPlatform
from thrive_gateway.live.consumer import LIVE_TOPICS
from thrive_shared.contracts import (
    CelebrationDelivered,
    HelpReceived,
    make_event,
    topics,
)
from thrive_shared.devstack import Endpoints
from thrive_shared.kafka import OutgoingRecord, Publisher
from thrive_shared.testing import wait_for

from .conftest import PEOPLE, make_settings
from .test_subscriptions import free_port
from .wsclient import GraphQLWs

pytestmark = pytest.mark.stack


@pytest.fixture
async def live_gateway(
    stack: Endpoints, topic_factory: Any, platform: InMemoryPlatform
) -> AsyncIterator[tuple[Gateway, str, dict[str, str]]]:
    names = {t: await topic_factory(t, partitions=3) for t in LIVE_TOPICS}
    settings = make_settings(live_consumers=True, kafka_bootstrap_servers=stack.kafka_bootstrap)
    gateway = build_gateway(settings, services=platform.services())
    gateway.live_topics = list(names.values())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(gateway), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout=60, message="gateway did not start")

    # The group-less consumer starts at the latest offset once assigned: wait until it
    # demonstrably sees new records before a test publishes the one it cares about.
    async def consumer_live() -> bool:
        await publish(stack, names[topics.CELEBRATION_DELIVERED_V2], delivered("linus", "warm-up"))
        return gateway.live.applied > 0

    try:
        await wait_for(consumer_live, timeout=60, interval=0.5, message="live consumer is not live")
        yield gateway, f"127.0.0.1:{port}", names
    finally:
        server.should_exit = True
        await task


async def publish(stack: Endpoints, topic: str, event: Any) -> None:
    publisher = Publisher(stack.kafka_bootstrap, client_id="gateway-test")
    await publisher.start()
    try:
        await publisher.send_all(
            [OutgoingRecord(topic=topic, key=event.subject, value=event.to_json())]
        )
    finally:
        await publisher.stop()


def delivered(recipient: str, title: str) -> Any:
    return make_event(
        CelebrationDelivered(
            delivery_id=str(uuid.uuid4()),
            recipients=[recipient],
            teams=["platform"],
            channel="in_app",
            about=str(uuid.uuid4()),
            kind="thanks",
            title=title,
            delivered_at=datetime.now(UTC),
        ),
        source="thrive/notifier",
    )


async def test_celebration_on_kafka_reaches_the_subscriber(
    live_gateway: tuple[Gateway, str, dict[str, str]], stack: Endpoints
) -> None:
    gateway, host, names = live_gateway
    async with httpx.AsyncClient() as http:
        ready = await http.get(f"http://{host}/ready")
        assert ready.status_code == 200, ready.text

    assert gateway.dev_issuer is not None
    client = GraphQLWs(f"ws://{host}/graphql")
    await client.connect(gateway.dev_issuer.mint("grace"))
    await client.subscribe("subscription { celebrations { title recipient { name } } }")
    await wait_for(lambda: gateway.live.hub.subscriber_count() == 1, timeout=10)

    await publish(
        stack, names[topics.CELEBRATION_DELIVERED_V2], delivered("grace", "Ada thanked you")
    )
    message = await client.next(timeout=15)
    assert message["payload"]["data"]["celebrations"] == {
        "title": "Ada thanked you",
        "recipient": {"name": dict((p, n) for p, n, _ in PEOPLE)["grace"]},
    }
    await client.close()


async def test_thanks_event_refreshes_the_cached_feed(
    live_gateway: tuple[Gateway, str, dict[str, str]], stack: Endpoints, platform: InMemoryPlatform
) -> None:
    gateway, host, names = live_gateway
    assert gateway.dev_issuer is not None
    headers = {"Authorization": f"Bearer {gateway.dev_issuer.mint('linus')}"}
    query = {"query": "{ feed(first: 5) { edges { node { ... on Thanks { id } } } } }"}
    async with httpx.AsyncClient(base_url=f"http://{host}", headers=headers) as http:
        first = (await http.post("/graphql", json=query)).json()
        assert first["data"]["feed"]["edges"] == []
        # Recognition stored a thanks (here: the fake) and published its event.
        thanks = await platform.give_thanks(
            _actor("ada"),
            helper="grace",
            message="kafka!",
            themes=[],
            ask_id=None,
            offer_id=None,
            visibility="public",
        )
        event = make_event(
            HelpReceived(
                thanks_id=thanks.id,
                giver="ada",
                helper="grace",
                message="kafka!",
                given_at=thanks.given_at,
            ),
            source="thrive/recognition",
        )
        await publish(stack, names[topics.HELP_RECEIVED], event)

        async def shows_it() -> bool:
            body = (await http.post("/graphql", json=query)).json()
            return [e["node"]["id"] for e in body["data"]["feed"]["edges"]] == [thanks.id]

        # The cache is dropped by the event, not by its 30 s TTL.
        await wait_for(shows_it, timeout=10, interval=0.05, message="feed never showed the thanks")


def _actor(person: str) -> Any:
    from thrive_gateway.auth.principal import Principal, Role

    return Principal(person_id=person, roles=frozenset({Role.EMPLOYEE}))
