"""Quiet hours in the person's own timezone, budgets, and when a digest is due."""

from datetime import UTC, date, datetime, time

import pytest
from thrive_notifier.domain.attention import (
    DeferReason,
    Mode,
    digest_due,
    in_quiet_hours,
    live_channels,
    local_day,
    plan_for,
)
from thrive_notifier.domain.model import Channel, DigestFrequency, Kind, Preferences, Profile

NIGHT = (time(22, 0), time(7, 0))


@pytest.mark.parametrize(
    ("utc", "tz", "quiet"),
    [
        # 23:30 UTC is 00:30 in Paris (quiet) but 18:30 in New York (awake).
        (datetime(2026, 11, 25, 23, 30, tzinfo=UTC), "Europe/Paris", True),
        (datetime(2026, 11, 25, 23, 30, tzinfo=UTC), "America/New_York", False),
        # 12:00 UTC is 21:00 in Tokyo (awake) and 22:00 in Sydney's summer... (23:00, quiet).
        (datetime(2026, 11, 25, 12, 0, tzinfo=UTC), "Asia/Tokyo", False),
        (datetime(2026, 11, 25, 12, 0, tzinfo=UTC), "Australia/Sydney", True),
        # The end is exclusive: 07:00 local is awake again.
        (datetime(2026, 11, 25, 6, 0, tzinfo=UTC), "Europe/Paris", False),
        (datetime(2026, 11, 25, 5, 59, tzinfo=UTC), "Europe/Paris", True),
    ],
)
def test_quiet_hours_follow_the_persons_timezone(utc, tz, quiet):
    assert in_quiet_hours(utc, tz, *NIGHT) is quiet


def test_daytime_quiet_hours_do_not_wrap():
    at = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    assert in_quiet_hours(at, "UTC", time(12, 0), time(14, 0))
    assert not in_quiet_hours(at, "UTC", time(14, 0), time(16, 0))
    assert not in_quiet_hours(at, "UTC", None, None)


def test_unknown_timezone_falls_back_to_utc():
    at = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert in_quiet_hours(at, "Mars/Olympus_Mons", *NIGHT)


def test_budget_day_is_the_persons_local_day():
    at = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert local_day(at, "Europe/Paris") == date(2026, 11, 26)
    assert local_day(at, "America/New_York") == date(2026, 11, 25)


def prof(**prefs) -> Profile:
    return Profile(
        person="ana",
        timezone="Europe/Paris",
        email="ana@example.test",
        preferences=Preferences(**prefs),
    )


def test_plan_defers_in_quiet_hours_and_reminders_are_always_quiet():
    night = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    p = prof(quiet_start=NIGHT[0], quiet_end=NIGHT[1])
    assert plan_for(Kind.MILESTONE, p, night).mode is Mode.DEFERRED
    assert plan_for(Kind.MILESTONE, p, night).reason is DeferReason.QUIET_HOURS
    assert plan_for(Kind.REMINDER, p, night).mode is Mode.QUIET
    day = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert plan_for(Kind.MILESTONE, p, day).mode is Mode.LIVE


def test_with_digests_off_deferred_items_land_quietly_in_the_inbox():
    p = prof(daily_budget=0, digest_frequency=DigestFrequency.OFF)
    plan = plan_for(Kind.THANKS, p, datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert plan.mode is Mode.QUIET and plan.reason is DeferReason.BUDGET


def test_live_channels_need_both_the_preference_and_an_address():
    assert live_channels(prof(channels=frozenset({Channel.EMAIL}))) == [
        Channel.IN_APP,
        Channel.EMAIL,
    ]
    assert live_channels(prof(channels=frozenset({Channel.WEBHOOK}))) == [Channel.IN_APP]
    hooked = prof(channels=frozenset({Channel.WEBHOOK}), webhook_url="https://hooks.example/x")
    assert live_channels(hooked) == [Channel.IN_APP, Channel.WEBHOOK]


def test_daily_digest_is_due_once_per_local_day_after_the_digest_hour():
    p = prof(digest_hour=8)
    before = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)  # 07:00 Paris
    after = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # 09:00 Paris
    assert not digest_due(p, before, None)
    assert digest_due(p, after, None)
    assert not digest_due(p, after, date(2026, 11, 25))
    assert digest_due(p, after, date(2026, 11, 24))


def test_weekly_digest_waits_a_week_and_off_never_sends():
    at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    weekly = prof(digest_frequency=DigestFrequency.WEEKLY)
    assert not digest_due(weekly, at, date(2026, 11, 20))
    assert digest_due(weekly, at, date(2026, 11, 18))
    assert not digest_due(prof(digest_frequency=DigestFrequency.OFF), at, None)
