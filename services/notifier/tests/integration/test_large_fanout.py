"""The set-based fan-out of large milestones writes exactly what the per-recipient path does.

Real Postgres: one audience with follows of every kind, mutes (mutes win), quiet hours in
people's own timezones (one wrapping midnight, one unknown zone), people over or without
budget, digests off, email and webhook channels, a team channel, erased and inactive
people. Each path runs in a transaction that is rolled back, so both see the same data.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import asyncpg
import pytest
from thrive_notifier.adapters.postgres import (
    PostgresRepository,
    PostgresUnitOfWork,
    person_digest,
)
from thrive_notifier.domain.model import (
    Celebration,
    Channel,
    DigestFrequency,
    Follow,
    FollowKind,
    Kind,
    Mute,
    MuteKind,
    Preferences,
    TraceContext,
)
from thrive_notifier.service_layer.fanout import (
    FanOutResult,
    celebrate_many,
    is_large,
    reserve_large_sends,
)
from thrive_notifier.service_layer.handlers import consume
from thrive_notifier.service_layer.ports import PersonRecord
from thrive_notifier.service_layer.schedule import fan_out_pending
from thrive_shared.contracts import CelebrationSize, MilestoneReached, make_event

pytestmark = pytest.mark.stack

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 13:00 Stockholm, 07:00 New York
DEFAULTS = Preferences(daily_budget=5, digest_hour=9)
TRACE = TraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v")
NOON_QUIET = {"quiet_start": time(11), "quiet_end": time(14)}
HOOK = {
    "channels": frozenset({Channel.IN_APP, Channel.WEBHOOK}),
    "webhook_url": "https://hooks.example.com/h",
}

# person: (timezone or None for no directory row, preferences or None for the defaults)
PEOPLE: dict[str, tuple[str | None, Preferences | None]] = {
    "sam": ("UTC", None),  # the milestone's subject
    "ana": ("UTC", None),  # the second milestone's subject
    "f-plain": (None, None),  # not in the directory: defaults
    "f-stockholm": ("Europe/Stockholm", None),
    "f-theme": ("UTC", None),
    "f-all": ("UTC", None),  # follows sam, blue and python: told once
    "f-mute-theme": ("UTC", None),
    "f-mute-person": ("UTC", None),
    "f-mute-kind": ("UTC", None),
    "f-mute-other": ("UTC", None),  # a mute that does not cover it
    "f-quiet": ("UTC", Preferences(**NOON_QUIET)),  # type: ignore[arg-type]
    "f-quiet-wrap": (
        "America/New_York",
        Preferences(quiet_start=time(22), quiet_end=time(8)),
    ),
    "f-quiet-off": (
        "UTC",
        Preferences(**NOON_QUIET, digest_frequency=DigestFrequency.OFF),  # type: ignore[arg-type]
    ),
    "f-tokyo": ("Asia/Tokyo", Preferences(**NOON_QUIET)),  # type: ignore[arg-type]
    "f-pref-tz": ("UTC", Preferences(timezone="Asia/Tokyo", **NOON_QUIET)),  # type: ignore[arg-type]
    "f-unknown-tz": ("Mars/Olympus", Preferences(**NOON_QUIET)),  # type: ignore[arg-type]
    "f-budget": ("UTC", Preferences(daily_budget=1)),  # spent today already
    "f-budget-zero": ("UTC", Preferences(daily_budget=0)),
    "f-budget-off": ("UTC", Preferences(daily_budget=1, digest_frequency=DigestFrequency.OFF)),
    "f-kiritimati": ("Pacific/Kiritimati", Preferences(daily_budget=1)),  # spent "yesterday"
    "f-thanked": ("UTC", Preferences(daily_budget=1)),  # the batch's thanks takes the slot
    "f-both": ("UTC", Preferences(daily_budget=1)),  # follows sam and ana: one live ping
    "f-email": ("UTC", Preferences(channels=frozenset({Channel.IN_APP, Channel.EMAIL}))),
    "f-hook": (
        "UTC",
        Preferences(
            channels=frozenset({Channel.IN_APP, Channel.WEBHOOK}),
            webhook_url="https://hooks.example.com/f",
        ),
    ),
    "f-hook-no-url": ("UTC", Preferences(channels=frozenset({Channel.IN_APP, Channel.WEBHOOK}))),
    # Sends reserved first must share their decision with the in-app rows written later:
    "f-hook-last": ("UTC", Preferences(**HOOK, daily_budget=1)),  # the last slot: live once
    "f-hook-spent": ("UTC", Preferences(**HOOK, daily_budget=1)),  # spent today already
    "f-hook-quiet-off": (  # quiet hours, digests off: quietly in the inbox, no webhook
        "UTC",
        Preferences(**HOOK, **NOON_QUIET, digest_frequency=DigestFrequency.OFF),  # type: ignore[arg-type]
    ),
    "f-inactive": ("UTC", None),
    "f-erased": ("UTC", None),
}
FOLLOWS = [
    *[
        (p, FollowKind.PERSON, "sam")
        for p in (
            "f-plain",
            "f-all",
            "f-mute-theme",
            "f-mute-kind",
            "f-quiet",
            "f-quiet-wrap",
            "f-quiet-off",
            "f-tokyo",
            "f-pref-tz",
            "f-unknown-tz",
            "f-budget",
            "f-budget-zero",
            "f-budget-off",
            "f-kiritimati",
            "f-thanked",
            "f-both",
            "f-email",
            "f-hook",
            "f-hook-no-url",
            "f-hook-last",
            "f-hook-spent",
            "f-hook-quiet-off",
            "f-inactive",
            "f-erased",
        )
    ],
    *[(p, FollowKind.TEAM, "blue") for p in ("f-stockholm", "f-all", "f-mute-person")],
    *[(p, FollowKind.THEME, "python") for p in ("f-theme", "f-all", "f-mute-other")],
    ("f-both", FollowKind.PERSON, "ana"),
]
MUTES = [
    ("f-mute-theme", MuteKind.THEME, "python"),
    ("f-mute-person", MuteKind.PERSON, "sam"),
    ("f-mute-kind", MuteKind.KIND, "milestone"),
    ("f-mute-other", MuteKind.THEME, "rust"),
]


def milestone(event_id: str, subject: str) -> Celebration:
    return Celebration(
        event_id=event_id,
        kind=Kind.MILESTONE,
        subject=subject,
        team="blue",
        title="Helped ten people",
        themes=("python", "testing"),
        large=True,
        occurred_at=NOW,
        trace=TRACE,
    )


BATCH = [
    Celebration(
        event_id="thanks-1",
        kind=Kind.THANKS,
        subject="f-thanked",
        actor="ana",
        title="thanks",
        occurred_at=NOW,
    ),
    milestone("big-1", "sam"),
    milestone("big-2", "ana"),
]


async def seed(conn: asyncpg.Connection) -> None:
    repo = PostgresRepository(conn, defaults=DEFAULTS)
    for person, (tz, prefs) in PEOPLE.items():
        if tz is not None:
            name = person.title()
            email = f"{person}@example.com"
            active = person != "f-inactive"
            await repo.upsert_person(PersonRecord(person, name, email, "blue", tz, active=active))
        if prefs is not None:
            await repo.put_preferences(person, prefs)
    for person, kind, target in FOLLOWS:
        await repo.add_follow(person, Follow(kind, target))
    for person, mkind, target in MUTES:
        await repo.add_mute(person, Mute(mkind, target))
    await repo.set_team_channel("blue", "https://hooks.example.com/blue")
    # Erased after following (erasure deletes follows; a stale one must still not reach them).
    await conn.execute(
        "INSERT INTO erased_person (person_digest) VALUES ($1)", person_digest("f-erased")
    )
    day = NOW.date()
    await repo.commit_fanout(
        spend=[
            ("f-budget", day, "earlier"),
            ("f-budget-off", day, "earlier"),
            ("f-kiritimati", day, "earlier"),  # their local day is already tomorrow
            ("f-hook-spent", day, "earlier"),
        ],
        deliveries=[],
        deferrals=[],
        now=NOW,
    )


SNAPSHOT = {
    "delivery": """SELECT event_id, recipient_kind, recipient, channel, idempotency_key, kind,
                          state, payload, attempts, next_attempt_at, delivered_at, traceparent,
                          tracestate
                   FROM delivery ORDER BY event_id, recipient_kind, recipient, channel""",
    "inbox": """SELECT i.person, d.idempotency_key, i.kind, i.about, i.subject, i.title, i.body,
                       i.themes, i.payload, i.quiet, i.created_at, i.read_at
                FROM inbox_item i JOIN delivery d ON d.id = i.delivery_id
                ORDER BY i.person, i.about""",
    "digest": """SELECT person, event_id, kind, reason, subject, title, themes, payload,
                        created_at
                 FROM digest_item ORDER BY person, event_id""",
    "budget": "SELECT person, day, event_id FROM budget_spend ORDER BY person, day, event_id",
    "budget_used": """SELECT person, day, sum(n)::int FROM budget_used
                      GROUP BY person, day ORDER BY person, day""",
    "outbox": "SELECT topic, key, event_id, event_type, payload FROM outbox ORDER BY id",
}


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in SNAPSHOT.items()}


async def sends_first(
    repo: PostgresRepository, *, lane_at: datetime = NOW, defaults: Preferences = DEFAULTS
) -> FanOutResult:
    """BATCH as the consumer and a lane fan it out: the consumer writes the small
    celebrations and reserves the large ones' sends (planned at NOW), the lane writes the
    rest of each large one at `lane_at`."""
    large = [c for c in BATCH if is_large(c)]
    result = await celebrate_many(repo, [c for c in BATCH if not is_large(c)], now=NOW)
    planned, early = await reserve_large_sends(repo, large, now=NOW)
    assert [c.planned_at for c in planned] == [NOW] * len(large)
    # Through the queue, as the lane takes them.
    await repo.enqueue_celebrations(planned)
    taken = await repo.take_celebrations(limit=len(large))
    assert [(c, c.planned_at) for c in taken] == [(c, NOW) for c in planned]
    result.merge(early)
    result.merge(await celebrate_many(repo, taken, now=lane_at))
    return result


async def fan_out(
    pool: asyncpg.Pool, *, bulk: bool | str, lane_at: datetime = NOW
) -> tuple[FanOutResult, dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]]]:
    """Fan BATCH out through one path (per recipient, set-based, or set-based with the
    sends first), then again through the per-recipient or set-based one (a redelivery);
    undo."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            repo = PostgresRepository(conn, defaults=DEFAULTS)
            if bulk == "sends first":
                result = await sends_first(repo, lane_at=lane_at)
            else:
                result = await celebrate_many(repo, BATCH, now=NOW, bulk=bool(bulk))
            first = await snapshot(conn)
            await celebrate_many(repo, BATCH, now=NOW + timedelta(seconds=5), bulk=bulk is False)
            again = await snapshot(conn)
        finally:
            await tx.rollback()
    return result, first, again


async def test_large_milestones_set_based_write_what_the_per_recipient_path_writes(
    notifier_pool: asyncpg.Pool,
) -> None:
    async with notifier_pool.acquire() as conn:
        await seed(conn)
    per_recipient, expected, _ = await fan_out(notifier_pool, bulk=False)
    bulk, got, again = await fan_out(notifier_pool, bulk=True)

    for table in SNAPSHOT:
        assert got[table] == expected[table], table
    assert bulk == per_recipient
    # A redelivery through the other path finds every ledger key taken: nothing new is
    # delivered or announced (the keys are the same).
    assert again["delivery"] == got["delivery"] and again["inbox"] == got["inbox"]
    assert again["outbox"] == got["outbox"]
    # Nor spends anyone's budget twice; each person-day's counters sum to its spend rows.
    assert again["budget"] == got["budget"] and again["budget_used"] == got["budget_used"]
    spent: dict[tuple[Any, ...], int] = {}
    for person, day, _event in got["budget"]:
        spent[(person, day)] = spent.get((person, day), 0) + 1
    assert got["budget_used"] == [(*key, n) for key, n in sorted(spent.items())]
    assert ("f-plain", NOW.date(), 1) in got["budget_used"]

    # And what was written is what the rules say (so the comparison is not of two empties).
    ledger = {(r[0], r[2], r[3]) for r in got["delivery"]}
    told = {p for e, p, ch in ledger if e == "big-1" and ch == "in_app"}
    quiet = {r[0] for r in got["inbox"] if r[3] == "big-1" and r[9]}
    digest = {(r[0], r[3]) for r in got["digest"] if r[1] == "big-1"}
    assert told == {
        "sam",
        "f-plain",
        "f-stockholm",
        "f-theme",
        "f-all",
        "f-mute-other",
        "f-quiet-off",
        "f-tokyo",
        "f-pref-tz",
        "f-budget-off",
        "f-kiritimati",
        "f-both",
        "f-email",
        "f-hook",
        "f-hook-no-url",
        "f-hook-last",
        "f-hook-quiet-off",
    }
    assert quiet == {"f-quiet-off", "f-budget-off", "f-hook-quiet-off"}
    assert digest == {
        ("f-quiet", "quiet_hours"),
        ("f-quiet-wrap", "quiet_hours"),
        ("f-unknown-tz", "quiet_hours"),  # an unknown zone is UTC
        ("f-budget", "budget"),
        ("f-budget-zero", "budget"),
        ("f-thanked", "budget"),
        ("f-hook-spent", "budget"),
    }
    assert ("big-2", "f-both") in {(r[1], r[0]) for r in got["digest"]}
    assert {(p, ch) for e, p, ch in ledger if e == "big-1" and ch != "in_app"} == {
        ("f-email", "email"),
        ("f-hook", "webhook"),
        ("f-hook-last", "webhook"),
        ("blue", "webhook"),
    }
    assert bulk.skipped == 2  # f-erased and f-inactive
    # The thanks, and per milestone the subject's own notice and everyone else's.
    assert len(got["outbox"]) == 5

    # Sends first (the consumer), the in-app rows later (a lane): the same rows, the same
    # single budget decision per person (f-hook-last is live once, not also in a digest).
    split, got_split, again_split = await fan_out(notifier_pool, bulk="sends first")
    for table in SNAPSHOT:
        assert got_split[table] == expected[table], table
    assert split == per_recipient
    for table in ("delivery", "inbox", "outbox", "budget", "budget_used"):
        assert again_split[table] == got_split[table], table


def decisions(snap: dict[str, list[tuple[Any, ...]]]) -> dict[str, set[tuple[Any, ...]]]:
    """Who got what, through which channel, in which mode: a snapshot without its times."""
    return {
        "delivery": {(r[0], r[1], r[2], r[3], r[6]) for r in snap["delivery"]},
        "inbox": {(r[0], r[3], r[9]) for r in snap["inbox"]},
        "digest": {(r[0], r[1], r[3]) for r in snap["digest"]},
        "budget": set(snap["budget"]),
        "budget_used": set(snap["budget_used"]),
    }


async def test_a_lane_keeps_to_the_plan_made_when_the_sends_went_first(
    notifier_pool: asyncpg.Pool,
) -> None:
    async with notifier_pool.acquire() as conn:
        await seed(conn)
    _, expected, _ = await fan_out(notifier_pool, bulk=False)
    # The lane runs after the noon quiet hours ended and after midnight in Kiritimati: its
    # in-app rows still follow the decisions taken at NOW, when the sends were reserved.
    late = NOW + timedelta(hours=2, minutes=30)
    _, got, _ = await fan_out(notifier_pool, bulk="sends first", lane_at=late)
    assert decisions(got) == decisions(expected)
    in_app = {r[2]: r[10] for r in got["delivery"] if r[0] == "big-1" and r[3] == "in_app"}
    assert set(in_app.values()) == {late}  # written (and delivered) when the lane ran
    hook = {r[2]: r[9] for r in got["delivery"] if r[0] == "big-1" and r[3] == "webhook"}
    assert set(hook.values()) == {NOW}  # due when reserved


async def test_sends_go_with_the_in_app_rows_when_the_defaults_may_send(
    notifier_pool: asyncpg.Pool,
) -> None:
    async with notifier_pool.acquire() as conn:
        await seed(conn)
        tx = conn.transaction()
        await tx.start()
        try:
            repo = PostgresRepository(conn, defaults=Preferences(channels=frozenset(Channel)))
            large = [c for c in BATCH if is_large(c)]
            queued, early = await reserve_large_sends(repo, large, now=NOW)
            assert queued == large and [c.planned_at for c in queued] == [None, None]
            assert not early.reserved
            assert await conn.fetchval("SELECT count(*) FROM delivery") == 0
        finally:
            await tx.rollback()


async def test_the_consumer_reserves_a_large_milestones_sends_and_the_lane_writes_the_rest(
    notifier_pool: asyncpg.Pool,
) -> None:
    async with notifier_pool.acquire() as conn:
        await seed(conn)
    env = make_event(
        MilestoneReached(
            milestone_id="m-1",
            person="sam",
            team="blue",
            rule_id="people_helped",
            level=1,
            size=CelebrationSize.LARGE,
            title="Helped ten people",
            themes=["python", "testing"],
            reached_at=NOW,
        ),
        source="thrive/recognition",
    )
    async with notifier_pool.acquire() as conn, conn.transaction():  # the consumer's
        repo = PostgresRepository(conn, defaults=DEFAULTS)
        result = await consume(repo, [(env, TRACE)], now=NOW, queue_large=True)
    assert result.queued == 1 and result.reserved == {"webhook": 3, "email": 1}
    ledger = "SELECT recipient, channel, state, id FROM delivery WHERE event_id = $1"
    sends = {(r[0], r[1], r[2], r[3]) for r in await notifier_pool.fetch(ledger, env.id)}
    # At the consumer's commit the sends are due, and nobody's inbox has it yet.
    assert {(r[0], r[1], r[2]) for r in sends} == {
        ("f-email", "email", "pending"),
        ("f-hook", "webhook", "pending"),
        ("f-hook-last", "webhook", "pending"),
        ("blue", "webhook", "pending"),
    }
    uow = PostgresUnitOfWork(notifier_pool, defaults=DEFAULTS)
    taken, lane = await fan_out_pending(uow, clock=lambda: NOW + timedelta(seconds=1), limit=1)
    assert taken == 1 and not lane.reserved
    rows = await notifier_pool.fetch(ledger, env.id)
    assert {(r[0], r[1], r[2], r[3]) for r in rows if r[1] != "in_app"} == sends  # unchanged
    told = {r[0] for r in rows if r[1] == "in_app"}
    assert {"sam", "f-email", "f-hook", "f-hook-last", "f-hook-quiet-off"} <= told
    assert "f-hook-spent" not in told  # over budget when planned: the digest, as its sends
    assert await notifier_pool.fetchval("SELECT count(*) FROM fanout_queue") == 0
