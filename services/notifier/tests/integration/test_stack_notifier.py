"""The notifier on the real Kafka and Postgres, with a local webhook sink and SMTP server."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaConsumer
from thrive_notifier.domain.model import Channel, DeliveryKey, Recipient, RecipientKind
from thrive_shared.contracts import (
    CelebrationSize,
    HelpReceived,
    MilestoneReached,
    make_event,
    topics,
)
from thrive_shared.kafka import OutgoingRecord, Publisher
from thrive_shared.testing import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def thanks(giver: str, helper: str, *, n: int = 0, themes: tuple[str, ...] = ("python",)) -> Any:
    return make_event(
        HelpReceived(
            thanks_id=f"t-{helper}-{n}",
            giver=giver,
            helper=helper,
            message=f"thanks #{n}",
            themes=list(themes),
            given_at=datetime.now(UTC),
        ),
        source="thrive/recognition",
    )


def milestone(person: str, team: str) -> Any:
    return make_event(
        MilestoneReached(
            milestone_id=f"m-{person}",
            person=person,
            team=team,
            rule_id="people_helped",
            level=10,
            size=CelebrationSize.LARGE,
            title="Helped ten people",
            themes=["python"],
            reached_at=datetime.now(UTC),
        ),
        source="thrive/recognition",
    )


def key(event_id: str, recipient: str, channel: Channel, *, team: bool = False) -> str:
    kind = RecipientKind.TEAM if team else RecipientKind.PERSON
    return DeliveryKey(event_id, Recipient(kind, recipient), channel).idempotency_key


async def put(n: Any, person: str, path: str, body: dict[str, Any], *, admin: bool = False) -> Any:
    roles = "employee,admin" if admin else "employee"
    return await n.client.put(path, json=body, headers=n.as_(person, roles))


async def ledger(n: Any, event_id: str) -> list[Any]:
    return await n.fetch(
        "SELECT recipient, channel, state, attempts, last_error FROM delivery "
        "WHERE event_id = $1 ORDER BY recipient, channel",
        event_id,
    )


async def metric(n: Any, name: str, **labels: str) -> float:
    """A sample's value from the service's /metrics page (0 when absent)."""
    r = await n.client.get("/metrics")
    assert r.status_code == 200
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in r.text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.startswith(name + "{") and all(p in head for p in want.split(",")):
            return float(value)
    return 0.0


async def read_topic(bootstrap: str, topic: str, *, want: Any, timeout: float = 30) -> list[Any]:
    """Values on `topic` (from the start) until `want(values)` holds."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[Any] = []
    try:

        async def enough() -> bool:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                values.extend(json.loads(r.value) for r in recs)
            return bool(want(values))

        await wait_for(enough, timeout=timeout, message=f"records on {topic}")
    finally:
        await consumer.stop()
    return values


async def test_a_follower_gets_a_milestone_live_and_a_muter_never_does(
    start_notifier, sink, smtp, stack
):
    n = await start_notifier(email_enabled=True, smtp_port=smtp.port)
    ana, cy, mo = await n.add_people("ana", "cy", "mo")
    team = "blue"
    for p in (cy, mo):
        r = await n.client.post(
            f"/internal/v1/people/{p}/follows",
            json={"kind": "person", "target": ana},
            headers=n.as_(p),
        )
        assert r.status_code == 201
        r = await put(
            n, p, f"/internal/v1/people/{p}/preferences", {"channels": ["in_app", "email"]}
        )
        assert r.status_code == 200
    r = await n.client.post(
        f"/internal/v1/people/{mo}/mutes",
        json={"kind": "theme", "target": "python"},
        headers=n.as_(mo),
    )
    assert r.status_code == 201
    r = await put(
        n,
        cy,
        f"/internal/v1/teams/{team}/channel",
        {"webhook_url": sink.url("team-blue")},
        admin=True,
    )
    assert r.status_code == 200

    event = milestone(ana, team)
    await n.publish([event])

    async def cy_told() -> bool:
        return any(i["about"] == event.id for i in await n.inbox(cy))

    await wait_for(cy_told, timeout=30, message="cy's in-app notification")
    [item] = [i for i in await n.inbox(cy) if i["about"] == event.id]
    assert item["title"] == "Ana reached: Helped ten people"
    await wait_for(lambda: smtp.to(f"{cy}@example.test"), timeout=30, message="cy's email")
    mail = smtp.to(f"{cy}@example.test")[0]
    assert mail["Subject"] == "Ana reached: Helped ten people"
    assert mail.get_body(("html",)) is not None and mail.get_body(("plain",)) is not None
    team_key = key(event.id, team, Channel.WEBHOOK, team=True)
    await wait_for(lambda: team_key in sink.effects, timeout=30, message="team channel post")
    assert "Helped ten people" in json.loads(sink.effects[team_key])["text"]
    # The gateway hears of the in-app deliveries, to push them to widgets.
    delivered = await read_topic(
        stack.kafka_bootstrap,
        n.topics(topics.CELEBRATION_DELIVERED_V2),
        want=lambda vs: {r for v in vs for r in v["data"]["recipients"]} >= {ana, cy},
    )
    assert all(v["data"]["about"] == event.id for v in delivered)

    # The muter: nothing reserved, nothing deferred, nothing sent, nothing announced —
    # decided in the same transaction that told cy.
    assert await n.fetchval("SELECT count(*) FROM delivery WHERE recipient = $1", mo) == 0
    assert await n.fetchval("SELECT count(*) FROM digest_item WHERE person = $1", mo) == 0
    assert await n.inbox(mo) == []
    assert smtp.to(f"{mo}@example.test") == []
    assert mo not in {r for v in delivered for r in v["data"]["recipients"]}


async def test_over_budget_goes_to_the_digest_and_nothing_is_lost(
    start_notifier, smtp, notifier_cli
):
    n = await start_notifier(email_enabled=True, smtp_port=smtp.port)
    ana, bo = await n.add_people("ana", "bo")
    r = await put(
        n,
        ana,
        f"/internal/v1/people/{ana}/preferences",
        {"daily_budget": 2, "channels": ["in_app", "email"]},
    )
    assert r.status_code == 200
    events = [thanks(bo, ana, n=i, themes=("python",) if i % 2 else ("sql",)) for i in range(5)]
    await n.publish(events)

    async def all_accounted() -> bool:
        live = await n.fetchval(
            "SELECT count(*) FROM delivery WHERE recipient = $1 AND channel = 'in_app'", ana
        )
        waiting = await n.fetchval("SELECT count(*) FROM digest_item WHERE person = $1", ana)
        return bool(live == 2 and waiting == 3)

    await wait_for(all_accounted, timeout=30, message="2 live + 3 waiting for the digest")
    done = notifier_cli(n, "send-digests", "--force")
    assert done.returncode == 0, done.stderr
    assert "sent 1 digest(s)" in done.stdout

    digest = [i for i in await n.inbox(ana) if i["kind"] == "digest"]
    assert len(digest) == 1 and digest[0]["title"] == "Your Thrive digest: 3 updates"
    headings = [h for h, _items in digest[0]["sections"]]
    assert headings == ["Thanks · #python", "Thanks · #sql"]
    lines = [line for _h, items in digest[0]["sections"] for line in items]
    assert lines == ["Bo thanked you"] * 3
    live = [i for i in await n.inbox(ana) if i["kind"] == "thanks"]
    assert len(live) == 2  # 2 live + 3 in the digest = all 5 thanks
    await wait_for(
        lambda: [m for m in smtp.to(f"{ana}@example.test") if "digest" in m["Subject"]],
        timeout=30,
        message="digest email",
    )
    # Delivered once: running the digest again sends nothing.
    again = notifier_cli(n, "send-digests", "--force")
    assert "sent 0 digest(s)" in again.stdout


def quiet_window_around_now(tz: str) -> dict[str, str]:
    local = datetime.now(UTC).astimezone(ZoneInfo(tz))
    start = (local - timedelta(hours=1)).strftime("%H:%M")
    end = (local + timedelta(hours=1)).strftime("%H:%M")
    return {"start": start, "end": end}


async def test_quiet_hours_are_respected_in_each_persons_timezone(start_notifier):
    n = await start_notifier()
    [tokyo] = await n.add_people("tokyo", timezone="Asia/Tokyo")
    [nyc] = await n.add_people("nyc", timezone="America/New_York")
    [bo] = await n.add_people("bo")
    # The same local window for both: it is now inside it in Tokyo, and 13–14 hours away
    # from it in New York.
    window = quiet_window_around_now("Asia/Tokyo")
    for p in (tokyo, nyc):
        r = await put(n, p, f"/internal/v1/people/{p}/preferences", {"quiet_hours": window})
        assert r.status_code == 200
    events = [thanks(bo, tokyo, n=1), thanks(bo, nyc, n=2)]
    await n.publish(events)

    async def settled() -> bool:
        return bool(await n.inbox(nyc)) and bool(
            await n.fetchval("SELECT count(*) FROM digest_item WHERE person = $1", tokyo)
        )

    await wait_for(settled, timeout=30, message="nyc live, tokyo deferred")
    assert await n.inbox(tokyo) == []
    reason = await n.fetchval("SELECT reason FROM digest_item WHERE person = $1", tokyo)
    assert reason == "quiet_hours"
    assert [i["about"] for i in await n.inbox(nyc)] == [events[1].id]


async def test_webhook_failing_three_times_then_succeeding_delivers_once_with_one_key(
    start_notifier, sink
):
    sink.fail_first = 3
    n = await start_notifier(max_attempts=6)
    retries_before = await metric(n, "thrive_delivery_retries_total", channel="webhook")
    ana, bo = await n.add_people("ana", "bo")
    r = await put(
        n,
        ana,
        f"/internal/v1/people/{ana}/preferences",
        {"channels": ["in_app", "webhook"], "webhook_url": sink.url("ana")},
    )
    assert r.status_code == 200, r.text
    event = thanks(bo, ana)
    await n.publish([event])
    k = key(event.id, ana, Channel.WEBHOOK)
    await wait_for(lambda: k in sink.effects, timeout=30, message="webhook finally delivered")
    hits = sink.keys_hit(k)
    assert [h.status for h in hits] == [503, 503, 503, 200]
    assert all(h.signed for h in hits) and len({h.body for h in hits}) == 1
    assert len(sink.effects) == 1

    async def recorded() -> Any:
        rows = await ledger(n, event.id)
        return [r for r in rows if r["channel"] == "webhook" and r["state"] == "delivered"]

    [row] = await wait_for(recorded, timeout=10, message="ledger says delivered")
    assert row["attempts"] == 4
    outcomes = await n.fetch(
        "SELECT outcome FROM delivery_attempt a JOIN delivery d ON d.id = a.delivery_id "
        "WHERE d.event_id = $1 AND d.channel = 'webhook' ORDER BY a.id",
        event.id,
    )
    assert [o["outcome"] for o in outcomes] == ["retry", "retry", "retry", "delivered"]
    # Operators see it: three retries on the webhook channel in /metrics.
    retries = await metric(n, "thrive_delivery_retries_total", channel="webhook")
    assert retries - retries_before == 3


async def test_endpoint_down_for_good_is_parked_listed_and_delivered_after_retry(
    start_notifier, sink, notifier_cli
):
    sink.down = True
    n = await start_notifier(max_attempts=3)
    ana, bo = await n.add_people("ana", "bo")
    await put(
        n,
        ana,
        f"/internal/v1/people/{ana}/preferences",
        {"channels": ["webhook"], "webhook_url": sink.url("ana")},
    )
    event = thanks(bo, ana)
    await n.publish([event])
    k = key(event.id, ana, Channel.WEBHOOK)

    async def parked() -> Any:
        return await n.fetchval(
            "SELECT id FROM delivery WHERE event_id = $1 AND channel = 'webhook' "
            "AND state = 'parked'",
            event.id,
        )

    delivery_id = await wait_for(parked, timeout=30, message="delivery parked")
    assert [h.status for h in sink.keys_hit(k)] == [503, 503, 503]

    listed = notifier_cli(n, "parked", "list")
    assert listed.returncode == 0, listed.stderr
    [line] = [ln for ln in listed.stdout.splitlines() if ln.startswith(f"{delivery_id}\t")]
    assert f"\twebhook\tperson:{ana}\t" in line and "HTTP 503" in line

    sink.down = False
    retried = notifier_cli(n, "parked", "retry", str(delivery_id))
    assert retried.returncode == 0 and "requeued 1" in retried.stdout
    await wait_for(lambda: k in sink.effects, timeout=30, message="delivered after retry")
    assert len({h.key for h in sink.keys_hit(k)}) == 1
    assert "no parked deliveries" in notifier_cli(n, "parked", "list").stdout


async def test_ssrf_internal_addresses_refused_when_not_allow_listed(start_notifier, sink):
    n = await start_notifier(webhook_allow_networks=[])
    [ana, bo] = await n.add_people("ana", "bo")
    r = await put(
        n,
        ana,
        f"/internal/v1/people/{ana}/preferences",
        {"channels": ["webhook"], "webhook_url": sink.url("ana")},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "refused_destination"
    # A URL stored while it was allowed (or a name that resolves to loopback) is refused at
    # send time: the check is on the resolved address, every time, before connecting.
    await n.fetch(
        "INSERT INTO preferences (person, daily_budget, channels, digest_frequency, digest_hour,"
        " webhook_url) VALUES ($1, 10, '{in_app,webhook}', 'daily', 8, $2)",
        ana,
        sink.url("ana"),
    )
    bad = [
        "http://localhost:{p}/x",
        "http://[::1]:{p}/x",
        "http://169.254.169.254/x",
        "http://10.0.0.1/x",
        "http://0.0.0.0:{p}/x",
    ]
    teams = [f"t{i}-{n.run_id}" for i in range(len(bad))]
    for team, url in zip(teams, bad, strict=True):
        await n.fetch(
            "INSERT INTO team_channel (team, webhook_url) VALUES ($1, $2)",
            team,
            url.format(p=sink.port),
        )
    await n.publish([thanks(bo, ana)] + [milestone(ana, team) for team in teams])
    expected = 1 + 2 * len(teams)  # ana's own hook for each event, plus each team channel

    async def all_parked() -> Any:
        rows = await n.fetch("SELECT state, last_error FROM delivery WHERE channel = 'webhook'")
        done = len(rows) == expected and all(r["state"] == "parked" for r in rows)
        return rows if done else None

    rows = await wait_for(all_parked, timeout=30, message="every internal target parked")
    assert all(r["last_error"].startswith("refused destination") for r in rows)
    assert sink.hits == []


async def test_ssrf_redirect_to_metadata_is_refused(start_notifier, sink):
    sink.redirect_to = "http://169.254.169.254/latest/meta-data/iam"
    n = await start_notifier()  # loopback allowed, so the first hop reaches the sink
    ana, bo = await n.add_people("ana", "bo")
    await put(
        n,
        ana,
        f"/internal/v1/people/{ana}/preferences",
        {"channels": ["webhook"], "webhook_url": sink.url("ana")},
    )
    event = thanks(bo, ana)
    await n.publish([event])

    async def parked() -> Any:
        rows = await ledger(n, event.id)
        return [r for r in rows if r["channel"] == "webhook" and r["state"] == "parked"]

    [row] = await wait_for(parked, timeout=30, message="redirect refused")
    assert "169.254.169.254" in row["last_error"] and row["attempts"] == 1
    assert len(sink.hits) == 1 and sink.effects == {}


async def test_sigkill_mid_batch_then_restart_no_duplicate_and_no_missing_delivery(
    stack, notifier_pool, notifier_topics, sink, spawn_notifier, make_settings
):
    settings = make_settings(
        delivery_lease_seconds=2,
        delivery_concurrency=4,
        delivery_batch_size=10,
        max_attempts=20,
    )
    run = notifier_topics.suffix
    people = [f"p{i}-{run}" for i in range(20)]
    async with notifier_pool.acquire() as conn:
        for p in people:
            await conn.execute(
                "INSERT INTO person (person, name, email, team) VALUES ($1, $1, $2, 'blue')",
                p,
                f"{p}@example.test",
            )
            await conn.execute(
                "INSERT INTO preferences (person, daily_budget, channels, digest_frequency,"
                " digest_hour, webhook_url) VALUES ($1, 1000, '{in_app,webhook}', 'daily', 8, $2)",
                p,
                sink.url(p),
            )
            # Everyone follows the team: each large milestone reaches all 20 (via the lane).
            await conn.execute(
                "INSERT INTO follow (person, kind, target) VALUES ($1, 'team', 'blue')", p
            )
    events = [thanks(f"giver-{run}", people[i % len(people)], n=i) for i in range(400)]
    milestones = [milestone(p, "blue") for p in people[:10]]
    publisher = Publisher(stack.kafka_bootstrap, client_id=f"test-{run}")
    await publisher.start()
    try:
        await publisher.send_all(
            [
                OutgoingRecord(
                    topic=notifier_topics(topics.HELP_RECEIVED), key=e.subject, value=e.to_json()
                )
                for e in events
            ]
            + [
                OutgoingRecord(
                    topic=notifier_topics(topics.MILESTONE_REACHED),
                    key=e.subject,
                    value=e.to_json(),
                )
                for e in milestones
            ]
        )
    finally:
        await publisher.stop()
    sink.delay = 0.05  # slow enough that the kill lands mid-stream

    first = spawn_notifier(settings, run)
    await wait_for(lambda: len(sink.effects) >= 60, timeout=90, message="first deliveries")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert len(sink.effects) < len(events), "the kill came too late to prove anything"

    spawn_notifier(settings, run)
    expected = {key(e.id, e.data.helper, Channel.WEBHOOK) for e in events} | {
        key(m.id, p, Channel.WEBHOOK) for m in milestones for p in people
    }
    await wait_for(
        lambda: set(sink.effects) == expected,
        timeout=180,
        message="every webhook delivered after the restart",
    )

    async def ledger_done() -> bool:
        async with notifier_pool.acquire() as conn:
            states = await conn.fetch(
                "SELECT channel, state, count(*) AS n FROM delivery GROUP BY 1, 2"
            )
        return {(r["channel"], r["state"]): r["n"] for r in states} == {
            ("in_app", "delivered"): 400 + 10 * 20,
            ("webhook", "delivered"): 400 + 10 * 20,
        }

    await wait_for(ledger_done, timeout=60, message="ledger fully delivered")
    async with notifier_pool.acquire() as conn:
        inbox = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT (person, about)) AS distinct_n FROM inbox_item"
        )
    assert inbox["n"] == inbox["distinct_n"] == 400 + 10 * 20
    # Every resend after the crash carried the same key and the same body, so the
    # receiver's deduplication makes it one effect: no duplicate, no loss.
    for k in expected:
        assert len({h.body for h in sink.keys_hit(k)}) == 1
    assert set(sink.attempts) == expected
