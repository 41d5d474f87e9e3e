"""Pure rules: periods in a person's timezone, allowances, rings, milestone rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from thrive_recognition.domain import allowance, rings
from thrive_recognition.domain.allowance import AllowancePolicy, Limit, Usage
from thrive_recognition.domain.errors import AllowanceExceeded, InvalidCursor, PairCapExceeded
from thrive_recognition.domain.milestones import RuleBook, RuleError
from thrive_recognition.domain.model import Counts, Progress
from thrive_recognition.domain.pagination import Cursor, PageRequest
from thrive_recognition.domain.periods import Period, run_length, week_start, window, zone

from .conftest import RULES_FILE

TOKYO = zone("Asia/Tokyo")
NEW_YORK = zone("America/New_York")


def test_day_window_follows_the_givers_timezone() -> None:
    # 16:00 UTC on Tuesday is already Wednesday 01:00 in Tokyo.
    at = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
    w = window(at, period=Period.DAY, tz=TOKYO)
    assert w.start == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert w.end == datetime(2026, 3, 11, 15, 0, tzinfo=UTC)


def test_week_window_starts_monday_local_and_survives_dst() -> None:
    # New York switches to DST on Sunday 2026-03-08: that week is 167 hours long.
    at = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    w = window(at, period=Period.WEEK, tz=NEW_YORK)
    assert w.start == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    assert w.end - w.start == timedelta(hours=167)


def test_week_start_crosses_the_boundary_in_local_time() -> None:
    # Sunday 20:00 UTC is Monday 05:00 in Tokyo: a new week there, not in UTC.
    sunday_night = datetime(2026, 3, 15, 20, 0, tzinfo=UTC)
    assert week_start(sunday_night, zone("UTC")) == date(2026, 3, 9)
    assert week_start(sunday_night, TOKYO) == date(2026, 3, 16)


def test_unknown_timezone_falls_back_to_utc() -> None:
    assert zone("Mars/Olympus_Mons") == zone("UTC")


def test_run_length_counts_consecutive_weeks_around_one() -> None:
    mondays = {date(2026, 1, 5) + timedelta(weeks=i) for i in (0, 1, 2, 4)}
    assert run_length(mondays, date(2026, 1, 12)) == 3
    assert run_length(mondays, date(2026, 2, 2)) == 1
    assert run_length(mondays, date(2026, 3, 2)) == 0


def test_allowance_error_names_limit_period_and_reset() -> None:
    policy = AllowancePolicy(limits=(Limit(5, Period.DAY),), pair_cap=None)
    at = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
    windows = policy.windows(at, TOKYO)
    allowance.check(windows, Usage(given=(4,)))  # the fifth is fine
    with pytest.raises(AllowanceExceeded) as err:
        allowance.check(windows, Usage(given=(5,)))
    assert err.value.details == {
        "limit": 5,
        "period": "day",
        "resets_at": "2026-03-11T15:00:00+00:00",
    }


def test_pair_cap_is_separate_from_overall_allowance() -> None:
    policy = AllowancePolicy(limits=(Limit(20, Period.WEEK),), pair_cap=Limit(2, Period.WEEK))
    windows = policy.windows(datetime(2026, 3, 10, tzinfo=UTC), zone("UTC"))
    allowance.check(windows, Usage(given=(3,), to_pair=1))
    with pytest.raises(PairCapExceeded) as err:
        allowance.check(windows, Usage(given=(3,), to_pair=2))
    assert err.value.field == "helper"
    assert err.value.details["limit"] == 2


def test_ring_needs_a_repeat_and_a_closed_cycle() -> None:
    policy = rings.RingPolicy(max_cycle=3, min_repeats=2)
    edges = {"b": {"a"}}
    # First exchange: b thanked a once, now a thanks b: normal reciprocity.
    assert not rings.is_discounted(giver="a", helper="b", pair_count=1, edges=edges, policy=policy)
    # Second time round the same pair, with the way back present: a ring.
    assert rings.is_discounted(giver="a", helper="b", pair_count=2, edges=edges, policy=policy)
    # Repeated, but nobody thanks back: generous, not a ring.
    assert not rings.is_discounted(giver="a", helper="b", pair_count=5, edges={}, policy=policy)


def test_ring_finds_three_person_cycles_but_not_longer_ones() -> None:
    three = {"b": {"c"}, "c": {"a"}}
    four = {"b": {"c"}, "c": {"d"}, "d": {"a"}}
    policy = rings.RingPolicy(max_cycle=3, min_repeats=2)
    assert rings.is_discounted(giver="a", helper="b", pair_count=2, edges=three, policy=policy)
    assert not rings.is_discounted(giver="a", helper="b", pair_count=2, edges=four, policy=policy)
    wider = rings.RingPolicy(max_cycle=4, min_repeats=2)
    assert rings.is_discounted(giver="a", helper="b", pair_count=2, edges=four, policy=wider)


def test_shipped_rule_file_loads_every_kind() -> None:
    book = RuleBook.load(RULES_FILE)
    kinds = {r.kind.value for r in book.rules}
    assert kinds == {
        "count_threshold",
        "distinct_people",
        "cross_team",
        "streak",
        "first_of",
        "theme_mastery",
    }


def _progress(changed: set[str], themes: dict[str, int] | None = None, **counts: int) -> Progress:
    return Progress(
        person="ada", counts=Counts(**counts), themes=themes or {}, changed=frozenset(changed)
    )


def test_rules_report_every_reached_level_of_changed_metrics_only() -> None:
    book = RuleBook.from_toml(
        """
        [[rule]]
        id = "thanked"
        kind = "count_threshold"
        title = "Thanked {n} times"
        levels = [1, 10, { threshold = 50, size = "large" }]

        [[rule]]
        id = "breadth"
        kind = "distinct_people"
        levels = [3]
        """
    )
    reached = book.reached(_progress({"thanks_received"}, thanks_received=10, people_helped=9))
    assert [(r.rule.id, r.level.level) for r in reached] == [("thanked", 1), ("thanked", 2)]
    m = reached[1].milestone(person="ada", team="core", at=datetime(2026, 1, 1, tzinfo=UTC))
    assert m.title == "Thanked 10 times"
    assert m.size == "small"
    # The id is stable, so a redelivered evaluation names the same milestone.
    again = book.reached(_progress({"thanks_received"}, thanks_received=10))[1]
    assert again.milestone(person="ada", team="core", at=datetime.now(UTC)).id == m.id


def test_theme_mastery_is_scoped_per_theme() -> None:
    book = RuleBook.from_toml(
        """
        [[rule]]
        id = "mastery"
        kind = "theme_mastery"
        title = "#{theme} x{n}"
        levels = [2]
        themes = ["#SQL", "python"]
        """
    )
    reached = book.reached(_progress({"themes"}, themes={"sql": 2, "python": 1, "rust": 9}))
    assert [(r.scope, r.level.threshold) for r in reached] == [("sql", 2)]
    m = reached[0].milestone(person="ada", team=None, at=datetime.now(UTC))
    assert m.themes == ("sql",)
    assert m.title == "#sql x2"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[rule]]\nid = "x"\nkind = "nope"\nlevels = [1]', "kind must be one of"),
        ('[[rule]]\nid = "x"\nkind = "streak"\nlevels = [3, 2]', "must increase"),
        ('[[rule]]\nid = "x"\nkind = "streak"\nlevels = [0]', "positive integer"),
        ('[[rule]]\nid = "x"\nkind = "first_of"\nof = "lunch"', "of must be one of"),
        ('[[rule]]\nid = "x"\nkind = "streak"\nlevels = [1]\nsize = "huge"', "size must be"),
        ('[[rule]]\nid = "x"\nkind = "streak"\nlevels = [1]\n' * 2, "defined twice"),
    ],
)
def test_invalid_rule_files_are_refused_with_the_reason(toml: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        RuleBook.from_toml(toml)


def test_cursor_round_trips_and_rejects_garbage() -> None:
    c = Cursor(at=datetime(2026, 3, 1, 12, tzinfo=UTC), id="t-1")
    assert Cursor.decode(c.encode()) == c
    with pytest.raises(InvalidCursor):
        Cursor.decode("not-a-cursor")
    assert PageRequest.parse("5", c.encode()).after == c


@pytest.mark.parametrize(
    "key",
    ["ada|helped_10|*|1", "erased:00ff|theme_mastery|customer-first|3", "zoë|x|ünï|2", ""],
)
def test_milestone_ids_are_the_uuid5_they_always_were(key: str) -> None:
    # Stable across redeliveries and versions: a new id would celebrate a milestone twice.
    import uuid

    from thrive_recognition.domain.milestones import _MILESTONE_NS, milestone_id

    assert milestone_id(key) == str(uuid.uuid5(_MILESTONE_NS, key))
