"""Fan-out through the service layer on the in-memory repository."""

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from thrive_notifier.adapters.memory import MemoryStore, MemoryUnitOfWork
from thrive_notifier.domain.messages import Message
from thrive_notifier.domain.model import (
    Celebration,
    Channel,
    DeliveryKey,
    DeliveryState,
    DigestFrequency,
    Follow,
    FollowKind,
    Kind,
    Mute,
    MuteKind,
    Preferences,
    Recipient,
    RecipientKind,
)
from thrive_notifier.service_layer.fanout import SOURCE, FanOutResult, announcements
from thrive_notifier.service_layer.handlers import consume
from thrive_notifier.service_layer.ports import NewDelivery
from thrive_notifier.service_layer.schedule import fan_out_pending, send_digests, send_reminders
from thrive_shared.contracts import (
    AskStatus,
    AskStatusChanged,
    CelebrationDelivered,
    CelebrationSize,
    HelpOffered,
    HelpReceived,
    HelpRequested,
    MilestoneReached,
    PersonErased,
    PersonUpserted,
    make_event,
    parse_for_topic,
    topics,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def uow():
    store = MemoryStore(clock_now=NOW)
    return MemoryUnitOfWork(store)


async def apply(uow, data, *, now=NOW, id=None):
    """Consume one event (as the service's consumer does, in one transaction)."""
    env = make_event(data, source="thrive/recognition", id=id)
    async with uow() as repo:
        result = await consume(repo, [(env, None)], now=now)
    return result, env


async def person(uow, p, *, team="blue", tz="UTC", name=None):
    await apply(
        uow,
        PersonUpserted(
            person=p, name=name or p.title(), email=f"{p}@example.test", team=team, timezone=tz
        ),
    )


def milestone(p="ana", *, themes=("python",), size=CelebrationSize.LARGE, n=1):
    return MilestoneReached(
        milestone_id=f"m{n}",
        person=p,
        team="blue",
        rule_id="helped_10",
        level=1,
        size=size,
        title="Ten people helped",
        themes=list(themes),
        reached_at=NOW,
    )


def inbox_of(uow, p):
    s = uow.store
    return [i for i in s.inbox.values() if s.inbox_owner[i.id] == p]


async def test_a_follower_gets_a_large_milestone_live_and_the_gateway_is_told(uow):
    for p in ("ana", "cy"):
        await person(uow, p)
    async with uow() as repo:
        await repo.add_follow("cy", Follow(FollowKind.PERSON, "ana"))
    result, env = await apply(uow, milestone())
    [item] = inbox_of(uow, "cy")
    assert item.title == "Ana reached: Ten people helped" and not item.quiet
    assert inbox_of(uow, "ana")[0].title == "You reached a milestone: Ten people helped"
    pushed = {
        (r, e.data.kind, e.data.about) for e in uow.store.published for r in e.data.recipients
    }
    assert pushed == {("cy", "milestone", env.id), ("ana", "milestone", env.id)}
    assert result.delivered["in_app"] == 2
    # What goes to the outbox is a valid contract event on its topic.
    for e in uow.store.published:
        parsed = parse_for_topic(topics.CELEBRATION_DELIVERED_V2, e.to_json())
        assert parsed == e and parsed.data.channel == "in_app"


async def test_a_muter_never_hears_even_when_following(uow):
    for p in ("ana", "cy"):
        await person(uow, p)
    async with uow() as repo:
        await repo.add_follow("cy", Follow(FollowKind.THEME, "python"))
        await repo.add_mute("cy", Mute(MuteKind.PERSON, "ana"))
    await apply(uow, milestone())
    assert inbox_of(uow, "cy") == []
    assert all("cy" not in e.data.recipients for e in uow.store.published)
    assert not any(i.person == "cy" for i in uow.store.digest_items.values())


async def test_the_same_event_twice_delivers_once(uow):
    await person(uow, "ana")
    data = HelpReceived(thanks_id="t1", giver="bo", helper="ana", given_at=NOW)
    await apply(uow, data, id="same")
    await apply(uow, data, id="same")
    assert len(inbox_of(uow, "ana")) == 1


async def test_over_budget_goes_to_the_digest_and_the_digest_holds_everything(uow):
    await person(uow, "ana")
    async with uow() as repo:
        await repo.put_preferences("ana", Preferences(daily_budget=2))
    for n in range(5):
        await apply(
            uow,
            HelpReceived(
                thanks_id=f"t{n}",
                giver=f"g{n}",
                helper="ana",
                themes=["python" if n % 2 else "sql"],
                given_at=NOW,
            ),
        )
    assert len(inbox_of(uow, "ana")) == 2
    waiting = [i for i in uow.store.digest_items.values() if i.person == "ana"]
    assert len(waiting) == 3 and {i.reason for i in waiting} == {"budget"}

    report = await send_digests(uow, clock=lambda: NOW)
    assert report.sent == 1 and report.sizes == [3]
    digest = [i for i in inbox_of(uow, "ana") if i.kind == "digest"]
    assert len(digest) == 1
    lines = [line for _head, items in digest[0].payload["sections"] for line in items]
    assert sorted(lines) == sorted(w.title for w in waiting)
    # Delivered once: a second run finds nothing left to send.
    assert (await send_digests(uow, clock=lambda: NOW + timedelta(days=2))).sent == 0


async def test_quiet_hours_defer_to_the_digest_by_local_time(uow):
    await person(uow, "paris", tz="Europe/Paris")
    await person(uow, "nyc", tz="America/New_York")
    night = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    async with uow() as repo:
        for p in ("paris", "nyc"):
            await repo.put_preferences(p, Preferences(quiet_start=time(22), quiet_end=time(7)))
    for p in ("paris", "nyc"):
        await apply(
            uow, HelpReceived(thanks_id=f"t-{p}", giver="bo", helper=p, given_at=night), now=night
        )
    assert inbox_of(uow, "paris") == [] and len(inbox_of(uow, "nyc")) == 1
    [deferred] = [i for i in uow.store.digest_items.values()]
    assert deferred.person == "paris" and deferred.reason == "quiet_hours"
    # Still night in Paris: the digest waits until the morning.
    assert (await send_digests(uow, clock=lambda: night)).sent == 0
    morning = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 09:00 in Paris
    assert (await send_digests(uow, clock=lambda: morning)).sent == 1


async def test_digest_off_puts_deferred_items_quietly_in_the_inbox(uow):
    await person(uow, "ana")
    async with uow() as repo:
        await repo.put_preferences(
            "ana", Preferences(daily_budget=0, digest_frequency=DigestFrequency.OFF)
        )
    await apply(uow, HelpReceived(thanks_id="t1", giver="bo", helper="ana", given_at=NOW))
    [item] = inbox_of(uow, "ana")
    assert item.quiet
    assert uow.store.published == []


async def test_email_and_webhook_are_reserved_for_the_worker(uow):
    await person(uow, "ana")
    async with uow() as repo:
        await repo.put_preferences(
            "ana",
            Preferences(
                channels=frozenset({Channel.IN_APP, Channel.EMAIL, Channel.WEBHOOK}),
                webhook_url="https://hooks.example.test/ana",
            ),
        )
        await repo.set_team_channel("blue", "https://hooks.example.test/blue")
    result, _ = await apply(uow, milestone())
    assert dict(result.reserved) == {"email": 1, "webhook": 2}  # ana's hook + team channel
    pending = [d for d in uow.store.deliveries.values() if d.state is DeliveryState.PENDING]
    assert {(d.key.recipient.id, d.key.channel.value) for d in pending} == {
        ("ana", "email"),
        ("ana", "webhook"),
        ("blue", "webhook"),
    }


async def test_ask_nudges_past_helpers_who_follow_the_theme(uow):
    for p in ("ana", "cy", "di"):
        await person(uow, p)
    async with uow() as repo:
        await repo.add_follow("cy", Follow(FollowKind.THEME, "python"))
        await repo.add_follow("di", Follow(FollowKind.THEME, "python"))
    await apply(uow, HelpOffered(offer_id="o1", helper="cy", themes=["python"]))
    await apply(
        uow,
        HelpRequested(
            ask_id="a1",
            asker="ana",
            title="pandas merge?",
            themes=["python"],
            size="quick",
            expires_at=NOW + timedelta(days=3),
        ),
    )
    assert [i.title for i in inbox_of(uow, "cy")] == ["Ana could use a hand: pandas merge?"]
    assert inbox_of(uow, "di") == []


async def test_resolved_but_unthanked_ask_gets_one_quiet_reminder(uow):
    for p in ("ana", "cy"):
        await person(uow, p)
    await apply(
        uow,
        HelpRequested(
            ask_id="a1",
            asker="ana",
            title="pandas merge?",
            size="quick",
            expires_at=NOW + timedelta(days=3),
        ),
    )
    await apply(
        uow, AskStatusChanged(ask_id="a1", asker="ana", status=AskStatus.RESOLVED, helper="cy")
    )
    await apply(
        uow, AskStatusChanged(ask_id="a2", asker="ana", status=AskStatus.RESOLVED, helper="cy")
    )
    await apply(
        uow, HelpReceived(thanks_id="t1", giver="ana", helper="cy", ask_id="a2", given_at=NOW)
    )
    later = lambda: NOW + timedelta(days=4)  # noqa: E731
    await send_reminders(uow, clock=lambda: NOW + timedelta(days=1), after=timedelta(days=3))
    assert inbox_of(uow, "ana") == []
    await send_reminders(uow, clock=later, after=timedelta(days=3))
    await send_reminders(uow, clock=later, after=timedelta(days=3))
    [item] = inbox_of(uow, "ana")
    assert item.kind == "reminder" and item.quiet and item.title == "Say thanks to Cy?"


async def test_erasure_forgets_preferences_inbox_and_ledger_personal_fields(uow):
    for p in ("ana", "cy"):
        await person(uow, p)
    async with uow() as repo:
        await repo.put_preferences("ana", Preferences(daily_budget=3))
        await repo.add_follow("cy", Follow(FollowKind.PERSON, "ana"))
        await repo.add_follow("ana", Follow(FollowKind.PERSON, "cy"))
    await apply(uow, milestone())
    await apply(uow, PersonErased(person="ana"))
    s = uow.store
    assert "ana" not in s.prefs and "ana" not in s.people
    assert not any("ana" in (p, f.target) for p, f in s.follows)
    assert inbox_of(uow, "ana") == []
    assert all(
        d.key.recipient.id != "ana" and "Ana" not in str(d.payload) for d in s.deliveries.values()
    )
    assert all("Ana" not in i.title for i in s.inbox.values())
    # A replayed directory event cannot bring the person back.
    await person(uow, "ana")
    assert "ana" not in s.people


async def test_a_batch_shares_budget_and_delivers_a_repeated_event_once(uow):
    await person(uow, "ana")
    events = [
        make_event(
            HelpReceived(thanks_id=f"t{n}", giver=f"g{n}", helper="ana", given_at=NOW),
            source="thrive/recognition",
            id="dup" if n == 4 else None,
        )
        for n in range(5)
    ]
    async with uow() as repo:
        await repo.put_preferences("ana", Preferences(daily_budget=3))
        # the same event twice in one batch
        result = await consume(repo, [(e, None) for e in [*events, events[-1]]], now=NOW)
    assert len(inbox_of(uow, "ana")) == 3  # the budget holds across one batch
    waiting = [i for i in uow.store.digest_items.values() if i.person == "ana"]
    assert len(waiting) == 2 and result.delivered["in_app"] == 3


async def test_celebrations_an_earlier_version_queued_still_go_out_once(uow):
    await person(uow, "ana")
    c = Celebration(
        event_id="queued-1",
        kind=Kind.THANKS,
        subject="ana",
        actor="bo",
        title="thanks",
        occurred_at=NOW,
    )
    async with uow() as repo:
        await repo.enqueue_celebrations([c, c])
    taken, result = await fan_out_pending(uow, clock=lambda: NOW)
    assert taken == 2 and result.delivered["in_app"] == 1
    assert [i.about for i in inbox_of(uow, "ana")] == ["queued-1"]
    assert await fan_out_pending(uow, clock=lambda: NOW) == (0, FanOutResult())


def _delivery(person: str, team: str | None, msg: Message, event: str = "e1") -> NewDelivery:
    return NewDelivery(
        key=DeliveryKey(event, Recipient(RecipientKind.PERSON, person), Channel.IN_APP),
        message=msg,
        state=DeliveryState.DELIVERED,
        team=team,
    )


@pytest.mark.parametrize(
    "at", [NOW, NOW.replace(microsecond=123456), datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)]
)
@pytest.mark.parametrize("team", ["blue", None])
def test_the_rendered_celebration_delivered_is_the_contracts_own_json(at, team):
    title = "Ana reached: <10> & \u00e9 \U0001f389"
    msg = Message(kind=Kind.MILESTONE, title=title, themes=("py",))
    ds = [_delivery("cy", team, msg), _delivery("di", "red", msg)]
    [a] = announcements(ds, at=at)
    assert a.key == "e1"
    fact = CelebrationDelivered(
        delivery_id=a.event_id,
        about="e1",
        channel=Channel.IN_APP,
        kind="milestone",
        title=title,
        themes=["py"],
        recipients=["cy", "di"],
        teams=[team, "red"],
        delivered_at=at,
    )
    env = make_event(fact, source=SOURCE, id=a.event_id, time=at)
    assert a.payload == env.to_json()
    # Deterministic (a retried transaction writes the same id), distinct per recipient set.
    assert announcements(ds, at=at)[0].event_id == a.event_id
    assert announcements(ds[:1], at=at)[0].event_id != a.event_id
    assert announcements([replace(d, quiet=True) for d in ds], at=at) == []


def test_one_event_per_celebration_split_past_the_recipient_cap():
    cap = CelebrationDelivered.MAX_RECIPIENTS
    big = Message(kind=Kind.MILESTONE, title="Ana reached: 1,000 thanks", themes=("py",))
    small = Message(kind=Kind.THANKS, title="Bo thanked you")
    ds = [_delivery(f"p{i}", f"t{i % 7}", big) for i in range(cap + 500)]
    ds += [_delivery("bo", None, small, event="e2"), replace(ds[0], quiet=True)]
    out = announcements(ds, at=NOW)
    events = [parse_for_topic(topics.CELEBRATION_DELIVERED_V2, a.payload) for a in out]
    assert [(e.data.about, len(e.data.recipients)) for e in events] == [
        ("e1", cap),
        ("e1", 500),
        ("e2", 1),
    ]
    # Every in-app recipient exactly once, with their own team.
    named = [
        (r, t) for e in events[:2] for r, t in zip(e.data.recipients, e.data.teams, strict=True)
    ]
    assert named == [(f"p{i}", f"t{i % 7}") for i in range(cap + 500)]
    assert len({a.event_id for a in out}) == 3


async def test_the_lane_fans_large_milestones_out_apart_from_the_poll(uow):
    """With the lane on, the consumer's transaction only queues a large milestone (its
    other events are delivered at once); the lane delivers it and wakes the senders."""
    for p in ("ana", "cy"):
        await person(uow, p)
    async with uow() as repo:
        await repo.add_follow("cy", Follow(FollowKind.PERSON, "ana"))
        await repo.set_team_channel("blue", "https://hooks.example.test/blue")
    large = make_event(milestone(), source="thrive/recognition")
    small = make_event(milestone("cy", size=CelebrationSize.SMALL, n=2), source="thrive/x")
    async with uow() as repo:
        result = await consume(repo, [(large, None), (small, None)], now=NOW, queue_large=True)
    assert result.queued == 1 and result.delivered["in_app"] == 1  # cy's own small one
    assert inbox_of(uow, "ana") == [] and uow.store.sends_woken == 0
    taken, lane = await fan_out_pending(uow, clock=lambda: NOW, limit=1)
    assert taken == 1 and lane.delivered["in_app"] == 2 and lane.reserved["webhook"] == 1
    assert [i.title for i in inbox_of(uow, "ana")] == ["You reached a milestone: Ten people helped"]
    assert uow.store.sends_woken == 1  # the team channel's webhook goes out at commit
