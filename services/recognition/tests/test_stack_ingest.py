"""Recognition's Kafka inputs on the real stack: dedupe, DLQ, streaks, erasure."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime

import orjson
import pytest
from thrive_shared.contracts import (
    ExternalHelp,
    IngestKind,
    PersonErased,
    make_event,
    topics,
)
from thrive_shared.contracts.dlq import DeadLetter
from thrive_shared.outbox import wait_until_empty
from thrive_shared.testing import wait_for

from .stack_harness import TopicTail

pytestmark = pytest.mark.stack


def help_received(helper: str, helped: str, *, at: datetime | None = None, **kw):  # type: ignore[no-untyped-def]
    return ExternalHelp(
        kind=IngestKind.HELP_RECEIVED,
        helper=helper,
        helped=helped,
        occurred_at=at or datetime.now(UTC),
        **{"message": "closed my ticket", **kw},
    )


async def test_duplicate_external_event_becomes_one_thanks(start_recognition, stack) -> None:
    h = await start_recognition()
    ada, bob = await h.add_people("ada", "bob")
    tail = await TopicTail(stack.kafka_bootstrap, topics.HELP_RECEIVED).start()
    try:
        event = make_event(help_received(bob, ada), source="helpdesk", id="TICKET-1")
        # Same (source, id) twice, then once from another system with the same id.
        other = make_event(help_received(bob, ada), source="codereview", id="TICKET-1")
        await h.send_events(h.ingest_topic, [event, event])
        await h.send_events(h.ingest_topic, [event, other])

        async def published() -> list[dict]:
            recs = await tail.poll()
            mine = [orjson.loads(r.value) for r in recs]
            return [e for e in mine if e["data"]["helper"] == bob]

        got = await wait_for(lambda: _at_least(published, 2), timeout=30)
        assert sorted(e["data"]["origin"] for e in got) == ["codereview", "helpdesk"]
        rows = await h.fetch("SELECT origin, external_id FROM thanks WHERE helper = $1", bob)
        assert sorted((r["origin"], r["external_id"]) for r in rows) == [
            ("codereview", "TICKET-1"),
            ("helpdesk", "TICKET-1"),
        ]
        assert await h.fetchval("SELECT thanks_received FROM progress WHERE person = $1", bob) == 2
    finally:
        await tail.stop()


async def test_outputs_go_to_this_tests_topic_copies_only(start_recognition) -> None:
    h = await start_recognition(relay=False)
    suffix = os.environ[topics.SUFFIX_ENV]
    ada, bob = await h.add_people("ada", "bob")
    await h.send_events(h.ingest_topic, [make_event(help_received(bob, ada), source="helpdesk")])

    async def queued() -> list[str] | None:
        rows = await h.fetch("SELECT DISTINCT topic FROM outbox")
        return sorted(r["topic"] for r in rows) if len(rows) >= 2 else None

    # The thanks and bob's first milestone wait in the outbox, addressed to the copies.
    assert await wait_for(queued, timeout=30) == [
        f"{topics.HELP_RECEIVED}-{suffix}",
        f"{topics.MILESTONE_REACHED}-{suffix}",
    ]
    assert h.ingest_topic == f"{topics.INGEST_HELP}-{suffix}"
    assert h.rt.dead_letters.topic == f"{topics.DLQ}-{suffix}"


async def _at_least(fetch, n: int):  # type: ignore[no-untyped-def]
    got = await fetch()
    return got if len(got) >= n else None


async def test_poison_and_unknown_people_go_to_dlq_and_valid_events_apply(
    start_recognition, stack
) -> None:
    h = await start_recognition()
    ada, bob = await h.add_people("ada", "bob")
    dlq = await TopicTail(stack.kafka_bootstrap, topics.DLQ).start()
    try:
        valid_first = make_event(help_received(bob, ada, message="first"), source="helpdesk")
        missing_helper = orjson.loads(make_event(help_received(bob, ada), source="x").to_json())
        del missing_helper["data"]["helper"]
        unknown = make_event(help_received(bob, h.pid("ghost")), source="helpdesk")
        self_help = make_event(help_received(bob, bob), source="helpdesk")
        no_helped = make_event(
            ExternalHelp(kind=IngestKind.HELP_RECEIVED, helper=bob, occurred_at=datetime.now(UTC)),
            source="helpdesk",
        )
        valid_last = make_event(help_received(bob, ada, message="last"), source="helpdesk")
        await h.send(
            h.ingest_topic,
            [
                (bob, valid_first.to_json()),
                (bob, b"\x00 definitely not json"),
                (bob, orjson.dumps(missing_helper)),
                (bob, unknown.to_json()),
                (bob, self_help.to_json()),
                (bob, no_helped.to_json()),
                (bob, valid_last.to_json()),
            ],
        )

        async def dead_letters() -> list[DeadLetter]:
            recs = await dlq.poll()
            mine = [DeadLetter.from_headers(r.headers) for r in recs]
            return [d for d in mine if d.topic == h.ingest_topic]

        letters = await wait_for(lambda: _at_least(dead_letters, 5), timeout=30)
        reasons = sorted(f"{d.error_class}: {d.error_message}" for d in letters)
        assert len(reasons) == 5, reasons
        joined = "\n".join(reasons)
        assert "InvalidEvent: <root>: not JSON" in joined
        assert "data.helper: Field required" in joined
        assert f"unknown_person (data.helped): There is no person '{h.pid('ghost')}'" in joined
        assert "self_thanks" in joined
        assert "help_received needs `helped`" in joined

        async def applied() -> list[str]:
            rows = await h.fetch("SELECT message FROM thanks WHERE helper = $1", bob)
            return sorted(r["message"] for r in rows)

        assert await wait_for(applied, timeout=30) == ["first", "last"]
    finally:
        await dlq.stop()


async def test_streak_spans_a_week_boundary_in_the_helpers_timezone(start_recognition) -> None:
    h = await start_recognition()
    [tokyo] = await h.add_people("tokyo", timezone="Asia/Tokyo")
    [london] = await h.add_people("london", timezone="UTC")
    ada, bob = await h.add_people("ada", "bob")
    # Monday 2026-03-09 10:00 in Tokyo; then Sunday 2026-03-15 20:00 UTC, which is
    # already Monday 2026-03-16 05:00 in Tokyo (a new week there) but still Sunday in UTC.
    monday = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
    sunday_night = datetime(2026, 3, 15, 20, 0, tzinfo=UTC)
    events = [
        make_event(help_received(helper, giver, at=at), source="helpdesk")
        for helper in (tokyo, london)
        for giver, at in ((ada, monday), (bob, sunday_night))
    ]
    await h.send_events(h.ingest_topic, events)

    async def all_applied() -> bool:
        n = await h.fetchval("SELECT count(*) FROM thanks WHERE helper = ANY($1)", [tokyo, london])
        return bool(n == 4)

    await wait_for(all_applied, timeout=30)
    weeks = await h.fetch("SELECT person, week FROM help_weeks ORDER BY person, week")
    assert [(r["person"], r["week"]) for r in weeks if r["person"] == tokyo] == [
        (tokyo, date(2026, 3, 9)),
        (tokyo, date(2026, 3, 16)),
    ]
    streaks = await h.fetch("SELECT person, level FROM milestones WHERE rule_id = 'helping-streak'")
    assert [(r["person"], r["level"]) for r in streaks] == [(tokyo, 1)]


async def test_erasure_leaves_no_personal_data_but_keeps_others_counts(
    start_recognition,
) -> None:
    h = await start_recognition()
    zed, ada, bob = await h.add_people("zed", "ada", "bob")
    zed_name, zed_email = f"Name of {zed}", f"{zed}@example.com"
    post = h.client.post
    for giver, helper, message in [(ada, zed, f"thanks {zed}!"), (zed, bob, "from zed")]:
        r = await post(
            "/internal/v1/thanks", json={"giver": giver, "helper": helper, "message": message}
        )
        assert r.status_code == 201, r.text
    new_ask = {"asker": zed, "title": f"{zed_name} needs help", "size": "chat", "themes": ["x"]}
    ask = (await post("/internal/v1/asks", json=new_ask)).json()
    offer = await post("/internal/v1/offers", json={"helper": bob, "ask_id": ask["id"]})
    assert offer.status_code == 201
    await h.send_events(h.ingest_topic, [make_event(help_received(zed, ada), source="helpdesk")])
    await wait_for(
        lambda: h.fetchval("SELECT count(*) = 2 FROM thanks WHERE helper = $1", zed), timeout=30
    )
    assert await h.fetchval("SELECT count(*) FROM milestones WHERE person = $1", zed) > 0

    erased = make_event(PersonErased(person=zed), source="hr/test", id=str(uuid.uuid4()))
    await h.send_events(h.directory_topic, [erased])
    await wait_for(
        lambda: h.fetchval("SELECT NOT EXISTS (SELECT 1 FROM people WHERE id = $1)", zed),
        timeout=30,
    )
    await wait_until_empty(h.rt.pool, deadline_s=30)

    tables = await h.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'recognition'"
    )
    assert len(tables) >= 10
    for t in tables:
        name = t["table_name"]
        for needle in (zed, zed_name, zed_email):
            hits = await h.fetchval(
                f'SELECT count(*) FROM recognition."{name}" AS r WHERE r::text ILIKE $1',
                f"%{needle}%",
            )
            assert hits == 0, f"{needle!r} still in {name}"

    # What others did still counts; the erased person is just no longer named.
    ada_p = (await h.client.get(f"/internal/v1/people/{ada}")).json()["counts"]
    bob_p = (await h.client.get(f"/internal/v1/people/{bob}")).json()["counts"]
    assert ada_p["thanks_given"] == 2  # in Thrive to zed, and zed's helpdesk help
    assert (bob_p["thanks_received"], bob_p["people_helped"]) == (1, 1)
    received = (await h.client.get(f"/internal/v1/people/{bob}/thanks")).json()["items"]
    assert [(t["giver"], t["helper"]) for t in received] == [(None, bob)]
    assert (await h.client.get(f"/internal/v1/people/{zed}")).status_code == 404
