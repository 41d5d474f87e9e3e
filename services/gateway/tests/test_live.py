"""LiveState routes each live event only to the subscriptions it concerns."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime

from thrive_gateway.live.consumer import apply_records
from thrive_gateway.live.events import LiveState, celebrations_for
from thrive_shared.contracts import CelebrationDelivered, make_event


def delivered(recipient: str, *, team: str = "platform", themes: tuple[str, ...] = ()) -> bytes:
    return make_event(
        CelebrationDelivered(
            delivery_id=f"d-{recipient}",
            recipients=[recipient],
            teams=[team],
            channel="in_app",
            about=f"ev-{recipient}",
            kind="thanks",
            title=f"for {recipient}",
            themes=list(themes),
            delivered_at=datetime.now(UTC),
        ),
        source="thrive/notifier",
    ).to_json()


class Record:
    def __init__(self, topic: str, value: bytes | None) -> None:
        self.topic, self.value = topic, value


async def test_a_thousand_sockets_each_get_their_own_celebration_and_nothing_else() -> None:
    live = LiveState()
    async with AsyncExitStack() as stack:
        queues = [
            await stack.enter_async_context(live.hub.subscribe(celebrations_for("person", f"p{i}")))
            for i in range(1000)
        ]
        topic = "thrive.celebration.delivered.v2"
        applied = apply_records(live, [Record(topic, delivered(f"p{i}")) for i in range(1000)])
        assert applied == 1000
        for i, queue in enumerate(queues):
            assert queue.qsize() == 1
            assert queue.get_nowait().recipient == f"p{i}"
        assert live.hub.dropped == 0


async def test_team_and_theme_channels_get_the_celebration_too() -> None:
    live = LiveState()
    async with (
        live.hub.subscribe(celebrations_for("team", "kernel")) as team,
        live.hub.subscribe(celebrations_for("theme", "python")) as theme,
        live.hub.subscribe(celebrations_for("team", "platform")) as other,
    ):
        apply_records(
            live,
            [
                Record(
                    "thrive.celebration.delivered.v2",
                    delivered("linus", team="kernel", themes=("python",)),
                )
            ],
        )
        assert team.qsize() == 1 and theme.qsize() == 1
        assert other.qsize() == 0


async def test_bad_records_are_skipped_and_the_rest_applied() -> None:
    live = LiveState()
    async with live.hub.subscribe(celebrations_for("person", "grace")) as queue:
        applied = apply_records(
            live,
            [
                Record("thrive.celebration.delivered.v2", b"{not json"),
                Record("thrive.celebration.delivered.v2", None),  # a tombstone
                Record("thrive.celebration.delivered.v2", delivered("grace")),
            ],
        )
        assert applied == 1
        notice = await asyncio.wait_for(queue.get(), 1)
        assert notice.title == "for grace"


def delivered_to(people: list[tuple[str, str | None]], *, about: str = "ms-1") -> bytes:
    return make_event(
        CelebrationDelivered(
            delivery_id=f"d-{about}",
            recipients=[p for p, _team in people],
            teams=[team for _p, team in people],
            channel="in_app",
            about=about,
            kind="milestone",
            title="Ana reached: Helped ten people",
            themes=["python"],
            delivered_at=datetime.now(UTC),
        ),
        source="thrive/notifier",
    ).to_json()


async def test_one_event_reaches_each_recipient_with_only_their_own_notice() -> None:
    live = LiveState()
    people = [(f"p{i}", f"team-{i % 3}") for i in range(999)] + [("solo", None)]
    async with AsyncExitStack() as stack:
        mine = {
            p: await stack.enter_async_context(live.hub.subscribe(celebrations_for("person", p)))
            for p in ("p0", "p1", "p998", "solo")
        }
        outsider = await stack.enter_async_context(
            live.hub.subscribe(celebrations_for("person", "not-a-recipient"))
        )
        teams = {
            t: await stack.enter_async_context(live.hub.subscribe(celebrations_for("team", t)))
            for t in ("team-0", "team-1", "team-2")
        }
        theme = await stack.enter_async_context(
            live.hub.subscribe(celebrations_for("theme", "python"))
        )
        applied = apply_records(
            live, [Record("thrive.celebration.delivered.v2", delivered_to(people))]
        )
        assert applied == 1
        for person, queue in mine.items():
            [notice] = [queue.get_nowait() for _ in range(queue.qsize())]
            assert notice.recipient == person and notice.about == "ms-1"
            assert notice.id == f"ms-1:{person}"
        assert outsider.qsize() == 0
        # Each team's wall and the theme's hear of the celebration once, not once per member.
        for team, queue in teams.items():
            [notice] = [queue.get_nowait() for _ in range(queue.qsize())]
            assert notice.team == team and notice.about == "ms-1"
        assert theme.qsize() == 1


async def test_a_v1_record_left_on_the_retired_topic_is_still_pushed() -> None:
    live = LiveState()
    v1 = {
        "specversion": "1.0",
        "id": "delivered:k1",
        "source": "thrive/notifier",
        "type": "thrive.celebration.delivered",
        "time": "2026-11-24T09:30:02Z",
        "subject": "grace",
        "schemaversion": 1,
        "data": {
            "delivery_id": "k1",
            "recipient": "grace",
            "team": "platform",
            "channel": "in_app",
            "about": "ev-1",
            "kind": "thanks",
            "title": "Ada thanked you",
            "themes": [],
            "delivered_at": "2026-11-24T09:30:02Z",
        },
    }
    import orjson

    async with live.hub.subscribe(celebrations_for("person", "grace")) as queue:
        assert apply_records(live, [Record("thrive.celebration.delivered.v1", orjson.dumps(v1))])
        notice = queue.get_nowait()
        assert (notice.recipient, notice.team, notice.title) == (
            "grace",
            "platform",
            "Ada thanked you",
        )
