"""One contract, two backends: the in-memory fake and Postgres must behave the same."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from thrive_notifier.adapters.memory import MemoryStore, MemoryUnitOfWork
from thrive_notifier.adapters.postgres import PostgresUnitOfWork
from thrive_notifier.domain.attention import DeferReason
from thrive_notifier.domain.audience import AudienceQuery
from thrive_notifier.domain.messages import Message
from thrive_notifier.domain.model import (
    Celebration,
    DeliveryKey,
    DeliveryState,
    Follow,
    FollowKind,
    Kind,
    Mute,
    MuteKind,
    Preferences,
    Recipient,
    RecipientKind,
    TraceContext,
)
from thrive_notifier.domain.retry import Outcome, SendResult
from thrive_notifier.service_layer.ports import (
    Announcement,
    AttemptRecord,
    Deferral,
    NewDelivery,
    PersonRecord,
)
from thrive_shared.contracts import CelebrationDelivered, Channel, make_event
from thrive_shared.contracts.topics import physical

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.stack)])
def uow(request):
    if request.param == "memory":
        return MemoryUnitOfWork(MemoryStore(clock_now=NOW))
    pool = request.getfixturevalue("notifier_pool")
    return PostgresUnitOfWork(pool)


def delivery(event, person, channel=Channel.IN_APP, *, team=False, title="hi"):
    kind = RecipientKind.TEAM if team else RecipientKind.PERSON
    return NewDelivery(
        key=DeliveryKey(event, Recipient(kind, person), channel),
        message=Message(
            kind=Kind.MILESTONE, title=title, themes=("python",), about=event, subject="ana"
        ),
        state=DeliveryState.DELIVERED if channel is Channel.IN_APP else DeliveryState.PENDING,
    )


async def test_reserve_is_idempotent_and_fills_the_inbox_once(uow):
    async with uow() as repo:
        first = await repo.reserve(
            [delivery("e1", "cy"), delivery("e1", "cy", Channel.EMAIL)], now=NOW
        )
        again = await repo.reserve([delivery("e1", "cy"), delivery("e2", "cy")], now=NOW)
        page = await repo.inbox("cy", unread=None, first=10, after=None)
    assert len(first) == 2 and [d.key.event_id for d, _ in again] == ["e2"]
    assert [i.about for i in page.items] == ["e2", "e1"]
    assert page.items[0].themes == ("python",) and page.items[0].subject == "ana"


async def test_inbox_pages_and_read_marks(uow):
    async with uow() as repo:
        await repo.reserve([delivery(f"e{n}", "cy") for n in range(5)], now=NOW)
        p1 = await repo.inbox("cy", unread=None, first=2, after=None)
        p2 = await repo.inbox("cy", unread=None, first=2, after=p1.next_cursor)
        p3 = await repo.inbox("cy", unread=None, first=2, after=p2.next_cursor)
        assert await repo.mark_read("cy", [p1.items[0].id, p3.items[0].id], NOW) == 2
        assert await repo.mark_read("other", [p1.items[1].id], NOW) == 0
        unread = await repo.inbox("cy", unread=True, first=10, after=None)
    assert [i.about for i in p1.items + p2.items + p3.items] == ["e4", "e3", "e2", "e1", "e0"]
    assert p3.next_cursor is None
    assert [i.about for i in unread.items] == ["e3", "e2", "e1"]


async def test_budget_is_counted_per_local_day_and_read_back_with_profiles(uow):
    day = NOW.date()
    async with uow() as repo:
        for n in range(2):
            await repo.commit_fanout(
                spend=[("ana", day, f"e{n}"), ("bo", day + timedelta(days=1), f"e{n}")],
                deliveries=[delivery(f"e{n}", "ana")],
                deferrals=[],
                now=NOW,
            )
        # The same event again counts nothing twice.
        await repo.commit_fanout(spend=[("ana", day, "e1")], deliveries=[], deferrals=[], now=NOW)
        data = await repo.audience_data(["ana", "bo", "cy"], now=NOW)
        far = await repo.audience_data(["ana"], now=NOW + timedelta(days=5))
    assert data.used == {("ana", day): 2, ("bo", day + timedelta(days=1)): 2}
    assert set(data.profiles) == {"ana", "bo", "cy"} and far.used == {}


async def test_budget_use_adds_up_across_open_transactions_and_goes_with_erasure(uow):
    day = NOW.date()
    # Two transactions open at once (the consumer and a fan-out lane) spend for the same
    # people (different events), neither waiting on the other; both count once committed.
    async with uow() as first, uow() as second:
        for n, repo in enumerate((first, second, first)):
            await repo.commit_fanout(
                spend=[("ana", day, f"e{n}"), ("bo", day, f"e{n}"), ("bo", day, f"f{n}")],
                deliveries=[],
                deferrals=[],
                now=NOW,
            )
    async with uow() as repo:
        data = await repo.audience_data(["ana", "bo"], now=NOW)
        await repo.erase_person("ana")
        await repo.prune_budget(day - timedelta(days=1))
        erased = await repo.audience_data(["ana", "bo"], now=NOW)
        await repo.prune_budget(day + timedelta(days=1))
        pruned = await repo.audience_data(["ana", "bo"], now=NOW)
    assert data.used == {("ana", day): 3, ("bo", day): 6}
    assert erased.used == {("bo", day): 6} and pruned.used == {}


async def test_commit_fanout_writes_deliveries_and_deferrals_once(uow):
    msg = Message(kind=Kind.THANKS, title="Bo thanked you", themes=("python",), subject="cy")
    async with uow() as repo:
        for _ in range(2):
            created = await repo.commit_fanout(
                spend=[],
                deliveries=[delivery("e1", "ana")],
                deferrals=[Deferral("cy", "e1", DeferReason.QUIET_HOURS, msg)],
                now=NOW,
            )
        entries = await repo.take_digest_entries("cy")
        page = await repo.inbox("ana", unread=None, first=10, after=None)
    assert created == [] and len(entries) == 1 and len(page.items) == 1


@pytest.mark.parametrize("team", ["blue", "odd\x1fteam"])  # the second cannot go as text
async def test_commit_fanout_returns_only_what_is_new_with_traces_kept(uow, team):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    hook = replace(delivery("e1", team, Channel.WEBHOOK, team=True), trace=TraceContext(parent))
    quiet = replace(delivery("e1", "bo"), quiet=True)
    batch = [delivery("e1", "ana"), quiet, hook]
    async with uow() as repo:
        first = await repo.commit_fanout(
            spend=[("ana", NOW.date(), "e1")], deliveries=batch, deferrals=[], now=NOW
        )
        again = await repo.commit_fanout(
            spend=[], deliveries=[*batch, delivery("e2", "ana")], deferrals=[], now=NOW
        )
        [claimed] = await repo.claim(
            channels=[Channel.WEBHOOK], limit=10, lease_seconds=60, now=NOW
        )
        page = await repo.inbox("bo", unread=None, first=10, after=None)
        used = (await repo.audience_data(["ana"], now=NOW)).used
    assert first == batch and [d.key.event_id for d in again] == ["e2"]
    assert claimed.key.recipient.id == team and claimed.trace == TraceContext(parent)
    assert [(i.about, i.quiet) for i in page.items] == [("e1", True)]
    assert used == {("ana", NOW.date()): 1}


async def test_follows_mutes_and_audience_facts(uow):
    async with uow() as repo:
        await repo.add_follow("cy", Follow(FollowKind.PERSON, "ana"))
        await repo.add_follow("di", Follow(FollowKind.TEAM, "blue"))
        await repo.add_follow("ed", Follow(FollowKind.THEME, "python"))
        await repo.add_follow("ed", Follow(FollowKind.THEME, "go"))
        assert not await repo.add_follow("ed", Follow(FollowKind.THEME, "go"))
        await repo.record_offer("ed", ["python"], NOW)
        await repo.add_mute("cy", Mute(MuteKind.THEME, "python"))
        await repo.add_mute("cy", Mute(MuteKind.PERSON, "zed"))
        facts = await repo.audience_facts(
            AudienceQuery(
                person_followers="ana",
                team_followers="blue",
                theme_followers=("python",),
                theme_offerers=("python",),
            )
        )
        data = await repo.audience_data(["cy", "di"], now=NOW)
        mutes = data.mutes
        follows = await repo.list_follows("ed", first=1, after=None)
        rest = await repo.list_follows("ed", first=5, after=follows.next_cursor)
        assert await repo.remove_follow("ed", Follow(FollowKind.THEME, "go"))
        assert not await repo.remove_follow("ed", Follow(FollowKind.THEME, "go"))
    assert facts.person_followers == {"cy"} and facts.team_followers == {"di"}
    assert facts.theme_followers == {"ed"} and facts.theme_offerers == {"ed"}
    assert mutes["cy"] == [Mute(MuteKind.PERSON, "zed"), Mute(MuteKind.THEME, "python")]
    assert "di" not in mutes
    assert [f.target for f in follows.items + rest.items] == ["go", "python"]


async def test_claim_lease_record_park_and_unpark(uow):
    async with uow() as repo:
        await repo.set_team_channel("blue", "https://hooks.example.test/blue")
        await repo.reserve([delivery("e1", "blue", Channel.WEBHOOK, team=True)], now=NOW)
        [c] = await repo.claim(channels=[Channel.WEBHOOK], limit=10, lease_seconds=30, now=NOW)
        assert (
            await repo.claim(
                channels=[Channel.WEBHOOK],
                limit=10,
                lease_seconds=30,
                now=NOW + timedelta(seconds=1),
            )
            == []
        )
    assert c.destination == "https://hooks.example.test/blue" and c.attempts == 1
    async with uow() as repo:
        fail = SendResult(Outcome.RETRY, status=503, error="HTTP 503")
        await repo.record(
            [AttemptRecord(c, fail, DeliveryState.FAILED, NOW + timedelta(seconds=10))], NOW
        )
        assert (
            await repo.claim(
                channels=[Channel.WEBHOOK],
                limit=10,
                lease_seconds=30,
                now=NOW + timedelta(seconds=5),
            )
            == []
        )
        [c2] = await repo.claim(
            channels=[Channel.WEBHOOK], limit=10, lease_seconds=30, now=NOW + timedelta(seconds=11)
        )
        assert c2.attempts == 2 and c2.idempotency_key == c.idempotency_key
        # A stale worker's late record (attempt 1) must not overwrite attempt 2.
        await repo.record(
            [AttemptRecord(c, SendResult(Outcome.DELIVERED), DeliveryState.DELIVERED, None)], NOW
        )
        await repo.record([AttemptRecord(c2, fail, DeliveryState.PARKED, None)], NOW)
        [parked] = await repo.parked(limit=10)
        assert parked.attempts == 2 and parked.last_error == "HTTP 503"
        assert await repo.parked_count() == {"webhook": 1}
        assert await repo.unpark(None, NOW + timedelta(seconds=20)) == 1
        [c3] = await repo.claim(
            channels=[Channel.WEBHOOK], limit=10, lease_seconds=30, now=NOW + timedelta(seconds=20)
        )
    assert c3.attempts == 1


async def test_deferrals_wait_for_one_digest(uow):
    msg = Message(kind=Kind.THANKS, title="Bo thanked you", themes=("python",), subject="ana")
    async with uow() as repo:
        await repo.defer(
            [
                Deferral("ana", "e1", DeferReason.BUDGET, msg),
                Deferral("ana", "e1", DeferReason.BUDGET, msg),
                Deferral("ana", "e2", DeferReason.QUIET_HOURS, msg),
            ],
            now=NOW,
        )
        assert await repo.digest_candidates(limit=10) == ["ana"]
        entries = await repo.take_digest_entries("ana")
        did = await repo.create_digest(
            "ana", local_day=date(2026, 11, 25), item_ids=[e.item_id for e in entries]
        )
        assert did
        assert await repo.digest_candidates(limit=10) == []
        assert await repo.last_digest_day("ana") == date(2026, 11, 25)
    assert len(entries) == 2 and entries[0].themes == ("python",)


async def test_profiles_mirror_preferences_and_erasure(uow):
    async with uow() as repo:
        await repo.upsert_person(
            PersonRecord("ana", "Ana", "ana@example.test", "blue", "Europe/Paris")
        )
        await repo.put_preferences(
            "ana", Preferences(daily_budget=3, channels=frozenset({Channel.IN_APP, Channel.EMAIL}))
        )
        profs = await repo.profiles(["ana", "ghost"])
        await repo.reserve(
            [delivery("e1", "ana"), delivery("e1", "cy", title="Ana reached")], now=NOW
        )
        await repo.erase_person("ana")
        after = await repo.profiles(["ana"])
        await repo.upsert_person(PersonRecord("ana", "Ana", "ana@example.test", "blue", "UTC"))
        again = await repo.profiles(["ana"])
        cy = await repo.inbox("cy", unread=None, first=10, after=None)
        ana = await repo.inbox("ana", unread=None, first=10, after=None)
        prefs = await repo.get_preferences("ana")
    assert profs["ana"].preferences.daily_budget == 3 and profs["ana"].team == "blue"
    assert profs["ana"].email == "ana@example.test" and profs["ghost"].email is None
    assert after == {} and again == {} and prefs is None and ana.items == []
    assert cy.items[0].subject is None and "Ana" not in cy.items[0].title


async def test_reminders_come_due_once_and_not_after_thanks(uow):
    async with uow() as repo:
        await repo.ask_requested(ask_id="a1", asker="ana", title="pandas?")
        await repo.ask_resolved(ask_id="a1", asker="ana", helper="cy", at=NOW)
        await repo.ask_resolved(ask_id="a2", asker="ana", helper="cy", at=NOW)
        await repo.ask_thanked("a2", NOW)
        await repo.ask_thanked("a3", NOW)  # thanks seen before the resolution
        await repo.ask_resolved(ask_id="a3", asker="ana", helper="cy", at=NOW)
        due = await repo.due_reminders(resolved_before=NOW + timedelta(days=3), limit=10)
        await repo.mark_reminded("a1", NOW)
        later = await repo.due_reminders(resolved_before=NOW + timedelta(days=3), limit=10)
    assert [(d.ask_id, d.title, d.helper) for d in due] == [("a1", "pandas?", "cy")]
    assert later == []


async def test_publish_goes_through_the_outbox(uow, request):
    fact = CelebrationDelivered(
        delivery_id="d1",
        recipients=["cy"],
        teams=[None],
        channel=Channel.IN_APP,
        about="e1",
        kind="thanks",
        delivered_at=NOW,
    )
    async with uow() as repo:
        await repo.publish([make_event(fact, source="thrive/notifier")])
    if isinstance(uow, PostgresUnitOfWork):
        async with uow() as repo:
            assert await repo.conn.fetchval("SELECT count(*) FROM outbox") == 1
    else:
        assert len(uow.store.published) == 1


@pytest.mark.stack
async def test_announcements_reach_the_outbox_with_their_trace_context(notifier_pool):
    uow = PostgresUnitOfWork(notifier_pool)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    items = [
        Announcement(event_id="c1", key="cy", payload=b'{"n": 1}', trace=TraceContext(parent)),
        Announcement(event_id="c2", key="ana", payload=b'{"n": 2}'),
    ]
    async with uow() as repo:
        await repo.announce(items)
    async with uow() as repo:
        rows = await repo.conn.fetch(
            "SELECT topic, key, event_id, event_type, payload, headers FROM outbox ORDER BY id"
        )
    assert [(r["key"], r["event_id"], bytes(r["payload"])) for r in rows] == [
        ("cy", "c1", b'{"n": 1}'),
        ("ana", "c2", b'{"n": 2}'),
    ]
    assert {r["event_type"] for r in rows} == {CelebrationDelivered.TYPE}
    assert {r["topic"] for r in rows} == {physical(CelebrationDelivered.TOPIC)}
    assert [r["headers"] for r in rows] == [{"traceparent": parent}, {}]


async def test_queued_celebrations_come_out_once_in_order(uow):
    cs = [
        Celebration(
            event_id=f"e{n}",
            kind=Kind.MILESTONE,
            subject="ana",
            title="T",
            team="blue",
            themes=("python",),
            large=True,
            occurred_at=NOW,
            message="m",
        )
        for n in range(3)
    ]
    async with uow() as repo:
        await repo.enqueue_celebrations(cs)
        first = await repo.take_celebrations(limit=2)
        rest = await repo.take_celebrations(limit=10)
        none = await repo.take_celebrations(limit=10)
    assert first + rest == cs and none == []


async def test_the_events_trace_context_stays_with_queued_and_pending_work(uow):
    traced = TraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "v=1")
    c = Celebration(
        event_id="e1", kind=Kind.THANKS, subject="ana", title="T", occurred_at=NOW, trace=traced
    )
    hook = delivery("e1", "blue", Channel.WEBHOOK, team=True)
    async with uow() as repo:
        await repo.set_team_channel("blue", "https://hooks.example.test/blue")
        await repo.enqueue_celebrations([c, replace(c, event_id="e2", trace=None)])
        taken = await repo.take_celebrations(limit=10)
        await repo.reserve(
            [replace(hook, trace=traced), delivery("e2", "blue", Channel.WEBHOOK, team=True)],
            now=NOW,
        )
        claimed = await repo.claim(channels=[Channel.WEBHOOK], limit=10, lease_seconds=30, now=NOW)
    assert [t.trace for t in taken] == [traced, None]
    assert {d.key.event_id: d.trace for d in claimed} == {"e1": traced, "e2": None}
