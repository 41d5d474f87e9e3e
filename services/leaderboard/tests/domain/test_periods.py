from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from thrive_leaderboard.domain.periods import (
    Window,
    parse_period,
    period_days,
    period_of,
    periods_of,
    periods_of_day,
    previous_period,
)

BERLIN = ZoneInfo("Europe/Berlin")


def test_an_instant_counts_in_the_company_timezone_not_utc():
    # Sunday 23:30 UTC on New Year's Eve 2028 is already Monday 1 January 2029 in Berlin.
    at = datetime(2028, 12, 31, 23, 30, tzinfo=UTC)
    assert dict(periods_of(at, BERLIN)) == {
        Window.WEEK: "2029-W01",
        Window.MONTH: "2029-01",
        Window.QUARTER: "2029-Q1",
        Window.YEAR: "2029",
        Window.ALL_TIME: "all",
    }
    assert period_of(Window.MONTH, at, UTC) == "2028-12"


def test_iso_week_of_early_january_can_belong_to_the_previous_year():
    assert period_of(Window.WEEK, datetime(2027, 1, 1, 12, tzinfo=UTC), UTC) == "2026-W53"


@pytest.mark.parametrize(
    ("window", "period", "previous"),
    [
        (Window.WEEK, "2027-W01", "2026-W53"),
        (Window.WEEK, "2026-W10", "2026-W09"),
        (Window.MONTH, "2026-01", "2025-12"),
        (Window.QUARTER, "2026-Q1", "2025-Q4"),
        (Window.YEAR, "2026", "2025"),
        (Window.ALL_TIME, "all", None),
    ],
)
def test_previous_period(window, period, previous):
    assert previous_period(window, period) == previous


@pytest.mark.parametrize(
    ("window", "bad"),
    [
        (Window.WEEK, "2026-W54"),
        (Window.WEEK, "2026-11"),
        (Window.MONTH, "2026-13"),
        (Window.QUARTER, "2026-Q5"),
        (Window.YEAR, "26"),
        (Window.ALL_TIME, "2026"),
    ],
)
def test_malformed_periods_are_refused_with_an_example(window, bad):
    with pytest.raises(ValueError, match=r"looks like|no ISO week|month must be"):
        parse_period(window, bad)


def test_a_period_holds_exactly_the_days_whose_periods_name_it():
    # Every day of 2026-2027 (ISO week 53 of 2026 runs into January 2027) against the days
    # each period claims: a board's day rows are read by these ranges.
    days = range(date(2025, 12, 1).toordinal(), date(2028, 1, 31).toordinal())
    claimed: dict[tuple[Window, str], list[int]] = {}
    for day in days:
        for window, period in periods_of_day(day):
            claimed.setdefault((window, period), []).append(day)
    for (window, period), its_days in claimed.items():
        first, last = period_days(window, period)
        if window is Window.ALL_TIME:
            assert first <= its_days[0] and its_days[-1] <= last
            continue
        if its_days[0] == days[0] or its_days[-1] == days[-1]:
            continue  # a period cut by the sample's edges
        assert (first, last) == (its_days[0], its_days[-1]), (window, period)
        assert len(its_days) == last - first + 1
    assert period_days(Window.WEEK, "2026-W53") == (
        date(2026, 12, 28).toordinal(),
        date(2027, 1, 3).toordinal(),
    )
