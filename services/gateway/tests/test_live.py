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
            recipient=recipient,
            team=team,
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
        topic = "thrive.celebration.delivered.v1"
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
                    "thrive.celebration.delivered.v1",
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
                Record("thrive.celebration.delivered.v1", b"{not json"),
                Record("thrive.celebration.delivered.v1", None),  # a tombstone
                Record("thrive.celebration.delivered.v1", delivered("grace")),
            ],
        )
        assert applied == 1
        notice = await asyncio.wait_for(queue.get(), 1)
        assert notice.title == "for grace"
