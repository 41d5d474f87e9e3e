"""The outbox relay in its own process (THRIVE_RECOGNITION_OUTBOX_RELAY_PROCESS, the default):
killed, it is restarted by the service, and every event still reaches Kafka under one id."""

from __future__ import annotations

import os
import signal
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from thrive_shared.contracts import ExternalHelp, IngestKind, make_event, topics
from thrive_shared.outbox import wait_until_empty
from thrive_shared.testing import wait_for

from .stack_harness import Harness, TopicTail

pytestmark = pytest.mark.stack


def _relay_pids(h: Harness) -> list[int]:
    """This service's relay processes: children of this process relaying its database."""
    me = Path(f"/proc/{os.getpid()}/task")
    pids: list[int] = []
    for task in me.iterdir():
        for child in (task / "children").read_text().split():
            proc = Path(f"/proc/{child}")
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:  # gone meanwhile
                continue
            url = f"DATABASE_URL={h.rt.settings.database_url}".encode()
            if b"thrive_shared.relay_process" in cmdline and url in environ:
                pids.append(int(child))
    return pids


async def _produced(h: Harness, topic: str) -> float:
    """What the service's /metrics counts as produced to `topic` (the relay reports it)."""
    text = (await h.client.get("/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("thrive_events_produced_total{") and f'topic="{topic}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_killed_relay_process_is_restarted_and_every_event_is_published_under_one_id(
    start_recognition, stack
) -> None:
    h = await start_recognition()
    assert h.rt.relay is None  # nothing relays in the serving process
    people = await h.add_people(*(f"p{i}" for i in range(12)))
    first = (await wait_for(lambda: _relay_pids(h), timeout=30, message="no relay process"))[0]
    tail = await TopicTail(stack.kafka_bootstrap, topics.HELP_RECEIVED).start()
    try:
        n = 3000
        events = [
            make_event(
                ExternalHelp(
                    kind=IngestKind.HELP_RECEIVED,
                    helper=people[i % len(people)],
                    helped=people[(i + 1 + (i // len(people)) % (len(people) - 1)) % len(people)],
                    occurred_at=datetime.now(UTC),
                    message=f"relay:{i}",
                ),
                source="helpdesk",
            )
            for i in range(n)
        ]
        await h.send_events(h.ingest_topic, events[: n // 2])
        await wait_for(tail.poll, timeout=60, message="nothing relayed before the kill")
        os.kill(first, signal.SIGKILL)  # mid-stream: rows may be produced and not yet deleted
        again = await wait_for(
            lambda: [p for p in _relay_pids(h) if p != first],
            timeout=60,
            message="the relay process was not restarted",
        )
        assert again
        # What the killed one produced in its last second was never reported: count from here.
        counted = await _produced(h, tail.topic)
        await h.send_events(h.ingest_topic, events[n // 2 :])

        ids_by_message: dict[str, set[str]] = defaultdict(set)

        async def all_published() -> bool:
            for r in await tail.poll():
                e = orjson.loads(r.value)
                ids_by_message[e["data"]["message"]].add(e["id"])
            return len(ids_by_message) == n

        await wait_for(all_published, timeout=120, message="events lost after the kill")
        await wait_until_empty(h.rt.pool, deadline_s=30)
        # Once each: a row produced just before the kill may be produced again, under the
        # same event id (consumers deduplicate on it), never as a second event.
        assert all(len(ids) == 1 for ids in ids_by_message.values())
        published = {i for ids in ids_by_message.values() for i in ids}
        assert len(published) == n
        assert await h.fetchval("SELECT count(*) FROM thanks") == n
        # The restarted relay reports to the service's /metrics (at least the second half).
        await wait_for(
            lambda: _at_least(_produced(h, tail.topic), counted + n // 2),
            timeout=30,
            message="metrics not forwarded",
        )
    finally:
        await tail.stop()


async def _at_least(value, n: float) -> bool:  # type: ignore[no-untyped-def]
    return bool(await value >= n)


async def test_stopping_the_service_stops_its_relay_process(start_recognition) -> None:
    h = await start_recognition()
    [pid] = await wait_for(lambda: _relay_pids(h), timeout=30, message="no relay process")
    await h.rt.stop()
    assert not _relay_pids(h)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
