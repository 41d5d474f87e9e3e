"""Time windows and their calendar periods, computed in the company's timezone."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

ALL_TIME_PERIOD = "all"


class Window(StrEnum):
    """How far back a board looks: a calendar period, so newcomers get a fresh start."""

    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    ALL_TIME = "all_time"


WINDOWS: tuple[Window, ...] = tuple(Window)

_PATTERNS: dict[Window, re.Pattern[str]] = {
    Window.WEEK: re.compile(r"^(\d{4})-W(\d{2})$"),
    Window.MONTH: re.compile(r"^(\d{4})-(\d{2})$"),
    Window.QUARTER: re.compile(r"^(\d{4})-Q([1-4])$"),
    Window.YEAR: re.compile(r"^(\d{4})$"),
    Window.ALL_TIME: re.compile(r"^all$"),
}


def period_of(window: Window, at: datetime, tz: ZoneInfo) -> str:
    """The period key holding instant `at` (ISO weeks; calendar months, quarters, years)."""
    if window is Window.ALL_TIME:
        return ALL_TIME_PERIOD
    local = at.astimezone(tz) if at.tzinfo is not None else at.replace(tzinfo=tz)
    if window is Window.WEEK:
        iso = local.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    if window is Window.MONTH:
        return f"{local.year:04d}-{local.month:02d}"
    if window is Window.QUARTER:
        return f"{local.year:04d}-Q{(local.month - 1) // 3 + 1}"
    return f"{local.year:04d}"


def periods_of(at: datetime, tz: ZoneInfo) -> list[tuple[Window, str]]:
    """Every (window, period) that instant `at` counts towards."""
    local = at.astimezone(tz) if at.tzinfo is not None else at.replace(tzinfo=tz)
    iso = local.isocalendar()
    return [
        (Window.WEEK, f"{iso.year:04d}-W{iso.week:02d}"),
        (Window.MONTH, f"{local.year:04d}-{local.month:02d}"),
        (Window.QUARTER, f"{local.year:04d}-Q{(local.month - 1) // 3 + 1}"),
        (Window.YEAR, f"{local.year:04d}"),
        (Window.ALL_TIME, ALL_TIME_PERIOD),
    ]


@lru_cache(maxsize=4096)
def periods_of_day(ordinal: int) -> tuple[tuple[Window, str], ...]:
    """Every (window, period) a local calendar day (a date ordinal) belongs to."""
    day = date.fromordinal(ordinal)
    iso = day.isocalendar()
    return (
        (Window.WEEK, f"{iso.year:04d}-W{iso.week:02d}"),
        (Window.MONTH, f"{day.year:04d}-{day.month:02d}"),
        (Window.QUARTER, f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"),
        (Window.YEAR, f"{day.year:04d}"),
        (Window.ALL_TIME, ALL_TIME_PERIOD),
    )


def parse_period(window: Window, text: str) -> str:
    """Validate a period key for `window` and return it; ValueError says what is expected."""
    m = _PATTERNS[window].match(text)
    if m is None:
        examples = {
            Window.WEEK: "2026-W07",
            Window.MONTH: "2026-02",
            Window.QUARTER: "2026-Q1",
            Window.YEAR: "2026",
            Window.ALL_TIME: "all",
        }
        raise ValueError(f"a {window.value} period looks like {examples[window]!r}, not {text!r}")
    if window is Window.WEEK:
        year, week = int(m.group(1)), int(m.group(2))
        try:
            date.fromisocalendar(year, week, 1)
        except ValueError as exc:
            raise ValueError(f"{year} has no ISO week {week}") from exc
    if window is Window.MONTH and not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month must be 01..12, not {m.group(2)}")
    return text


# The last day a date ordinal can name (9999-12-31): all time ends there.
LAST_DAY = date.max.toordinal()


def period_days(window: Window, period: str) -> tuple[int, int]:
    """The first and last local day (date ordinals) of a period, both included."""
    parse_period(window, period)
    if window is Window.ALL_TIME:
        return 1, LAST_DAY
    if window is Window.WEEK:
        monday = date.fromisocalendar(int(period[:4]), int(period[6:]), 1)
        return monday.toordinal(), monday.toordinal() + 6
    year = int(period[:4])
    if window is Window.YEAR:
        first, months = 1, 12
    elif window is Window.QUARTER:
        first, months = (int(period[6:]) - 1) * 3 + 1, 3
    else:
        first, months = int(period[5:]), 1
    start = date(year, first, 1)
    end_month = first + months
    end = date(year + 1, 1, 1) if end_month > 12 else date(year, end_month, 1)
    return start.toordinal(), end.toordinal() - 1


def previous_period(window: Window, period: str) -> str | None:
    """The period just before `period` (None for all time, which has no predecessor)."""
    parse_period(window, period)
    if window is Window.ALL_TIME:
        return None
    if window is Window.WEEK:
        year, week = int(period[:4]), int(period[6:])
        monday = date.fromisocalendar(year, week, 1) - timedelta(days=7)
        iso = monday.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    if window is Window.MONTH:
        year, month = int(period[:4]), int(period[5:])
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        return f"{year:04d}-{month:02d}"
    if window is Window.QUARTER:
        year, quarter = int(period[:4]), int(period[6:])
        year, quarter = (year - 1, 4) if quarter == 1 else (year, quarter - 1)
        return f"{year:04d}-Q{quarter}"
    return f"{int(period) - 1:04d}"
